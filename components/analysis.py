"""The metric analysis of a release (`bluegreen:analysis`, on the routing stack): its settings, parsed and validated.

Pure logic: no engine, no network. `parse_analysis` turns the config object into a frozen AnalysisSettings (None
when the key is absent or empty: releases are then judged by the smoke tests alone, as before), or raises
SettingsError naming the key path, the value and the fix. The Prometheus URL may be left empty here when the
release runs with BLUEGREEN_PROMETHEUS_URL set: the settings carry the configured value only, the release tools
apply the override.

The PromQL sanity check of the custom queries is analysis_promql.py's.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import shlex
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import urlsplit

# Re-exported: the PromQL check's names, which the release tools and the tests import from here.
from .analysis_promql import MAX_QUERY_LENGTH, PLACEHOLDERS, Placeholder, placeholders, promql_problem  # noqa: F401
from .settings import SettingsError, parsed_value

PROJECT = "bluegreen"
KEY = "analysis"
FIELDS = ("prometheusUrl", "interval", "count", "failureLimit", "minRequests", "noData", "successRate", "latencyP99",
          "baseline", "dryRun", "queries")
BASELINE_FIELDS = ("maxSuccessRateDrop", "maxLatencyIncrease")
QUERY_FIELDS = ("name", "query", "min", "max")
NO_DATA = ("fail", "wait")
# The built-in checks' names, which a custom check may not take (reports and JUnit cases are named by them).
BUILTIN_CHECKS = ("request-count", "success-rate", "latency-p99", "baseline-success-rate", "baseline-latency-p99")

MIN_INTERVAL_MS, MAX_INTERVAL_MS = 1000, 3_600_000  # below a second no scrape lands in the window
MAX_ANALYSIS_MS = 24 * 3_600_000  # count x interval: a release is not held open for more than a day
MAX_LATENCY_MS = 600_000
MAX_QUERIES, MAX_URL_LENGTH = 20, 2048

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?\Z")
# A Go/Istio duration: numbers with units, e.g. 500ms, 30s, 1m30s (ms before m, so 5ms is not 5 minutes then s).
_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|h|m|s))+\Z")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|h|m|s)")
_DURATION_MS = {"h": Decimal(3_600_000), "m": Decimal(60_000), "s": Decimal(1000), "ms": Decimal(1),
                "us": Decimal("0.001"), "µs": Decimal("0.001"), "ns": Decimal("0.000001")}


@dataclass(frozen=True)
class CustomQuery:
    """A check of the team's own: a PromQL template whose one number must stay within [min, max]."""

    name: str
    query: str
    min: Optional[float] = None
    max: Optional[float] = None


@dataclass(frozen=True)
class Baseline:
    """How much worse than the old color (its figures before the flip) the new one may be."""

    max_success_rate_drop: Optional[float] = None  # percent points
    max_latency_increase: Optional[float] = None  # percent of the old p99


@dataclass(frozen=True)
class AnalysisSettings:
    prometheus_url: str = ""  # empty: BLUEGREEN_PROMETHEUS_URL must give it at run time
    interval: str = "30s"  # normalized: whole seconds ("90s") or milliseconds ("1500ms"), as PromQL ranges take
    count: int = 5
    failure_limit: int = 1
    min_requests: int = 10
    no_data: str = "fail"
    success_rate: float = 99.0
    latency_p99: Optional[str] = None  # normalized like interval
    baseline: Optional[Baseline] = None
    dry_run: bool = False
    queries: tuple[CustomQuery, ...] = ()

    @property
    def interval_seconds(self) -> float:
        return float(duration_ms(self.interval)) / 1000

    @property
    def latency_p99_ms(self) -> Optional[float]:
        return None if self.latency_p99 is None else float(duration_ms(self.latency_p99))

    def as_config(self) -> dict[str, Any]:
        """The settings as the config object that gives them (defaults included): what a plan shows."""
        config: dict[str, Any] = {
            "prometheusUrl": self.prometheus_url, "interval": self.interval, "count": self.count,
            "failureLimit": self.failure_limit, "minRequests": self.min_requests, "noData": self.no_data,
            "successRate": self.success_rate, "latencyP99": self.latency_p99, "dryRun": self.dry_run,
            "queries": [{key: value for key, value in (("name", q.name), ("query", q.query), ("min", q.min),
                                                        ("max", q.max)) if value is not None} for q in self.queries],
        }
        if self.baseline:
            config["baseline"] = {key: value for key, value in (
                ("maxSuccessRateDrop", self.baseline.max_success_rate_drop),
                ("maxLatencyIncrease", self.baseline.max_latency_increase)) if value is not None}
        return config


def duration_ms(text: str) -> Optional[Decimal]:
    """The milliseconds a Go/Istio duration (500ms, 30s, 1m30s) stands for, or None when it is not one."""
    if not isinstance(text, str) or not _DURATION.match(text):
        return None
    return sum((Decimal(number) * _DURATION_MS[unit] for number, unit in _DURATION_PART.findall(text)), Decimal(0))


def _normalized(ms: Decimal) -> str:
    whole = int(ms)
    return f"{whole // 1000}s" if whole % 1000 == 0 else f"{whole}ms"


