"""resume and abort: finish, or undo, a release whose run stopped (killed, its machine lost) from any host,
with nothing but the release record: its phase says which steps ran, its intent where users go."""

from __future__ import annotations

import argparse
import os
from typing import Optional

from ... import smoke_test
from ...cli import EXIT_OK, Failure
from ...record import Plan, abort_plan, resume_plan
from ...record.lease import user_at_host
from ...record.phases import (ABORTED, ANALYSE_LIVE, ANALYSE_TEST, RELEASE, ROUTE, SMOKE_LIVE, SMOKE_TEST, DONE,
                              Routing, Step)
from .. import analysis_steps
from ..hold import ReleaseHold, holder_gone_here, record_place, record_store
from ..runner import UP, Runner
from .promote import read_test_cookie, smoke, write_junit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    smoke_test.add_gateway_arguments(parser, timeout=smoke_test.DEFAULT_TIMEOUT, settle=10.0)
    parser.add_argument("--cookie", type=smoke_test.cookie_arg, metavar="NAME=VALUE",
                        help="the cookie that reaches the test color (default: as promote finds it)")
    analysis_steps.add_arguments(parser)


def route(runner: Runner, stack: str, routing: Routing) -> None:
    """The routing stack set to exactly `routing`, whatever this checkout's config said, and deployed."""
    with runner.step(f"route: {routing.describe()}"):
        runner.pulumi("config", "set", "active", routing.active, "-s", stack)
        if routing.test:
            runner.pulumi("config", "set", "test", routing.test, "-s", stack)
        else:
            runner.pulumi("config", "rm", "test", "-s", stack)
        runner.pulumi(*UP, "-s", stack, stream=True)


class Recovery:
    """One resume or abort: the plan's steps carried out under the taken-over record."""

    def __init__(self, runner: Runner, args: argparse.Namespace, hold: ReleaseHold,
                 analysis: Optional[analysis_steps.ReleaseAnalysis]):
        self.runner, self.args, self.hold, self.suites, self.analysis = runner, args, hold, [], analysis
        self.record = hold.held.record

    def carry_out(self, plan: Plan) -> None:
        for step in plan.steps:
            self.do(step)

    def do(self, step: Step) -> None:
        record, runner, args = self.record, self.runner, self.args
        if step.action == RELEASE:
            if step.phase not in (ABORTED, DONE) and step.phase != self.hold.phase:
                self.hold.advance(step.phase)
            self.hold.release(ABORTED if step.phase == ABORTED else DONE)
            if self.hold.state != "released":
                raise Failure(f"the release record could not be given back: {self.hold.recovery()}")
            return
        if step.phase != self.hold.phase:
            self.hold.advance(step.phase)
        if step.action == ROUTE:
            route(runner, args.routing_stack, step.routing)
        elif step.action in (SMOKE_TEST, SMOKE_LIVE):
            testing = step.action == SMOKE_TEST
            cookie, shown = read_test_cookie(runner, args) if testing else (None, "")
            title = (f"smoke tests of {record.color} through the test route (cookie {shown})" if testing
                     else f"checks of {record.color} through the default route")
            failed = smoke(runner, args, title, cookie, record.color, self.suites)
            if failed:
                raise Failure(f"{title} failed: {failed}")
        elif step.action == ANALYSE_TEST and self.analysis:
            self.analysis.test_load(args, str(read_test_cookie(runner, args)[0]), record.color)
            self.analysis.before_flip(record.color, record.release, record.previous_color, self.hold)
        elif step.action == ANALYSE_LIVE and self.analysis:
            self.analysis.after_flip(record.color, record.release, record.previous_color, self.hold)


def needs_gateway(plan: Plan) -> bool:
    steps = plan.steps + (plan.on_failure.steps if plan.on_failure else ())
    return any(step.action in (SMOKE_TEST, SMOKE_LIVE) for step in steps)


def recover(args: argparse.Namespace, runner: Runner, verb: str) -> int:
    place = record_place(runner, args.routing_stack)
    store = record_store(runner, args.routing_stack, place)
    with runner.step(f"read the release record ({store.where})"):
        lease = store.read()
    if lease is None or lease.free or lease.record is None:
        runner.log("no release is in progress: nothing to " + verb
                   + (f" (the last: {lease.record.describe()})" if lease is not None and lease.record else ""))
        return EXIT_OK
    gone = holder_gone_here(lease)
    if not (lease.expired() or gone):
        raise Failure(f"{lease.describe()}. Its run still renews it: wait for it to end, or stop it (`kill -INT "
                      f"{lease.record.pid}` on {lease.record.host}: it puts the routing back itself); if its machine "
                      f"is lost, the lease expires within {lease.duration}s of its last renewal: run this again then")
    record = lease.record
    plan = (resume_plan if verb == "resume" else abort_plan)(record.intent, record.phase)
    if needs_gateway(plan) and not args.url:
        raise Failure(f"{verb} runs the checks of {record.color} through the gateway: give its URL with --url or "
                      "$BLUEGREEN_URL (nothing was changed)")
    analysis = None
    if record.intent.analysis and any(step.action in (ANALYSE_TEST, ANALYSE_LIVE) for step in plan.steps):
        settings = analysis_steps.read_analysis(args.routing_stack)
        if settings is None:
            raise Failure(f"this release is gated by a metric analysis, but Pulumi.{args.routing_stack}.yaml here "
                          "has no bluegreen:analysis: run it from a checkout of the committed config (nothing was "
                          "changed)")
        analysis = analysis_steps.ReleaseAnalysis(runner, settings, place.namespace, place.app, args.if_inconclusive)
    runner.log(f"{verb}: {record.describe()}; {plan.summary}")
    user, _, host = user_at_host().partition("@")
    with runner.step(f"take over the release record ({store.where})"):
        taken = store.take_over(lease, user, host, os.getpid(), holder_gone=gone)
    hold = ReleaseHold(runner, store, record, taken)
    hold.attach(taken)
    recovery = Recovery(runner, args, hold, analysis)
    try:
        try:
            recovery.carry_out(plan)
        except Failure as failure:
            if plan.on_failure is None or hold.state != "held":
                raise
            if args.routing_stack in runner.events.maybe_locked:  # the undo would meet the same lock
                runner.log(f"error: {failure}; nothing is undone: the routing stack is locked, so the release "
                           f"stays where it was")
                raise
            runner.log(f"error: {failure}; undoing the release: {plan.on_failure.summary}")
            recovery.carry_out(plan.on_failure)
            raise Failure(f"{failure}; the release was undone: {plan.on_failure.ends_with.describe()}; "
                          f"{plan.on_failure.commit_hint(args.routing_stack)}") from None
    except BaseException:
        write_junit(runner, args, recovery.suites + (analysis.suites() if analysis else []), raising=False)
        hold.stop_renewing()
        if hold.state == "held":
            hold.state = "left"
            stack = args.routing_stack
            # the killed run's `pulumi up` may have died with it, leaving the stack's lock in the backend
            cancel = (f"if no pulumi command runs on stack {stack} any more (the lock's holder is gone): `pulumi "
                      f"cancel --yes -s {stack}`, then " if stack in runner.events.maybe_locked else "")
            runner.log(f"the release record stays in phase {hold.phase}: {cancel}run `python scripts/release.py "
                       f"{verb}` again")
        raise
    write_junit(runner, args, recovery.suites + (analysis.suites() if analysis else []), raising=True)
    ends = plan.ends_with
    where = ends.describe() if ends else plan.summary
    runner.log(f"{verb} done: {where}; {plan.commit_hint(args.routing_stack)}")
    return EXIT_OK
