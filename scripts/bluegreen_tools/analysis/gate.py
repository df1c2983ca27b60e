"""The analysis as the release phases call it: before the flip on the test traffic, after it on the users'.

Each gate returns an AnalysisVerdict (passed, failed, inconclusive or dry-run), every measurement it took and
a one-line reason naming the query, the value, the threshold and the window. Nothing here acts on the cluster:
the caller decides what a verdict means (before the flip anything but passed or dry-run means no flip; after
it, failed means roll back, and inconclusive means roll back unless told otherwise). The clock, the sleep and
the Prometheus client are injected, so the tests drive them; no exception leaves a gate for a Prometheus that
is unreachable, slow or answering garbage: that is a measurement in ERROR, and the verdict says it plainly.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from components.analysis import AnalysisSettings
from . import decisions as d
from .measure import prometheus_url, take_baseline, take_measurement
from .prometheus import ERROR, Prometheus
from .queries import Target

PASSED, FAILED, INCONCLUSIVE, DRY_RUN = "passed", "failed", "inconclusive", "dry-run"
MAX_QUERY_SECONDS = 10.0  # every query's time limit, shorter still when the interval is
Log = Callable[[str], None]
Sleep = Callable[[float], Any]


@dataclass(frozen=True)
class AnalysisVerdict:
    outcome: str  # PASSED, FAILED, INCONCLUSIVE or DRY_RUN
    reason: str  # one line
    measurements: tuple[d.Measurement, ...] = ()
    would: Optional[str] = None  # in a dry run: the outcome it held back (FAILED or INCONCLUSIVE), None if passed
    stage: str = ""  # "pre-promotion" or "post-promotion"
    min_requests: int = 0  # the request count's threshold, for the rows

    @property
    def blocks(self) -> bool:
        """Whether the release must not go on (a dry run never blocks)."""
        return self.outcome in (FAILED, INCONCLUSIVE)

    def rows(self) -> list[dict[str, Any]]:
        """Every measurement's figures as rows for status and JUnit."""
        return [row for index, measured in enumerate(self.measurements)
                for row in measurement_rows(measured, index, self.stage, self.min_requests)]

    def to_record(self) -> dict[str, Any]:
        return {"stage": self.stage, "outcome": self.outcome, "reason": self.reason, "would": self.would,
                "min_requests": self.min_requests, "measurements": [m.to_record() for m in self.measurements]}


def measurement_rows(measured: d.Measurement, index: int = 0, stage: str = "",
                     min_requests: int = 0) -> list[dict[str, Any]]:
    """One measurement as rows (name, query, value, threshold, window, outcome, message): its request count, then
    each check. A row's name is unique in a run: "<stage> #<n> <check>"."""
    prefix = " ".join(part for part in (stage, f"#{index + 1}") if part)
    # Without checks, the request count itself ended the measurement (no data, or no answer).
    counted = PASSED if measured.checks else measured.outcome
    rows = [{"name": f"{prefix} request-count", "query": measured.requests_query, "value": measured.requests,
             "threshold": f">= {min_requests}" if min_requests else "", "window": measured.window,
             "outcome": counted, "message": measured.message if counted != PASSED
             else f"{d.figure(measured.requests or 0.0)} requests over the last {measured.window}"}]
    rows += [{"name": f"{prefix} {check.name}", "query": check.query, "value": check.value,
              "threshold": check.threshold, "window": measured.window, "outcome": check.outcome,
              "message": check.message} for check in measured.checks]
    return rows


def client_for(settings: AnalysisSettings, environ: Mapping[str, str] = os.environ) -> Prometheus:
    """A client of the Prometheus the settings (or BLUEGREEN_PROMETHEUS_URL) name; each query's time limit is at
    most MAX_QUERY_SECONDS and never more than the interval. Raises SettingsError without a usable URL."""
    return Prometheus(prometheus_url(settings, environ), timeout=min(MAX_QUERY_SECONDS, settings.interval_seconds))


def _ending(settings: AnalysisSettings, result: d.Verdict, taken: Sequence[d.Measurement], stage: str,
            errors: str) -> AnalysisVerdict:
    """The decisions' verdict as a gate's outcome."""
    measurements = tuple(taken)
    if result.would == d.ROLL_BACK or (settings.dry_run and result.action == d.PROMOTE):
        would = None if result.would is None else _outcome(measurements, errors)
        reason = result.message if would else f"dry run: {result.message}"
        return AnalysisVerdict(DRY_RUN, reason, measurements, would, stage, settings.min_requests)
    if result.action == d.PROMOTE:
        return AnalysisVerdict(PASSED, result.message, measurements, None, stage, settings.min_requests)
    return AnalysisVerdict(_outcome(measurements, errors), result.message, measurements, None, stage,
                           settings.min_requests)


def _outcome(measurements: Sequence[d.Measurement], errors: str) -> str:
    """FAILED when a measurement failed (its figures, or no data with noData=fail); INCONCLUSIVE when only no
    answer from Prometheus, or no data with noData=wait, stood in the way: the caller picks the safe state."""
    return FAILED if any(m.outcome == d.FAILED for m in measurements) else INCONCLUSIVE


