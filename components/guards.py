"""Guards that read other stacks' outputs and the cluster: who may be routed to, and what a color
stack may change.

Pure logic: the program awaits the StackReference outputs and the live Deployments, then calls
these before it declares any object, so a refused update asks the engine to change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Mapping, Optional

from .contract import ColorOutputs, RoutingOutputs, deployment_name
from .domain import PROJECT, ColorSettings, RoutingSettings, other_color


class GuardError(RuntimeError):
    """An update refused because of what the other stacks say; the message names the fix."""


@dataclass(frozen=True)
class LiveDeployment:
    """What the cluster says about a color's Deployment now (read by the routing stack, never declared)."""

    name: str
    release: Optional[str]  # the `release` label of the pods it runs
    ready_replicas: int


class Unroutable(Enum):
    """Why a color's stack outputs say that nobody may be sent to that color."""

    NOT_DEPLOYED = "its stack exports nothing"
    OTHER_COLOR = "its stack deploys the other color"
    OTHER_APP = "its stack deploys another app's Deployment"
    OTHER_NAMESPACE = "its stack runs the pods in another namespace"
    NOT_READY = "it had no ready pod"


def unroutable(target: ColorOutputs, color: str, app: Optional[str] = None,
               namespace: Optional[str] = None) -> Optional[Unroutable]:
    """Why users or testers may not be sent to `color`, as its stack's outputs say; None when they may.
    With `app`, a Deployment of another app counts too (its pods are not endpoints of the app's Service); with
    `namespace`, pods in another namespace (a Service selects pods of its own namespace only). A stack that
    exports no namespace (last updated before the output existed) is not refused for it."""
    if target.color is None:
        return Unroutable.NOT_DEPLOYED
    if target.color != color:
        return Unroutable.OTHER_COLOR
    if app is not None and target.deployment is not None and target.deployment != deployment_name(app, color):
        return Unroutable.OTHER_APP
    if namespace is not None and target.namespace is not None and target.namespace != namespace:
        return Unroutable.OTHER_NAMESPACE
    if not target.ready_replicas or target.ready_replicas < 1:
        return Unroutable.NOT_READY
    return None


def _route_role(settings: RoutingSettings, color: str) -> tuple[str, str, str]:
    """Who a color is routed for, the key that routes them, and the command that stops routing them."""
    if color == settings.active:
        return "users", "active", f"pulumi config set active {other_color(color)} -s {settings.stack}"
    return "testers", "test", f"pulumi config rm test -s {settings.stack}"


def check_routing_targets(settings: RoutingSettings, targets: Mapping[str, ColorOutputs]) -> None:
    """Refuse to send users or testers to a color that is not deployed, not ready, or not that color."""
    for color in settings.routed_colors:
        target, stack = targets[color], settings.color_stacks[color]
        who, key, back = _route_role(settings, color)
        deployment = deployment_name(settings.app, color)
        problem = unroutable(target, color, settings.app, settings.namespace)
        if problem is Unroutable.NOT_DEPLOYED:
            raise GuardError(
                f"{PROJECT}:{key} is {color!r}, but stack {stack} has no deployed {color} workload (no "
                f"outputs), so {who} would get errors. Fix: pulumi up -s {stack} first, or {back}"
            )
        if problem is Unroutable.OTHER_COLOR:
            raise GuardError(
                f"{PROJECT}:{color}Stack is {stack!r}, but that stack deploys {target.color!r}, not "
                f"{color!r}. Fix: pulumi config set {color}Stack <the {color} stack> -s {settings.stack}"
            )
        if problem is Unroutable.OTHER_APP:
            raise GuardError(
                f"stack {stack} deploys {target.deployment}, but this routing stack routes app "
                f"{settings.app!r}, whose {color} Deployment is {deployment}: its pods would not be "
                f"endpoints of Service {settings.app}. Fix: pulumi config set {color}Stack <the {color} stack of "
                f"{settings.app}> -s {settings.stack}, or set the same app on both stacks"
            )
        if problem is Unroutable.OTHER_NAMESPACE:
            raise GuardError(_namespace_refusal(settings, targets, color))
        if problem is Unroutable.NOT_READY:
            raise GuardError(
                f"{PROJECT}:{key} is {color!r}, but {color} (release {target.release}, stack {stack}) has "
                f"{target.ready_replicas or 0} ready pods, so {who} would get errors. Fix: make {color} ready "
                f"(kubectl rollout status deployment/{deployment} -n {settings.namespace}; "
                f"pulumi up -s {stack}), or {back}"
            )


