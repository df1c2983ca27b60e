"""What gates the next flip, as a plan shows it: the routing stack's `bluegreen:analysis` (components/analysis.py),
every setting with its value, or none, in which case the smoke tests alone decide. Pure logic: the report's entry
is plain data (the JSON output), and the words for it are shared by the text and markdown renderings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping, Optional

from components.analysis import AnalysisSettings, duration_ms, parse_analysis
from components.settings import RoutingSettings, SettingsError

NO_ANALYSIS = "no analysis: the flip is gated by the smoke tests only"
KEY = "bluegreen:analysis"


def analysis_settings(settings: Any, raw: Mapping[str, Any], stack: str) -> Optional[AnalysisSettings]:
    """The routing stack's analysis: from its settings (routing_settings reads the key), or, where they do not
    carry it, parsed from the config as the program parses it; None for a color stack or none configured."""
    if not isinstance(settings, RoutingSettings):
        return None
    if hasattr(settings, "analysis"):
        return settings.analysis
    try:
        return parse_analysis(raw.get("analysis"), stack)
    except SettingsError:
        return None  # the program's run refuses the stack with the same message


def analysis_entry(analysis: Optional[AnalysisSettings]) -> Optional[dict[str, Any]]:
    """The report's `analysis`: every setting under its config name (None when no analysis is configured)."""
    if analysis is None:
        return None
    baseline = analysis.baseline
    return {
        "prometheusUrl": analysis.prometheus_url, "interval": analysis.interval, "count": analysis.count,
        "failureLimit": analysis.failure_limit, "minRequests": analysis.min_requests, "noData": analysis.no_data,
        "successRate": analysis.success_rate, "latencyP99": analysis.latency_p99, "dryRun": analysis.dry_run,
        "baseline": None if baseline is None else {"maxSuccessRateDrop": baseline.max_success_rate_drop,
                                                   "maxLatencyIncrease": baseline.max_latency_increase},
        "queries": [{"name": q.name, "query": q.query, "min": q.min, "max": q.max} for q in analysis.queries],
    }


def _number(value: float) -> str:
    return f"{value:g}"


def _span(interval: str, count: int) -> str:
    """count x interval, as a person reads a duration (2m30s)."""
    ms = duration_ms(interval) * count
    seconds, rest_ms = divmod(int(ms), 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else "",
             f"{rest_ms}ms" if rest_ms or ms == Decimal(0) else ""]
    return "".join(parts)


def _bounds(low: Optional[float], high: Optional[float]) -> str:
    if low is not None and high is not None:
        return f"between {_number(low)} and {_number(high)} (min {_number(low)}, max {_number(high)})"
    return f"at least {_number(low)} (min)" if low is not None else f"at most {_number(high)} (max)"


def gate_rows(entry: Optional[Mapping[str, Any]]) -> list[tuple[str, Optional[str], str]]:
    """(setting, its text as given or None, what it means for the flip) for each setting; none without analysis.
    The text as given (the URL, a query) is what markdown shows as code."""
    if entry is None:
        return []
    url = entry["prometheusUrl"]
    rows: list[tuple[str, Optional[str], str]] = [
        ("prometheusUrl", url or None, "" if url else "(not set: BLUEGREEN_PROMETHEUS_URL must give it where "
                                                      "release.py runs)"),
        ("interval, count", None, f"{entry['count']} measurements {entry['interval']} apart "
                                  f"({_span(entry['interval'], entry['count'])}), before the flip on the test "
                                  f"traffic and after it on the users'"),
        ("failureLimit", None, f"{entry['failureLimit']} failed measurement(s) fail the release"),
        ("minRequests", None, f"at least {entry['minRequests']} requests in a window (noData: {entry['noData']})"),
        ("successRate", None, f"at least {_number(entry['successRate'])}% of requests succeed"),
        ("latencyP99", None, f"p99 latency at most {entry['latencyP99']}" if entry["latencyP99"] else "(none)"),
    ]
    baseline = entry.get("baseline")
    if baseline:
        said = [f"success rate at most {_number(baseline['maxSuccessRateDrop'])} points below the old color's"
                if baseline.get("maxSuccessRateDrop") is not None else "",
                f"p99 latency at most {_number(baseline['maxLatencyIncrease'])}% above the old color's"
                if baseline.get("maxLatencyIncrease") is not None else ""]
        rows.append(("baseline", None, "; ".join(part for part in said if part)))
    rows.append(("dryRun", None, "true: measured and reported, but it never stops the release nor rolls the flip back"
                 if entry["dryRun"] else "false: a failed analysis stops the release, or rolls the flip back"))
    rows += [(f"queries: {q['name']}", q["query"], f"must be {_bounds(q['min'], q['max'])}") for q in entry["queries"]]
    return rows
