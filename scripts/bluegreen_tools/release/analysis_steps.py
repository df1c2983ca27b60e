"""The metric analysis as steps of a release: read `bluegreen:analysis` from the routing stack file (refused
before anything changes), judge the color under test on its test traffic before the flip and the new color on
its users' traffic after it (analysis/gate.py), keep each verdict in the release record and the JUnit report,
and say what a verdict means: no flip, or a rollback while the old color still runs."""

from __future__ import annotations

import argparse
import threading
from typing import Optional

from components.analysis import AnalysisSettings, duration_ms, parse_analysis
from components.domain import SettingsError
from components.stackfile import StackFileError, read_text, stack_config

from .. import ROOT
from ..analysis import gate, load
from ..analysis.decisions import BaselineFigures
from ..analysis.queries import Target
from ..cli import Failure
from ..smoke.checks import CheckResult
from .runner import Runner

KEEP, ROLL_BACK = "keep", "rollback"


def read_analysis(stack: str) -> Optional[AnalysisSettings]:
    """The routing stack's `bluegreen:analysis`, from its stack file (None: not set, today's release)."""
    path = ROOT / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return None
    try:
        value = stack_config(read_text(path)).get("bluegreen:analysis")
        return parse_analysis(value, stack, secret=isinstance(value, dict) and set(value) == {"secure"})
    except (StackFileError, SettingsError) as error:
        raise Failure(f"{path.name}: {error}") from None


def junit_suite(verdict: gate.AnalysisVerdict, title: str) -> tuple[str, list[CheckResult]]:
    """A verdict as a JUnit test suite: one case per figure of each measurement."""
    cases = [CheckResult(row["name"], row["outcome"] in (gate.PASSED, gate.DRY_RUN), 0.0,
                         f"{row['message']} (query {row['query']}; value {row['value']}; threshold "
                         f"{row['threshold'] or '-'}; window {row['window']})")
             for row in verdict.rows()]
    return title, cases


class ReleaseAnalysis:
    """One release's analysis: its settings, its Prometheus client, the old color's baseline."""

    def __init__(self, runner: Runner, settings: AnalysisSettings, namespace: str, app: str,
                 if_inconclusive: str = ROLL_BACK, stop: Optional[threading.Event] = None):
        self.runner, self.settings, self.namespace, self.app = runner, settings, namespace, app
        self.if_inconclusive, self.stop = if_inconclusive, stop
        try:
            self.prometheus = gate.client_for(settings)
        except SettingsError as error:
            raise Failure(str(error)) from None
        self.baseline: Optional[BaselineFigures] = None
        self.verdicts: list[gate.AnalysisVerdict] = []

    def target(self, color: str, release: Optional[str]) -> Target:
        return Target(self.namespace, self.app, color, release or "")

    def _judged(self, verdict: gate.AnalysisVerdict, hold) -> gate.AnalysisVerdict:
        self.verdicts.append(verdict)
        if hold is not None and hold.held is not None:
            try:
                hold.held.note_summary(f"{verdict.stage} {verdict.outcome}: {verdict.reason}")
            except Failure as error:  # the record is for status; the verdict stands without it
                self.runner.log(f"note: the analysis summary could not be written to the record ({error})")
        self.runner.log(f"analysis {verdict.stage}: {verdict.outcome}: {verdict.reason}")
        return verdict

    def test_load(self, args: argparse.Namespace, cookie: Optional[str], color: str) -> None:
        """The load of --test-load through the test route, bounded, before the color under test is judged."""
        if not getattr(args, "test_load", None):
            return
        seconds = args.test_load_duration or self.settings.interval_seconds
        with self.runner.step(f"test load: {args.test_load:g} requests a second to {color} for {seconds:g}s"):
            result = load.drive(args.url, args.check or ["/"], cookie, args.test_load, seconds,
                                verify=not args.insecure, stop=self.stop)
        self.runner.log(f"  test load: {result.describe()}")

    def before_flip(self, color: str, release: Optional[str], users: str, hold=None) -> None:
        """The color under test on its test traffic: a verdict that is not passed (or a dry run) stops the flip."""
        with self.runner.step(f"analyse {color} (release {release}) on its test traffic"):
            verdict = self._judged(gate.pre_promotion(self.settings, self.target(color, release), self.prometheus,
                                                      self.runner.log, stop=self.stop), hold)
            if verdict.blocks:
                raise Failure(f"the analysis of {color} before the flip is {verdict.outcome}, so users stay on "
                              f"{users}: {verdict.reason}")

    def note_baseline(self, color: str, release: Optional[str]) -> None:
        """The old color's figures before the flip, when the settings compare with them."""
        self.baseline = gate.baseline_of(self.settings, self.target(color, release), self.prometheus, self.runner.log)

    def after_flip(self, color: str, release: Optional[str], back: str, hold=None) -> None:
        """`count` measurements of the new color's users' traffic: failed (or inconclusive, unless kept) rolls
        back, while `back` still runs."""
        with self.runner.step(f"analyse {color} (release {release}) on its users' traffic"):
            verdict = self._judged(gate.post_promotion(self.settings, self.target(color, release), self.prometheus,
                                                       self.runner.log, baseline=self.baseline, stop=self.stop),
                                   hold)
        inconclusive = verdict.outcome == gate.INCONCLUSIVE
        if verdict.outcome == gate.FAILED or (inconclusive and self.if_inconclusive == ROLL_BACK):
            raise Failure(f"the analysis of {color} after the flip is {verdict.outcome}, so users go back to {back}: "
                          f"{verdict.reason}")
        if inconclusive:
            self.runner.log(f"note: the analysis after the flip is inconclusive; users stay on {color} as "
                            "--if-inconclusive keep asked")

    def suites(self) -> list[tuple[str, list[CheckResult]]]:
        return [junit_suite(verdict, f"analysis {verdict.stage}") for verdict in self.verdicts]


def load_rate(text: str) -> float:
    """--test-load: requests a second, within analysis.load's bounds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of requests a second: give e.g. 20") from None
    problem = load.rate_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def load_duration(text: str) -> float:
    """--test-load-duration: seconds, as a number or a duration (30s, 2m, 1m30s), within analysis.load's bounds."""
    milliseconds = duration_ms(text if not text.replace(".", "", 1).isdigit() else f"{text}s")
    if milliseconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give e.g. 30s or 2m")
    seconds = float(milliseconds) / 1000
    problem = load.duration_problem(seconds)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--test-load", type=load_rate, metavar="RPS",
                        help="before the analysis of the color under test, send it RPS requests a second through "
                             "the gateway with the test cookie, spread over the --check paths (needs "
                             "bluegreen:analysis)")
    parser.add_argument("--test-load-duration", type=load_duration, metavar="DURATION",
                        help="how long the test load runs (default: the analysis interval)")
    parser.add_argument("--if-inconclusive", choices=(ROLL_BACK, KEEP), default=ROLL_BACK,
                        help="after the flip, when the analysis has no figures to judge (no data with noData=wait, "
                             "or no answer from Prometheus): roll back (default) or keep users on the new color")
