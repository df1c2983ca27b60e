"""Guards that read other stacks' outputs: who may be routed to, and what a color stack may change.

Pure logic: the program awaits the StackReference outputs, then calls these before it declares
any object, so a refused update asks the engine to change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .settings import PROJECT, ColorSettings, RoutingSettings


class GuardError(RuntimeError):
    """An update refused because of what the other stacks say; the message names the fix."""


@dataclass(frozen=True)
class ColorState:
    """What a color stack's outputs say about its workload (None: the stack has no such output)."""

    stack: str
    color: Optional[str]
    release: Optional[str]
    ready_replicas: Optional[int]

    @classmethod
    def from_outputs(cls, stack: str, outputs: Mapping[str, Any]) -> "ColorState":
        ready = outputs.get("readyReplicas")
        return cls(stack, outputs.get("color"), outputs.get("release"), None if ready is None else int(ready))


@dataclass(frozen=True)
class RoutingState:
    """What the routing stack's outputs say: who is live, who is under test."""

    active: Optional[str]
    active_release: Optional[str]
    test: Optional[str]

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> "RoutingState":
        return cls(outputs.get("active"), outputs.get("activeRelease"), outputs.get("test"))


def check_routing_targets(settings: RoutingSettings, targets: Mapping[str, ColorState]) -> None:
    """Refuse to send users or testers to a color that is not deployed, not ready, or not that color."""
    for color in settings.routed_colors:
        state = targets[color]
        who = "users" if color == settings.active else "testers"
        key = "active" if color == settings.active else "test"
        back = ("pulumi config set active " + ("green" if color == "blue" else "blue") if key == "active"
                else "pulumi config rm test") + f" -s {settings.stack}"
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
        if not state.ready_replicas or state.ready_replicas < 1:
            raise GuardError(
                f"{PROJECT}:{key} is {color!r}, but {color} (release {state.release}, stack {state.stack}) has "
                f"{state.ready_replicas or 0} ready pods, so {who} would get errors. Fix: make {color} ready "
                f"(kubectl rollout status deployment/{settings.app}-{color} -n {settings.namespace}; "
                f"pulumi up -s {state.stack}), or {back}"
            )


def check_live_update(settings: ColorSettings, routing: RoutingState) -> None:
    """Refuse to change the release of the color users are on, or to scale it to nothing.

    The tutorial's sanity check: a new release goes to the idle color. allowLiveUpdate overrides it.
    """
    if settings.allow_live_update or routing.active != settings.color:
        return
    fix = (f"deploy the new release to the idle color ({'green' if settings.color == 'blue' else 'blue'}), "
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
