"""promote COLOR: test COLOR through the gateway with the test cookie, then flip users to it; on any failure
users stay on (or go back to) the other color."""

from __future__ import annotations

import argparse
import os
import time
from typing import Optional

from components.contract import RoutingOutputs
from components.settings import COLORS, Cookie, declared_defaults, other_color, parse_cookie

from ... import ROOT, smoke_test
from ...cli import EXIT_OK, Failure, printable, result_line
from ..hold import ReleaseHold, unchanged
from ..outputs import read_color, require_ready
from ...record.phases import ANALYSING_LIVE, ANALYSING_TEST, CHECKING, FLIPPING, TESTING
from .. import analysis_steps
from ..report import reporting
from ..routing import Routing, read_routing
from ..runner import Runner

HELP = ("Test COLOR through the gateway with the test cookie, then flip users to it; on any failure users stay on "
        "(or go back to) the other color.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("color", choices=COLORS)
    smoke_test.add_gateway_arguments(parser, timeout=smoke_test.DEFAULT_TIMEOUT, settle=10.0)
    parser.add_argument("--cookie", type=smoke_test.cookie_arg, metavar="NAME=VALUE",
                        help="the cookie that reaches the test color (default: the routing stack's testCookie, with "
                             "the value $BLUEGREEN_TEST_TOKEN or its testToken when one is set)")
    analysis_steps.add_arguments(parser)


def read_test_cookie(runner: Runner, args: argparse.Namespace) -> tuple[Cookie, str]:
    """The cookie that reaches the test color, and how to show it: a token is never shown."""
    secrets = runner.session.secrets
    if args.cookie:
        secrets.add(args.cookie.value)
        return args.cookie, f"{args.cookie.name}=[secret]"
    stack = args.routing_stack
    with runner.step("read the test cookie"):
        text = (runner.pulumi_get("config", "get", "testCookie", "-s", stack)
                or declared_defaults(ROOT / "Pulumi.yaml")["testCookie"])
        cookie = parse_cookie(text, lambda problem: Failure(f"testCookie {printable(text, 60)!r} on stack {stack}: "
                                                            f"{problem}"))
        token = os.environ.get("BLUEGREEN_TEST_TOKEN") or runner.pulumi_get("config", "get", "testToken", "-s", stack)
    if not token:
        return cookie, str(cookie)
    secrets.add(token)
    return (parse_cookie(f"{cookie.name}={token}",
                         lambda problem: Failure(f"the test token cannot be sent as a cookie: {problem}")),
            f"{cookie.name}=[secret]")


def smoke(runner: Runner, args: argparse.Namespace, title: str, cookie: Optional[Cookie], color: str,
          suites: list) -> str:
    """Run the checks through the gateway, expecting `color`; the failed checks, or "" when all passed."""
    start = time.monotonic()
    try:
        results = smoke_test.run_checks(args.url, args.check, cookie, color, args.timeout, args.settle,
                                        verify=not args.insecure, **smoke_test.check_options(args))
    except smoke_test.ChecksInterrupted as stopped:
        suites.append((title, stopped.results))
        raise
    for line in smoke_test.result_lines(results):
        runner.log(f"  {line}")
    failed = smoke_test.failures(results)
    runner.log(result_line(False if failed else None, title, time.monotonic() - start,
                           f"{sum(r.passed for r in results)} of {len(results)} checks passed"))
    suites.append((title, results))
    return failed


def write_junit(runner: Runner, args: argparse.Namespace, suites: list, raising: bool) -> None:
    if not (args.junit and suites):
        return
    try:
        smoke_test.write_junit(args.junit, suites)
    except Failure as failure:
        if raising:
            raise
        runner.log(f"error: {failure}")


def run(args: argparse.Namespace, runner: Runner) -> int:
    color = args.color
    suites: list = []
    try:
        with reporting(runner, args) as held:
            cookie, shown_cookie = read_test_cookie(runner, args)
            pinned = require_ready(args, color, read_color(runner, args, color)).release
            settings = analysis_steps.read_analysis(args.routing_stack)
            if args.test_load and settings is None:
                raise Failure(f"--test-load drives traffic for the metric analysis, but the routing stack "
                              f"{args.routing_stack} has no bluegreen:analysis: set it (pulumi config set --path "
                              f"analysis.successRate 99 -s {args.routing_stack}), or drop --test-load")
            state = refuse_active(read_routing(runner, args), color)
            held.hold = ReleaseHold.new(runner, args, "promote", color, pinned, state, analysis=settings is not None)
            analysis = held.analysis = (None if settings is None else analysis_steps.ReleaseAnalysis(
                runner, settings, held.hold.place.namespace, held.hold.place.app, args.if_inconclusive))
            with held.hold as hold:
                state = refuse_active(unchanged(state, read_routing(runner, args)), color)
                users = state.active
                held.routing = Routing(runner, args.routing_stack, state, hold)
                with held.routing as routing:
                    hold.advance(TESTING)
                    with runner.step(f"route testers to {color}"):
                        routing.set("test", color)
                        routing.up()
                    failed = smoke(runner, args, f"smoke tests of {color} through the test route (cookie "
                                                 f"{shown_cookie})", cookie, color, suites)
                    if failed:
                        raise Failure(f"smoke tests of {color} failed through the test route, so users stay on "
                                      f"{users}: {failed}")
                    now = read_color(runner, args, color, f": is it still release {pinned}?")
                    if now.release != pinned:
                        raise Failure(f"{color}'s release changed from {pinned} to {now.release} while it was being "
                                      f"tested, so users stay on {users}; promote {color} again to test {now.release}")
                    require_ready(args, color, now)
                    if analysis:
                        hold.advance(ANALYSING_TEST)
                        analysis.test_load(args, str(cookie), color)
                        analysis.before_flip(color, pinned, users, hold)
                        analysis.note_baseline(users, state.active_release)
                    hold.advance(FLIPPING)
                    with runner.step(f"flip users to {color} (release {pinned})"):
                        routing.set("active", color)
                        routing.set("test", None)
                        routing.up()
                    hold.advance(CHECKING)
                    failed = smoke(runner, args, f"checks of {color} through the default route", None, color, suites)
                    if failed:
                        raise Failure(f"the default route failed after the flip to {color}: {failed}")
                    if analysis:
                        hold.advance(ANALYSING_LIVE)
                        analysis.after_flip(color, pinned, users, hold)
                    routing.went_to_plan()  # from here on a signal does not undo it: the record is given back done
    except BaseException:
        write_junit(runner, args, suites + measured(held), raising=False)
        raise
    write_junit(runner, args, suites + measured(held), raising=True)
    runner.log(f"{color} (release {pinned}) is live. {users} still runs: `python scripts/release.py rollback` sends "
               f"users back; when sure, `python scripts/release.py decommission {users}`")
    return EXIT_OK


def measured(held) -> list:
    """The analysis verdicts of the run, as JUnit suites."""
    analysis = getattr(held, "analysis", None)
    return analysis.suites() if analysis else []


def refuse_active(state: RoutingOutputs, color: str) -> RoutingOutputs:
    if state.active == color:
        raise Failure(f"{color} is already active (release {state.active_release}): nothing to promote. "
                      f"A new release goes to the idle color, {other_color(color)}")
    return state
