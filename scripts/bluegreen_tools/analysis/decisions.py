"""The analysis's decisions, as pure functions: a check's answer against its range, a measurement's outcome, and
the verdict on a run of measurements (promote, roll back, keep waiting), with the one-line messages that say why.

A measurement is PASSED, FAILED, INCONCLUSIVE (no data, with noData=wait) or ERROR (Prometheus could not answer).
An ERROR counts as a failure unless the policy says to wait it out: without figures the release is not known to
be healthy, and the safe ending after the flip is the rollback. FAILED (and ERROR) measurements reaching
failureLimit roll back at once; after `count` measurements the release is promoted, unless none of them passed
(a run of only inconclusive measurements proves nothing, so it fails). A dry run reports the same verdicts but
never rolls back: it says what it would have done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from components.analysis import AnalysisSettings, Baseline
from .prometheus import ERROR, NO_DATA, Answer
from .queries import PlannedCheck

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"  # and ERROR, from .prometheus
PROMOTE, ROLL_BACK, CONTINUE = "promote", "roll back", "keep waiting"
LABELS = {"success-rate": "success rate", "latency-p99": "p99 latency", "request-count": "requests"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: str
    value: Optional[float]
    message: str  # one line: the value, the threshold, the window, the query
    query: str = ""
    threshold: str = ""  # as a report shows it: ">= 99%", "<= 500ms", "drop <= 1 point"


@dataclass(frozen=True)
class Measurement:
    outcome: str
    message: str  # one line: why this outcome
    window: str
    requests: Optional[float] = None
    checks: tuple[CheckResult, ...] = ()
    at: Optional[float] = None  # Unix time the window ended
    requests_query: str = ""

    def to_record(self) -> dict[str, Any]:
        """As data for the release record and the reports (JSON)."""
        return {"outcome": self.outcome, "message": self.message, "window": self.window, "requests": self.requests,
                "at": self.at, "requests_query": self.requests_query, "checks": [vars(check) for check in self.checks]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Measurement":
        return cls(**{**record, "checks": tuple(CheckResult(**check) for check in record.get("checks", ()))})


@dataclass(frozen=True)
class BaselineFigures:
    """The old color's figures over a window before the flip; None where it had no data."""

    color: str
    success_rate: Optional[float] = None
    latency_p99_ms: Optional[float] = None


@dataclass(frozen=True)
class Policy:
    count: int
    failure_limit: int
    dry_run: bool = False
    errors: str = "fail"  # or "wait": a query Prometheus could not answer is inconclusive

    @classmethod
    def after_flip(cls, settings: AnalysisSettings, errors: str = "fail") -> "Policy":
        return cls(settings.count, settings.failure_limit, settings.dry_run, errors)

    @classmethod
    def before_flip(cls, settings: AnalysisSettings, errors: str = "fail") -> "Policy":
        """One measurement of the test traffic gates the flip."""
        return cls(1, 1, settings.dry_run, errors)


@dataclass(frozen=True)
class Verdict:
    action: str
    message: str
    passed: int = 0
    failed: int = 0
    inconclusive: int = 0
    would: Optional[str] = None  # in a dry run: the action it held back


def figure(value: float, threshold: Optional[float] = None) -> str:
    """A value as a message shows it: one decimal, more when one would hide which side of the threshold it is."""
    for digits in range(1, 7):
        shown = round(value, digits)
        if threshold is None or value == threshold or (shown != threshold and (shown < threshold) == (value < threshold)):
            break
    return f"{shown:.{digits}f}"


def _limit(value: float) -> str:
    return f"{value:g}"


def _window(interval: str) -> str:
    return f"over the last {interval}"


def judge(check: PlannedCheck, answer: Answer, interval: str) -> CheckResult:
    """One check's answer against its range."""
    label = LABELS.get(check.name, check.name)
    tail = f"{_window(interval)} (query: {answer.query or check.query})"
    unit = check.unit
    bounds = " and ".join(part for part in (
        f">= {_limit(check.low)}{unit}" if check.low is not None else "",
        f"<= {_limit(check.high)}{unit}" if check.high is not None else "") if part)
    if answer.kind == ERROR:
        return CheckResult(check.name, ERROR, None, f"{label}: no answer: {answer.reason} (query: {check.query})",
                           check.query, bounds)
    if answer.kind == NO_DATA or answer.value is None:
        return CheckResult(check.name, INCONCLUSIVE, None, f"{label}: no data {tail}: {answer.reason}", check.query,
                           bounds)
    value = answer.value
    if check.low is not None and value < check.low:
        text = f"{label} {figure(value, check.low)}{unit} < {_limit(check.low)}{unit} {tail}"
        return CheckResult(check.name, FAILED, value, text, check.query, bounds)
    if check.high is not None and value > check.high:
        text = f"{label} {figure(value, check.high)}{unit} > {_limit(check.high)}{unit} {tail}"
        return CheckResult(check.name, FAILED, value, text, check.query, bounds)
    shown = bounds or "(no threshold of its own)"
    return CheckResult(check.name, PASSED, value, f"{label} {figure(value)}{unit} {shown} {tail}", check.query, bounds)


