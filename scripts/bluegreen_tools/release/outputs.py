"""What the stacks say, checked against the contract: a wrong value must stop a release, not crash it."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any, Callable

from components.contract import ColorOutputs, RoutingOutputs
from components.guards import Unroutable, unroutable
from components.settings import COLORS

from ..cli import Failure, printable
from .runner import Runner

_LABEL_VALUE = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def _is_color(value: Any) -> bool:
    return value in COLORS


def _is_release(value: Any) -> bool:
    return isinstance(value, str) and _LABEL_VALUE.fullmatch(value) is not None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1_000_000


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 253 and value.isprintable()


Spec = dict[str, tuple[Callable[[Any], bool], str]]  # output name -> (is it valid, what it should be)


def output_spec(contract: type, **checks: tuple[Callable[[Any], bool], str]) -> Spec:
    """The checks of a stack's outputs, given by field of its contract, in the order they are made."""
    return {contract.output(name): check for name, check in checks.items()}


A_COLOR = (_is_color, "blue or green")
PODS = (_is_count, "a whole number of pods")
COLOR_OUTPUTS = output_spec(
    ColorOutputs, color=A_COLOR, release=(_is_release, "a release label (letters, digits, '-', '_', '.'; at most 63)"),
    ready_replicas=PODS, replicas=PODS, deployment=(_is_name, "a Deployment name"))
ROUTING_OUTPUTS = output_spec(
    RoutingOutputs, active=A_COLOR, test=A_COLOR,
    active_release=(_is_release, "a release label"), test_release=(_is_release, "a release label"))
# What `status` shows of each color stack's outputs, under their output names.
STATUS_OUTPUTS = tuple(ColorOutputs.output(name) for name in ("release", "image", "ready_replicas", "replicas"))


def shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return printable(text, 60)


def output_problems(stack: str, values: dict[str, Any], spec: Spec) -> dict[str, str]:
    """Each output that is not what the contract says, with what is wrong with it."""
    return {key: f"stack {stack}'s output {key} is {shown(values[key])}, not {what}"
            for key, (valid, what) in spec.items() if values.get(key) is not None and not valid(values[key])}


def checked(stack: str, values: dict[str, Any], spec: Spec) -> dict[str, Any]:
    problems = output_problems(stack, values, spec)
    if problems:
        raise Failure(f"{next(iter(problems.values()))}: `pulumi stack output --json -s {stack}` shows it; "
                      f"`pulumi refresh -s {stack}` or `pulumi up -s {stack}` writes it again")
    return values


def read_routing_outputs(runner: Runner, stack: str) -> RoutingOutputs:
    """The routing stack's outputs, checked: where users are, as deployed."""
    return RoutingOutputs.read(checked(stack, runner.outputs(stack), ROUTING_OUTPUTS))


def color_stack(args: argparse.Namespace, color: str) -> str:
    return args.blue_stack if color == "blue" else args.green_stack


def read_color(runner: Runner, args: argparse.Namespace, color: str, why: str = "") -> ColorOutputs:
    stack = color_stack(args, color)
    with runner.step(f"read {color} (stack {stack}){why}"):
        return ColorOutputs.read(checked(stack, runner.outputs(stack), COLOR_OUTPUTS))


def require_ready(args: argparse.Namespace, color: str, state: ColorOutputs) -> ColorOutputs:
    """Refuse a color that is not deployed, is another color, or has no ready pod (the routing stack's rule)."""
    stack = color_stack(args, color)
    problem = unroutable(state, color)
    if problem is Unroutable.NOT_DEPLOYED:
        raise Failure(f"{color} is not deployed: stack {stack} has no outputs. Deploy it first: "
                      f"pulumi up -s {stack}")
    if problem is Unroutable.OTHER_COLOR:
        raise Failure(f"stack {stack} deploys {state.color}, not {color}: give the {color} stack with "
                      f"--{color}-stack")
    if problem is Unroutable.NOT_READY:
        raise Failure(f"{color} (release {state.release}, stack {stack}) has no ready pod "
                      f"(readyReplicas {state.ready_replicas or 0}): make it ready, then pulumi up -s {stack}")
    return state