def _measure(prometheus: Prometheus, settings: AnalysisSettings, target: Target, clock: Callable[[], float],
             baseline: Optional[d.BaselineFigures], log: Log, stage: str, number: int) -> d.Measurement:
    measured = take_measurement(prometheus, settings, target, baseline, at=clock())
    log(f"analysis {stage} #{number} of {target.workload} ({target.release}): {measured.outcome}: {measured.message}")
    return measured


def pre_promotion(settings: AnalysisSettings, target: Target, prometheus: Prometheus, log: Log,
                  sleep: Sleep = time.sleep, clock: Callable[[], float] = time.time, errors: str = "fail",
                  stop: Optional[threading.Event] = None) -> AnalysisVerdict:
    """The color under test, on the traffic that reached it through the test route, before the flip.

    One measurement decides. With noData=wait a window without enough requests (or Prometheus without an
    answer, with errors="wait") is measured again, `interval` apart, up to `count` times."""
    stage, taken = "pre-promotion", []
    policy = d.Policy.before_flip(settings, errors)
    for number in range(1, settings.count + 1):
        if number > 1 and _stopped(sleep, settings.interval_seconds, stop):
            break
        measured = _measure(prometheus, settings, target, clock, None, log, stage, number)
        taken.append(measured)
        waiting = measured.outcome == d.INCONCLUSIVE or (measured.outcome == ERROR and errors == "wait")
        if not waiting:
            return _ending(settings, d.verdict([measured], policy), taken, stage, errors)
    last = taken[-1] if taken else None
    reason = (f"no measurement had figures to judge after {len(taken)} of {settings.count} tries "
              f"{settings.interval} apart: {last.message}" if last else "stopped before the first measurement")
    if settings.dry_run:
        return AnalysisVerdict(DRY_RUN, f"dry run, so the flip goes on; it would have stopped: {reason}",
                               tuple(taken), INCONCLUSIVE, stage, settings.min_requests)
    return AnalysisVerdict(INCONCLUSIVE, reason, tuple(taken), None, stage, settings.min_requests)


def baseline_of(settings: AnalysisSettings, old: Target, prometheus: Prometheus, log: Log,
                clock: Callable[[], float] = time.time) -> Optional[d.BaselineFigures]:
    """The old color's figures before the flip, when the settings compare with them (None otherwise)."""
    if settings.baseline is None:
        return None
    figures = take_baseline(prometheus, settings, old, at=clock())
    shown = ", ".join(part for part in (
        f"success rate {d.figure(figures.success_rate)}%" if figures.success_rate is not None else "",
        f"p99 {d.figure(figures.latency_p99_ms)}ms" if figures.latency_p99_ms is not None else "") if part)
    log(f"analysis baseline of {old.workload} ({old.release}) over the last {settings.interval}: "
        f"{shown or 'no data, so no comparison'}")
    return figures


def post_promotion(settings: AnalysisSettings, target: Target, prometheus: Prometheus, log: Log,
                   sleep: Sleep = time.sleep, on_measurement: Callable[[d.Measurement], Any] = lambda _: None,
                   baseline: Optional[d.BaselineFigures] = None, previous: Sequence[d.Measurement] = (),
                   clock: Callable[[], float] = time.time, errors: str = "fail",
                   stop: Optional[threading.Event] = None) -> AnalysisVerdict:
    """`count` measurements `interval` apart on the new color's users' traffic, after the flip.

    Each waits one interval first (so that its window holds traffic after the flip), is handed to
    `on_measurement` (the release record keeps it) and weighed: failureLimit failed measurements end the gate at
    once. `previous`: the measurements a resumed release took already. `stop` set: the gate ends inconclusive."""
    stage, taken = "post-promotion", list(previous)
    policy = d.Policy.after_flip(settings, errors)
    result = d.verdict(taken, policy)
    while result.action == d.CONTINUE:
        if _stopped(sleep, settings.interval_seconds, stop):
            return AnalysisVerdict(INCONCLUSIVE, f"stopped after {len(taken)} of {settings.count} measurements",
                                   tuple(taken), None, stage, settings.min_requests)
        measured = _measure(prometheus, settings, target, clock, baseline, log, stage, len(taken) + 1)
        on_measurement(measured)
        taken.append(measured)
        result = d.verdict(taken, policy)
    return _ending(settings, result, taken, stage, errors)


def _stopped(sleep: Sleep, seconds: float, stop: Optional[threading.Event]) -> bool:
    """Wait `seconds` (on `stop` when given, so that setting it ends the wait); True when `stop` was set."""
    if stop is None:
        sleep(seconds)
        return False
    return stop.wait(seconds)


__all__ = ["AnalysisVerdict", "DRY_RUN", "FAILED", "INCONCLUSIVE", "PASSED", "baseline_of", "client_for",
           "measurement_rows", "post_promotion", "pre_promotion"]
