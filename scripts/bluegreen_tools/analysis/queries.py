"""The PromQL the analysis sends: the built-in checks on Istio's standard metrics, and the custom queries rendered.

The built-ins read what the ingress gateway reports (reporter="source"): users' and testers' traffic reaches a
color through it, so its figures are the ones users see, retries and all. A color's requests are told apart by
Istio's telemetry labels on its pods: destination_workload is the Deployment (<app>-<color>),
destination_version the pod's `version` label (the release). Success is any answer but a 5xx, as Flagger's and
Argo Rollouts' Istio checks count it; latency is the p99 of istio_request_duration_milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from components.analysis import AnalysisSettings, placeholders
from components.contract import deployment_name

REQUESTS = "istio_requests_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds_bucket"
_BARE = re.compile(r"^[A-Za-z0-9_.:-]+\Z")  # what may stand outside a string literal: a duration like 30s


class RenderError(ValueError):
    """A placeholder's value that cannot stand where the template puts it."""


@dataclass(frozen=True)
class Target:
    """The pods a measurement is about: one color of the app, at one release."""

    namespace: str
    app: str
    color: str
    release: str

    @property
    def workload(self) -> str:
        return deployment_name(self.app, self.color)


@dataclass(frozen=True)
class PlannedCheck:
    """One check of a measurement: its query and the range its value must stay in."""

    name: str
    query: str
    low: Optional[float] = None
    high: Optional[float] = None
    unit: str = ""  # "%", "ms" or "" (a custom query's own unit)


def escape(value: str, quote: str = '"') -> str:
    """`value` as the inside of a PromQL string literal opened with `quote` (Go's escapes, as Prometheus reads them)."""
    if quote == "`":
        if "`" in value:
            raise RenderError(f"{value!r} holds a backtick, which a raw string (`...`) cannot")
        return value
    text = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def selector(target: Target, *extra: str) -> str:
    """The label matchers of a color's requests at the ingress gateway."""
    matchers = ['reporter="source"', f'destination_workload_namespace="{escape(target.namespace)}"',
                f'destination_workload="{escape(target.workload)}"', f'destination_version="{escape(target.release)}"']
    return "{" + ",".join(matchers + list(extra)) + "}"


def request_count_query(target: Target, interval: str) -> str:
    """How many requests reached the color in the window: fewer than minRequests is no data."""
    return f"sum(increase({REQUESTS}{selector(target)}[{interval}]))"


def success_rate_query(target: Target, interval: str) -> str:
    """The percent of the color's answers that were not a 5xx, in the window."""
    not_5xx = selector(target, 'response_code!~"5.."')
    return f"sum(rate({REQUESTS}{not_5xx}[{interval}])) / sum(rate({REQUESTS}{selector(target)}[{interval}])) * 100"


def latency_p99_query(target: Target, interval: str) -> str:
    """The 99th percentile of the color's request durations in the window, in milliseconds."""
    return f"histogram_quantile(0.99, sum by (le) (rate({DURATION_BUCKETS}{selector(target)}[{interval}])))"


def render(template: str, target: Target, interval: str) -> str:
    """A custom query with its placeholders replaced, each value escaped for the string literal it sits in."""
    values = {"namespace": target.namespace, "app": target.app, "color": target.color, "release": target.release,
              "interval": interval}
    parts, at = [], 0
    for place in placeholders(template):
        value = values.get(place.name)
        if value is None:
            raise RenderError(f"{{{{ {place.name} }}}} is not a placeholder")
        if place.quote is None and not _BARE.match(value):
            raise RenderError(f"{{{{ {place.name} }}}} is outside quotes, where {value!r} cannot stand")
        parts += [template[at:place.start], value if place.quote is None else escape(value, place.quote)]
        at = place.end
    return "".join(parts) + template[at:]


def planned_checks(settings: AnalysisSettings, target: Target) -> tuple[PlannedCheck, ...]:
    """The checks of one measurement, built-ins first: the p99 is measured when a threshold or a baseline needs it."""
    interval = settings.interval
    checks = [PlannedCheck("success-rate", success_rate_query(target, interval), low=settings.success_rate, unit="%")]
    if settings.latency_p99 is not None or (settings.baseline and settings.baseline.max_latency_increase is not None):
        checks.append(PlannedCheck("latency-p99", latency_p99_query(target, interval), high=settings.latency_p99_ms,
                                   unit="ms"))
    checks += [PlannedCheck(q.name, render(q.query, target, interval), low=q.min, high=q.max) for q in settings.queries]
    return tuple(checks)
