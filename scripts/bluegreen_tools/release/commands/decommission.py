"""decommission COLOR: pulumi destroy a color that nobody is routed to."""

from __future__ import annotations

import argparse

from components.settings import COLORS

from ...cli import EXIT_OK, Failure
from ..hold import ReleaseHold, unchanged
from ..outputs import color_stack, read_color
from ..routing import read_routing
from ..runner import Runner

HELP = "pulumi destroy COLOR's stack (refused while COLOR is active or under test)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("color", choices=COLORS)


def run(args: argparse.Namespace, runner: Runner) -> int:
    color = args.color
    stack = color_stack(args, color)
    state = read_color(runner, args, color)
    before = read_routing(runner, args, required=False)  # never deployed: nobody is routed anywhere
    with ReleaseHold.new(runner, args, "decommission", color, state.release, before):
        routing = unchanged(before, read_routing(runner, args, required=False))
        if routing.active == color:
            raise Failure(f"{color} is the active color: users are on it. Roll back first "
                          f"(`python scripts/release.py rollback`), then decommission {color}")
        if routing.test == color:
            raise Failure(f"{color} is under test. Remove the test route first: pulumi config rm test -s "
                          f"{args.routing_stack} && pulumi up -s {args.routing_stack}")
        with runner.step(f"destroy {color} (stack {stack})"):
            try:
                runner.pulumi("destroy", "--yes", "-s", stack, stream=True)
            except Failure as error:
                cancel = f"pulumi cancel --yes -s {stack} && " if stack in runner.events.maybe_locked else ""
                raise Failure(f"{error}. Users are not affected (nobody is routed to {color}); run it again: "
                              f"{cancel}pulumi destroy --yes -s {stack}") from None
    return EXIT_OK
