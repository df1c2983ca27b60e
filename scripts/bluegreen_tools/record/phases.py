"""The phases of a release, as a pure model: which phase may follow which, and what `resume` and `abort`
do from each, as plans of steps (no kubectl, no pulumi: the release commands carry the plans out).

A promote goes  taken -> testing [-> analysing-test] -> flipping -> checking [-> analysing-live] -> releasing
-> done; a rollback goes taken -> flipping -> releasing -> done. From any phase before done, a failure or an
abort goes to restoring (users back where they were before the release started) -> aborted. Each step
writes its phase into the record before it acts, so a run that dies leaves the phase of the step it was in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

TAKEN, TESTING, ANALYSING_TEST, FLIPPING, CHECKING, ANALYSING_LIVE, RELEASING, DONE = (
    "taken", "testing", "analysing-test", "flipping", "checking", "analysing-live", "releasing", "done")
RESTORING, ABORTED = "restoring", "aborted"
FORWARD = (TAKEN, TESTING, ANALYSING_TEST, FLIPPING, CHECKING, ANALYSING_LIVE, RELEASING, DONE)
PHASES = FORWARD + (RESTORING, ABORTED)
FINAL = (DONE, ABORTED)
KINDS = ("promote", "rollback", "decommission")  # a decommission holds the record so no route reaches it

# The actions a step can ask for; the release commands map each to their code.
ROUTE = "route"  # set the routing stack's active/test to the step's routing, then `pulumi up` it
SMOKE_TEST = "smoke-test"  # smoke tests through the test route, with the test cookie
ANALYSE_TEST = "analyse-test"  # analysis of the test traffic's metrics
SMOKE_LIVE = "smoke-live"  # checks through the default route
ANALYSE_LIVE = "analyse-live"  # analysis of the users' traffic after the flip
RELEASE = "release"  # delete the record: the release is over


class PhaseError(ValueError):
    """A transition the model forbids (backwards, out of a final phase, an unknown phase)."""


@dataclass(frozen=True)
class Routing:
    """What the routing stack says: the color users reach, and the color under test (None: no test route)."""

    active: str
    test: Optional[str] = None

    def describe(self) -> str:
        return f"users on {self.active}, " + (f"testers on {self.test}" if self.test else "no test route")

    def stack_file(self, stack: str = "routing") -> str:
        """The change to commit in Pulumi.<stack>.yaml, so that the next `pulumi up` keeps this routing."""
        test = f"bluegreen:test: {self.test}" if self.test else "no bluegreen:test"
        return f"Pulumi.{stack}.yaml: bluegreen:active: {self.active}, {test}"


@dataclass(frozen=True)
class Step:
    """Write `phase` into the record, then do `action` (with `routing` for a ROUTE)."""

    phase: str
    action: str
    routing: Optional[Routing] = None

    def describe(self) -> str:
        what = f"{self.action} ({self.routing.describe()})" if self.routing else self.action
        return f"[{self.phase}] {what}"


@dataclass(frozen=True)
class Plan:
    """The steps of a resume or an abort; `ends_with`: the routing users are on when it went to plan,
    `on_failure`: the plan to run if a check of this one fails (None: nothing more to undo)."""

    verb: str
    steps: tuple[Step, ...]
    ends_with: Optional[Routing]
    summary: str
    on_failure: Optional["Plan"] = None

    def commit_hint(self, stack: str = "routing") -> str:
        if self.ends_with is None:
            return "no stack-file change to commit"
        return f"commit {self.ends_with.stack_file(stack)}"


@dataclass(frozen=True)
class Intent:
    """What a release meant to do, from its record: enough for any host to finish or undo it."""

    kind: str  # promote or rollback
    color: str  # the color it sends users to
    before: Routing  # where users and testers were before it started
    analysis: bool = False  # bluegreen:analysis is set: the analysis phases run

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PhaseError(f"release kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def testing(self) -> Routing:
        return Routing(self.before.active, self.color)

    @property
    def live(self) -> Routing:
        return Routing(self.color, None)

    @property
    def restored(self) -> Routing:
        return Routing(self.before.active, None)


def phases_of(intent: Intent) -> tuple[str, ...]:
    """The forward phases this release goes through, in order."""
    if intent.kind == "rollback":
        return (TAKEN, FLIPPING, RELEASING, DONE)
    if intent.kind == "decommission":  # its `pulumi destroy` runs while taken: no route changes
        return (TAKEN, DONE)
    skipped = () if intent.analysis else (ANALYSING_TEST, ANALYSING_LIVE)
    return tuple(phase for phase in FORWARD if phase not in skipped)


def check_phase(phase: str) -> str:
    if phase not in PHASES:
        raise PhaseError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
    return phase


def can_advance(current: str, new: str) -> bool:
    """Only forward: along the forward phases, into restoring from any unfinished phase, then to aborted.
    Staying is allowed: a resumed step repeats the phase it stopped in."""
    check_phase(current), check_phase(new)
    if new == current:
        return True
    if current in FINAL:
        return False
    if new == RESTORING:
        return True
    if new == ABORTED:
        return current in (RESTORING, TAKEN)  # from taken nothing was changed: nothing to restore
    if current == RESTORING:
        return False
    return FORWARD.index(new) > FORWARD.index(current)


def advance(current: str, new: str) -> str:
    if not can_advance(current, new):
        raise PhaseError(f"a release in phase {current!r} cannot move to {new!r}: phases only go forward")
    return new


def _forward_steps(intent: Intent, start: str) -> list[Step]:
    """The steps of the forward phases from `start` on (its own step included), then the release."""
    actions = {TESTING: (Step(TESTING, ROUTE, intent.testing), Step(TESTING, SMOKE_TEST)),
               ANALYSING_TEST: (Step(ANALYSING_TEST, ANALYSE_TEST),),
               FLIPPING: (Step(FLIPPING, ROUTE, intent.live),),
               CHECKING: (Step(CHECKING, SMOKE_LIVE),),
               ANALYSING_LIVE: (Step(ANALYSING_LIVE, ANALYSE_LIVE),),
               RELEASING: (Step(RELEASING, RELEASE),)}
    order = phases_of(intent)
    steps: list[Step] = []
    for phase in order[order.index(start):] if start in order else ():
        steps.extend(actions.get(phase, ()))
    return steps


def _restore_plan(intent: Intent, phase: str) -> Plan:
    if phase == TAKEN:  # its first step writes `testing` (or `flipping`) before it acts: nothing changed
        return Plan("abort", (Step(ABORTED, RELEASE),), None, "nothing was changed yet: the record is released")
    return Plan("abort", (Step(RESTORING, ROUTE, intent.restored), Step(ABORTED, RELEASE)), intent.restored,
                f"routing put back as before the release: {intent.restored.describe()}")


def _decommission_plan(verb: str, intent: Intent) -> Plan:
    return Plan(verb, (Step(ABORTED, RELEASE),), None,
                f"a decommission of {intent.color} was stopped (users were not affected: nobody is routed to it); "
                f"the record is released: `release.py decommission {intent.color}` finishes it")


def abort_plan(intent: Intent, phase: str) -> Plan:
    """Undo the release from `phase`: users back on the color they were on before it started, no test route."""
    check_phase(phase)
    if intent.kind == "decommission" and phase not in FINAL:
        return _decommission_plan("abort", intent)
    if phase == DONE:
        return Plan("abort", (), None, f"the release is done: users are on {intent.color}; "
                    "`release.py rollback` sends them back")
    if phase == ABORTED:
        return Plan("abort", (Step(ABORTED, RELEASE),), None, "already aborted: the record is released")
    return _restore_plan(intent, phase)


def resume_plan(intent: Intent, phase: str) -> Plan:
    """Finish the release from `phase`: the step it stopped in again (each is safe to repeat), the checks and
    analysis that never ran, then the release of the record; a failed check undoes it (on_failure)."""
    check_phase(phase)
    if intent.kind == "decommission" and phase not in FINAL:
        return _decommission_plan("resume", intent)
    if phase in (RESTORING, ABORTED):  # an undo was under way: it can only be finished
        plan = abort_plan(intent, phase)
        return Plan("resume", plan.steps, plan.ends_with, f"it was being aborted; {plan.summary}")
    if phase == DONE:
        return Plan("resume", (Step(DONE, RELEASE),), None, "the release is done: the record is released")
    start = (TESTING if intent.kind == "promote" else FLIPPING) if phase == TAKEN else phase
    steps = tuple(_forward_steps(intent, start))
    ends = intent.live
    return Plan("resume", steps, ends, f"finished from {phase}: {ends.describe()}",
                on_failure=_restore_plan(intent, RESTORING))
