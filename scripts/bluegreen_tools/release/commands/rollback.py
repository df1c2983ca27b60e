"""rollback: send users back to the other color (refused unless it is deployed and ready)."""

from __future__ import annotations

import argparse

from components.settings import other_color

from ...cli import EXIT_OK, Failure
from ..lock import ReleaseLock
from ..outputs import read_color, require_ready
from ..report import reporting
from ..routing import Routing, read_routing
from ..runner import Runner

HELP = "Send users back to the other color (refused unless it is deployed and ready)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, runner: Runner) -> int:
    with reporting(runner, args) as held:
        state = read_routing(runner, args)
        back = other_color(state.active)
        target = require_ready(args, back, read_color(runner, args, back))
        held.lock = ReleaseLock(runner, args.routing_stack, back, target.release)
        with held.lock:
            state = read_routing(runner, args)  # again, under the lock: a release may have finished meanwhile
            if state.active == back:
                raise Failure(f"users are already on {back}: the routing changed since this rollback started; "
                              f"`python scripts/release.py status` shows it")
            held.routing = Routing(runner, args.routing_stack, state)
            with held.routing as routing, runner.step(f"send users back to {back}"):
                routing.set("active", back)
                if state.test == back:  # a test route to the color users are now on would be refused
                    routing.set("test", None)
                routing.up()
    runner.log(f"users are on {back} (release {target.release})")
    return EXIT_OK
