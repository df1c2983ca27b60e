"""Guards that read other stacks' outputs and the cluster: who may be routed to, and what a color
stack may change.

Pure logic: the program awaits the StackReference outputs and the live Deployments, then calls
these before it declares any object, so a refused update asks the engine to change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .settings import PROJECT, ColorSettings, RoutingSettings, other_color


class GuardError(RuntimeError):
    """An update refused because of what the other stacks say; the message names the fix."""


@dataclass(frozen=True)
class ColorState:
    """What a color stack's outputs say about its workload (None: the stack has no such output)."""

    stack: str
    color: Optional[str]
    release: Optional[str]
    ready_replicas: Optional[int]
    deployment: Optional[str] = None

    @classmethod
    def from_outputs(cls, stack: str, outputs: Mapping[str, Any]) -> "ColorState":
        ready = outputs.get("readyReplicas")
        return cls(stack, outputs.get("color"), outputs.get("release"), None if ready is None else int(ready),
                   outputs.get("deployment"))


@dataclass(frozen=True)
class RoutingState:
    """What the routing stack's outputs say: who is live, who is under test."""

    active: Optional[str]
    active_release: Optional[str]
    test: Optional[str]

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> "RoutingState":
        return cls(outputs.get("active"), outputs.get("activeRelease"), outputs.get("test"))


@dataclass(frozen=True)
class LiveDeployment:
    """What the cluster says about a color's Deployment now (read by the routing stack, never declared)."""

    name: str
    release: Optional[str]  # the `release` label of the pods it runs
    ready_replicas: int


def _route_role(settings: RoutingSettings, color: str) -> tuple[str, str, str]:
    """Who a color is routed for, the key that routes them, and the command that stops routing them."""
    if color == settings.active:
        return "users", "active", f"pulumi config set active {other_color(color)} -s {settings.stack}"
    return "testers", "test", f"pulumi config rm test -s {settings.stack}"


def check_routing_targets(settings: RoutingSettings, targets: Mapping[str, ColorState]) -> None:
    """Refuse to send users or testers to a color that is not deployed, not ready, or not that color."""
    for color in settings.routed_colors:
        state = targets[color]
        who, key, back = _route_role(settings, color)
        if state.color is None:
            raise GuardError(
                f"{PROJECT}:{key} is {color!r}, but stack {state.stack} has no deployed {color} workload (no "
                f"outputs), so {who} would get errors. Fix: pulumi up -s {state.stack} first, or {back}"
            )
        if state.color != color:
            raise GuardError(
                f"{PROJECT}:{color}Stack is {state.stack!r}, but that stack deploys {state.color!r}, not "
                f"{color!r}. Fix: pulumi config set {color}Stack <the {color} stack> -s {settings.stack}"
            )
        if state.deployment is not None and state.deployment != f"{settings.app}-{color}":
            raise GuardError(
                f"stack {state.stack} deploys {state.deployment}, but this routing stack routes app "
                f"{settings.app!r}, whose {color} Deployment is {settings.app}-{color}: its pods would not be "
                f"endpoints of Service {settings.app}. Fix: pulumi config set {color}Stack <the {color} stack of "
                f"{settings.app}> -s {settings.stack}, or set the same app on both stacks"
            )
        if not state.ready_replicas or state.ready_replicas < 1:
            raise GuardError(
                f"{PROJECT}:{key} is {color!r}, but {color} (release {state.release}, stack {state.stack}) has "
                f"{state.ready_replicas or 0} ready pods, so {who} would get errors. Fix: make {color} ready "
                f"(kubectl rollout status deployment/{settings.app}-{color} -n {settings.namespace}; "
                f"pulumi up -s {state.stack}), or {back}"
            )


def check_live_targets(settings: RoutingSettings, targets: Mapping[str, ColorState],
                       live: Mapping[str, LiveDeployment]) -> None:
    """The tutorial's label check, on the cluster itself: each routed color's Deployment runs the release
    its stack deployed, and has a ready pod now, not only when its stack last ran."""
    for color in settings.routed_colors:
        state, now = targets[color], live[color]
        who, _, back = _route_role(settings, color)
        where = f"Deployment {now.name} in namespace {settings.namespace}"
        if now.release != state.release:
            raise GuardError(
                f"the cluster's {where} runs release {now.release!r}, but stack {state.stack} deployed "
                f"{state.release!r}: it was changed outside this program, so what {who} would reach is not what "
                f"was released. Fix: pulumi up --refresh -s {state.stack} (a plain up compares with its state, which "
                f"still holds {state.release!r}, and changes nothing), "
                f"or {back}"
            )
        if now.ready_replicas < 1:
            raise GuardError(
                f"{color} (release {state.release}) has no ready pod in the cluster now ({where}; its stack "
                f"recorded {state.ready_replicas} at its last update), so {who} would get errors. Fix: "
                f"kubectl rollout status deployment/{now.name} -n {settings.namespace}, or {back}"
            )


def check_live_update(settings: ColorSettings, routing: RoutingState) -> None:
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