def compare(results: Sequence[CheckResult], baseline: Baseline, figures: BaselineFigures,
            interval: str) -> tuple[CheckResult, ...]:
    """The new color's figures against the old color's before the flip, where both have them."""
    found = {result.name: result.value for result in results if result.value is not None}
    old = figures.color
    compared = []
    if baseline.max_success_rate_drop is not None and figures.success_rate is not None and "success-rate" in found:
        new, before, margin = found["success-rate"], figures.success_rate, baseline.max_success_rate_drop
        drop = before - new
        outcome = FAILED if drop > margin else PASSED
        relation = "more than" if outcome == FAILED else "within"
        compared.append(CheckResult("baseline-success-rate", outcome, new, (
            f"success rate {figure(new)}% is {figure(max(drop, 0.0))} points below {old}'s {figure(before)}% before "
            f"the flip, {relation} the {_limit(margin)}-point margin (baseline.maxSuccessRateDrop) "
            f"{_window(interval)}"), threshold=f"drop <= {_limit(margin)} points below {old}'s {figure(before)}%"))
    if baseline.max_latency_increase is not None and figures.latency_p99_ms and "latency-p99" in found:
        new, before, margin = found["latency-p99"], figures.latency_p99_ms, baseline.max_latency_increase
        increase = (new - before) / before * 100
        outcome = FAILED if increase > margin else PASSED
        relation = "more than" if outcome == FAILED else "within"
        compared.append(CheckResult("baseline-latency-p99", outcome, new, (
            f"p99 latency {figure(new)}ms is {figure(max(increase, 0.0))}% above {old}'s {figure(before)}ms before "
            f"the flip, {relation} the {_limit(margin)}% margin (baseline.maxLatencyIncrease) {_window(interval)}"),
            threshold=f"<= {_limit(margin)}% above {old}'s {figure(before)}ms"))
    return tuple(compared)


def measure(settings: AnalysisSettings, requests: Answer, results: Sequence[CheckResult] = (),
            baseline: Optional[BaselineFigures] = None, at: Optional[float] = None) -> Measurement:
    """One measurement from its request count and its checks' results (none when the count showed no data)."""
    window = settings.interval
    if baseline is not None and settings.baseline is not None:
        results = tuple(results) + compare(results, settings.baseline, baseline, window)
    checks = tuple(results)

    def made(outcome: str, message: str, count: Optional[float] = None) -> Measurement:
        return Measurement(outcome, message, window, count, checks, at, requests.query)

    if requests.kind == ERROR:
        return made(ERROR, f"requests: no answer: {requests.reason} (query: {requests.query})")
    count = requests.value if requests.kind != NO_DATA else 0.0
    if count is None or count < settings.min_requests:
        outcome = FAILED if settings.no_data == "fail" else INCONCLUSIVE
        return made(outcome, f"no data: {figure(count or 0.0)} requests < minRequests {settings.min_requests} "
                    f"{_window(window)} (noData={settings.no_data}; query: {requests.query})", count)
    for outcome in (ERROR, FAILED, INCONCLUSIVE):
        first = next((check for check in checks if check.outcome == outcome), None)
        if first is not None:
            if outcome == INCONCLUSIVE and settings.no_data == "fail":
                return made(FAILED, f"{first.message} (noData=fail)", count)
            return made(outcome, first.message, count)
    return made(PASSED, f"all {len(checks)} checks passed on {figure(count)} requests {_window(window)}", count)


def verdict(measurements: Sequence[Measurement], policy: Policy) -> Verdict:
    """What to do after these measurements (only the first `count` are weighed)."""
    taken = list(measurements[: policy.count])
    real = _verdict(taken, policy)
    if not policy.dry_run or real.action != ROLL_BACK:
        return real
    first = next(_verdict(taken[:k], policy) for k in range(1, len(taken) + 1)
                 if _verdict(taken[:k], policy).action == ROLL_BACK)
    action = CONTINUE if len(taken) < policy.count else PROMOTE
    return Verdict(action, f"dry run, so no rollback; it would have rolled back: {first.message}", real.passed,
                   real.failed, real.inconclusive, would=ROLL_BACK)


def _verdict(taken: Sequence[Measurement], policy: Policy) -> Verdict:
    errors_fail = policy.errors == "fail"
    failed = [m for m in taken if m.outcome == FAILED or (m.outcome == ERROR and errors_fail)]
    passed = sum(m.outcome == PASSED for m in taken)
    inconclusive = len(taken) - passed - len(failed)
    counts = (passed, len(failed), inconclusive)
    if len(failed) >= policy.failure_limit:
        return Verdict(ROLL_BACK, f"{len(failed)} of {len(taken)} measurements failed (failureLimit "
                       f"{policy.failure_limit}): {failed[-1].message}", *counts)
    if len(taken) < policy.count:
        return Verdict(CONTINUE, f"{len(taken)} of {policy.count} measurements taken, {passed} passed", *counts)
    if passed == 0:
        return Verdict(ROLL_BACK, f"none of the {policy.count} measurements had figures to judge (all inconclusive), "
                       f"so nothing showed the release healthy: {taken[-1].message}", *counts)
    return Verdict(PROMOTE, f"{passed} of {policy.count} measurements passed, {len(failed)} failed (failureLimit "
                   f"{policy.failure_limit}), {inconclusive} inconclusive", *counts)