def url_problem(text: str) -> Optional[str]:
    """Why a Prometheus base URL would not do, or None: http(s), a host, no credentials, no query string."""
    if len(text) > MAX_URL_LENGTH:
        return f"it is {len(text)} characters long, over {MAX_URL_LENGTH}"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "it holds spaces or control characters"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number from 0 to 65535
    except ValueError as error:
        return f"it is not a URL ({error})"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it has no host"
    if parts.username is not None or parts.password is not None:
        return "it holds credentials, which would sit in plain text in the stack file"
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        return "it has a query string or a fragment; give the base URL only"
    if parts.path.rstrip("/").endswith("/api/v1/query"):
        return "it ends with /api/v1/query, which the release adds itself; give the base URL only"
    return None


def _redacted(text: str) -> str:
    """A URL as a message may show it: without what sits before '@' in its authority."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1[credentials]@", text)


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = value if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return f"(a {type(value).__name__} that cannot be shown)"
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# --- the config object ----------------------------------------------------------------------------------------


class _Fields:
    """Errors that name the key path, the value and a `pulumi config` command that fixes it."""

    def __init__(self, stack: str, secret: bool):
        self.stack, self.secret = stack, secret

    def fail(self, path: str, value: Any, problem: str, example: Any = None, fix: Optional[str] = None) -> SettingsError:
        key = f"{KEY}.{path}" if path else KEY
        shown = "[secret]" if self.secret else _show(_redacted(value) if isinstance(value, str) else value)
        if fix is None:
            fix = f"pulumi config set --path '{key}' {shlex.quote(str(example))} -s {self.stack}"
        return SettingsError(f"{PROJECT}:{key} is {shown}: {problem}. Fix: {fix}")

    def remove(self, path: str) -> str:
        return f"pulumi config rm --path '{KEY}.{path}' -s {self.stack}"

    def key(self, path: str, name: str = "") -> str:
        return ".".join(part for part in (KEY, path, name) if part)

    def object(self, path: str, value: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, value, "it must be an object", fix=f"pulumi config rm {self.key(path)} -s "
                            f"{self.stack}, then set its fields: pulumi config set --path '{self.key(path, allowed[0])}'"
                            f" ... -s {self.stack}")
        for name in value:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                where = ".".join(part for part in (path, str(name)) if part)
                raise self.fail(where, value[name], f"{_show(name)} is not a field of {self.key(path)}{hint}; the "
                                f"fields are {', '.join(allowed)}", fix=self.remove(where))
        return value

    def number(self, path: str, value: Any, low: float, high: float, example: Any, *, above_low: bool = False,
               percent: bool = False, whole: bool = False) -> float:
        text = value.strip().removesuffix("%") if isinstance(value, str) and percent else value
        try:
            if isinstance(text, bool):
                raise ValueError
            number = float(Decimal(text.strip()) if isinstance(text, str) else text)
        except (ValueError, TypeError, InvalidOperation, OverflowError):
            number = math.nan
        if whole:
            wanted = f"a whole number from {low:g} to {high:g}"
        else:
            wanted = f"a number {'above' if above_low else 'at least'} {low:g} and at most {high:g}"
        if (not math.isfinite(number) or number < low or (above_low and number == low) or number > high
                or whole and number != int(number)):
            raise self.fail(path, value, f"it must be {wanted}", example)
        return number

    def integer(self, path: str, value: Any, low: int, high: int, example: int) -> int:
        return int(self.number(path, value, low, high, example, whole=True))

    def boolean(self, path: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self.fail(path, value, "it must be true or false", "true")

    def duration(self, path: str, value: Any, low_ms: int, high_ms: int, example: str) -> str:
        ms = duration_ms(value.strip()) if isinstance(value, str) else None
        if ms is None or not low_ms <= ms <= high_ms or ms != ms.to_integral_value():
            raise self.fail(path, value, f"it must be a duration of whole milliseconds from {_normalized(Decimal(low_ms))}"
                            f" to {_normalized(Decimal(high_ms))}, like {example} or 1m30s", example)
        return _normalized(ms)


def parse_analysis(value: Any, stack: str, secret: bool = False) -> Optional[AnalysisSettings]:
    """`bluegreen:analysis` (as Pulumi passes it: JSON text or data) as AnalysisSettings; None when not set.

    `secret`: the key holds a secret (set with --secret), so no message shows a value. Raises SettingsError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    fields = _Fields(stack, secret)
    return _settings(fields, fields.object("", parsed_value(value), FIELDS))


