"""rollback: send users back to the color that was live before the last release (refused unless it is
deployed and ready, and still runs the release that was live, unless --allow-never-live)."""

from __future__ import annotations

import argparse
from typing import Optional

from components.contract import ColorOutputs, RoutingOutputs
from components.settings import other_color

from ...cli import EXIT_OK, Failure
from ...record import ReleaseRecord
from ...record.phases import FLIPPING
from ..hold import ReleaseHold, unchanged
from ..outputs import read_color, require_ready
from ..report import reporting
from ..routing import Routing, read_routing
from ..runner import Runner

HELP = ("Send users back to the color that was live before the last release (refused unless it is deployed and "
        "ready and still runs the release that was live; --allow-never-live sends them to what it runs now).")
ALLOW = "--allow-never-live"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(ALLOW, action="store_true",
                        help="send users to the other color even if its release was never live (none recorded, or "
                             "it was deployed again since)")


def never_live(state: RoutingOutputs, back: str, target: ColorOutputs, last: Optional[ReleaseRecord]) -> Optional[str]:
    """Why `target` is not known to have been live before (None: it was, in the last recorded release)."""
    now = f"{back} runs release {target.release}"
    users = f"users are on {state.active} (release {state.active_release or '?'})"
    if last is None:
        return (f"{now}, and no release is recorded as having gone live before ({users}, but no record says where "
                "they were before: the release record is new, or the flip was made by hand)")
    if last.color != state.active:
        return (f"{now}; the last recorded release sent users to {last.color} (release {last.release or '?'}), but "
                f"{users}: the routing was changed by hand since")
    if last.previous_color != back or last.previous_release != target.release:
        before = f"{last.previous_color} (release {last.previous_release or '?'})"
        return (f"{now}, which was never live: before release {last.release or '?'} of {last.color} went live, users "
                f"were on {before}")
    return None


def run(args: argparse.Namespace, runner: Runner) -> int:
    with reporting(runner, args) as held:
        state = read_routing(runner, args)
        back = other_color(state.active)
        target = require_ready(args, back, read_color(runner, args, back))
        held.hold = hold = ReleaseHold.new(runner, args, "rollback", back, target.release, state)
        hold.lease = hold.store.read()
        problem = never_live(state, back, target, hold.lease.last_live if hold.lease else None)
        if problem and not args.allow_never_live:
            raise Failure(f"not rolled back: {problem}. Users stay on {state.active}; {ALLOW} sends them to "
                          f"{back} (release {target.release}) anyway")
        with hold:
            state = unchanged(state, read_routing(runner, args))
            held.routing = Routing(runner, args.routing_stack, state, hold)
            with held.routing as routing, runner.step(f"send users back to {back}"):
                hold.advance(FLIPPING)
                routing.set("active", back)
                if state.test == back:  # a test route to the color users are now on would be refused
                    routing.set("test", None)
                routing.up()
                routing.went_to_plan()  # from here on a signal does not undo it: the record is given back done
    if problem:
        runner.log(f"note: {problem}; sent there as {ALLOW} asked")
    runner.log(f"users are on {back} (release {target.release})")
    return EXIT_OK