def _namespace_refusal(settings: RoutingSettings, targets: Mapping[str, ColorOutputs], color: str) -> str:
    """Why a color whose pods run outside the routing stack's namespace is refused, with the fixes that apply."""
    target, stack = targets[color], settings.color_stacks[color]
    who, _, back = _route_role(settings, color)  # the active color's way back sends users elsewhere: not a fix
    where = {c: targets[c].namespace or settings.namespace for c in settings.routed_colors}
    fixes = []
    if len(set(where.values())) == 1:  # every routed color runs there: the routing stack can follow them
        fixes.append(f"route where the colors run: pulumi config set namespace {target.namespace} -s "
                     f"{settings.stack} (its Gateway, Service and routes move there)")
    fixes.append(f"deploy {color} to {settings.namespace!r}: pulumi config set namespace {settings.namespace} -s "
                 f"{stack}, then pulumi up -s {stack}")
    split = (f" (the routed colors run in different namespaces: "
             + ", ".join(f"{c} in {n!r}" for c, n in where.items()) + ")") if len(set(where.values())) > 1 else ""
    return (f"stack {stack} runs {color} in namespace {target.namespace!r}, but routing stack {settings.stack} "
            f"routes in namespace {settings.namespace!r} ({PROJECT}:namespace){split}: Service {settings.app} "
            f"selects pods of its own namespace only, so it would select no {color} pod and {who} would get errors. "
            f"Fix: " + ", or ".join(fixes + ([back] if color != settings.active else [])))


def namespace_notices(settings: RoutingSettings, targets: Mapping[str, ColorOutputs]) -> list[str]:
    """The routed colors whose stacks export no namespace (last updated before the output existed): they are
    assumed to run in the routing stack's namespace, which only the read of their Deployment there checks."""
    return [f"stack {settings.color_stacks[color]} exports no namespace (its last update predates that output), "
            f"so {color} is assumed to run in namespace {settings.namespace!r}, where its Deployment "
            f"{deployment_name(settings.app, color)} is read. Fix: pulumi up -s {settings.color_stacks[color]} "
            f"(it changes no object, and exports the namespace)"
            for color in settings.routed_colors if targets[color].namespace is None]


def check_live_targets(settings: RoutingSettings, targets: Mapping[str, ColorOutputs],
                       live: Mapping[str, LiveDeployment]) -> None:
    """The tutorial's label check, on the cluster itself: each routed color's Deployment runs the release
    its stack deployed, and has a ready pod now, not only when its stack last ran."""
    for color in settings.routed_colors:
        target, stack, now = targets[color], settings.color_stacks[color], live[color]
        who, _, back = _route_role(settings, color)
        where = f"Deployment {now.name} in namespace {settings.namespace}"
        if now.release != target.release:
            raise GuardError(
                f"the cluster's {where} runs release {now.release!r}, but stack {stack} deployed "
                f"{target.release!r}: it was changed outside this program, so what {who} would reach is not what "
                f"was released. Fix: pulumi up --refresh -s {stack} (a plain up compares with its state, which "
                f"still holds {target.release!r}, and changes nothing), "
                f"or {back}"
            )
        if now.ready_replicas < 1:
            raise GuardError(
                f"{color} (release {target.release}) has no ready pod in the cluster now ({where}; its stack "
                f"recorded {target.ready_replicas} at its last update), so {who} would get errors. Fix: "
                f"kubectl rollout status deployment/{now.name} -n {settings.namespace}, or {back}"
            )


def check_live_update(settings: ColorSettings, routing: RoutingOutputs) -> None:
    """Refuse to change the release of the color users are on, or to scale it to nothing.

    The tutorial's sanity check: a new release goes to the idle color. allowLiveUpdate overrides it.
    """
    if settings.allow_live_update or routing.active != settings.color:
        return
    fix = (f"deploy the new release to the idle color ({other_color(settings.color)}), "
           f"or, to change the live color on purpose: pulumi config set allowLiveUpdate true -s {settings.stack}")
    if routing.active_release is not None and routing.active_release != settings.release:
        raise GuardError(
            f"{settings.color} is the live color (routing stack {settings.routing_stack}) and runs release "
            f"{routing.active_release!r}; this update would replace it with {settings.release!r} under users' "
            f"feet. Fix: {fix}"
        )
    if settings.replicas < 1:
        raise GuardError(
            f"{PROJECT}:replicas is 0, but {settings.color} is the live color (routing stack "
            f"{settings.routing_stack}): users would get errors. Fix: {fix}"
        )