def _settings(fields: _Fields, config: Mapping[str, Any]) -> AnalysisSettings:
    defaults = AnalysisSettings()
    given = {name: config[name] for name in FIELDS if config.get(name) not in (None, "")}
    url = given.get("prometheusUrl", "")
    if not isinstance(url, str) or (url and url_problem(url)):
        raise fields.fail("prometheusUrl", url, url_problem(url) if isinstance(url, str) else "it must be text",
                          "http://prometheus.istio-system:9090")
    interval = fields.duration("interval", given.get("interval", defaults.interval), MIN_INTERVAL_MS,
                               MAX_INTERVAL_MS, "30s")
    count = fields.integer("count", given.get("count", defaults.count), 1, 100, 5)
    if duration_ms(interval) * count > MAX_ANALYSIS_MS:
        raise fields.fail("count", count, f"{count} measurements {interval} apart would hold the release open for "
                          f"more than 24h", max(1, MAX_ANALYSIS_MS // int(duration_ms(interval))))
    failure_limit = fields.integer("failureLimit", given.get("failureLimit", defaults.failure_limit), 1, 100, 1)
    if failure_limit > count:
        raise fields.fail("failureLimit", failure_limit, f"it is more than count ({count}), so no run of "
                          f"measurements could ever fail", count)
    min_requests = fields.integer("minRequests", given.get("minRequests", defaults.min_requests), 1, 1_000_000_000, 10)
    no_data = given.get("noData", defaults.no_data)
    if no_data not in NO_DATA:
        raise fields.fail("noData", no_data, "it must be fail (a window without enough requests fails the "
                          "measurement) or wait (it is inconclusive; a run of only inconclusive measurements fails "
                          "at the end)", "fail")
    success_rate = fields.number("successRate", given.get("successRate", defaults.success_rate), 0, 100, 99,
                                 above_low=True, percent=True)
    latency = given.get("latencyP99")
    latency = None if latency is None else fields.duration("latencyP99", latency, 1, MAX_LATENCY_MS, "500ms")
    return AnalysisSettings(
        prometheus_url=url, interval=interval, count=count, failure_limit=failure_limit, min_requests=min_requests,
        no_data=no_data, success_rate=success_rate, latency_p99=latency,
        baseline=_baseline(fields, given["baseline"]) if "baseline" in given else None,
        dry_run=fields.boolean("dryRun", given.get("dryRun", False)),
        queries=tuple(_queries(fields, given.get("queries", []))),
    )


def _baseline(fields: _Fields, value: Any) -> Baseline:
    value = parsed_value(value)
    config = fields.object("baseline", value, BASELINE_FIELDS)
    drop, increase = config.get("maxSuccessRateDrop"), config.get("maxLatencyIncrease")
    if drop is None and increase is None:
        raise fields.fail("baseline", value, "it sets neither maxSuccessRateDrop nor maxLatencyIncrease", 1,
                          fix=f"pulumi config set --path '{KEY}.baseline.maxSuccessRateDrop' 1 -s {fields.stack}, "
                              f"or {fields.remove('baseline')}")
    return Baseline(
        max_success_rate_drop=None if drop is None else fields.number("baseline.maxSuccessRateDrop", drop, 0, 100, 1,
                                                                      percent=True),
        max_latency_increase=None if increase is None else fields.number("baseline.maxLatencyIncrease", increase, 0,
                                                                         10_000, 20, percent=True))


def _queries(fields: _Fields, value: Any) -> Iterator[CustomQuery]:
    value = parsed_value(value)
    example = 'sum(rate(http_errors_total{app="{{ app }}-{{ color }}"}[{{ interval }}]))'
    if not isinstance(value, list):
        raise fields.fail("queries", value, "it must be a list of {name, query, min, max}", example,
                          fix=f"pulumi config set --path '{KEY}.queries[0].query' {shlex.quote(example)} -s {fields.stack}")
    if len(value) > MAX_QUERIES:
        raise fields.fail("queries", f"{len(value)} queries", f"at most {MAX_QUERIES} custom queries are allowed",
                          fix=fields.remove(f"queries[{MAX_QUERIES}]"))
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        path = f"queries[{index}]"
        item = fields.object(path, item, QUERY_FIELDS)
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise fields.fail(f"{path}.name", name, "a check's name must be a DNS label (lowercase letters, digits "
                              "and '-', starting with a letter, at most 63 characters)", "error-ratio")
        if name in BUILTIN_CHECKS:
            raise fields.fail(f"{path}.name", name, f"it is the name of a built-in check ({', '.join(BUILTIN_CHECKS)})",
                              f"my-{name}")
        if name in seen:
            raise fields.fail(f"{path}.name", name, f"queries[{seen[name]}] has the same name; names must be unique",
                              f"{name}-{index}")
        seen[name] = index
        query = item.get("query")
        problem = promql_problem(query) if isinstance(query, str) else "it must be text"
        if problem:
            raise fields.fail(f"{path}.query", query, f"it is not a valid query: {problem}", example)
        low = None if item.get("min") is None else fields.number(f"{path}.min", item["min"], -1e300, 1e300, 0)
        high = None if item.get("max") is None else fields.number(f"{path}.max", item["max"], -1e300, 1e300, 1)
        if low is None and high is None:
            raise fields.fail(f"{path}", name, "the check has neither min nor max, so nothing could fail it", 1,
                              fix=f"pulumi config set --path '{KEY}.{path}.max' 1 -s {fields.stack}")
        if low is not None and high is not None and low > high:
            raise fields.fail(f"{path}.max", item["max"], f"it is below min ({low:g}), so every value would fail",
                              f"{low:g}")
        yield CustomQuery(name=name, query=query, min=low, max=high)
