"""One measurement, taken: the queries of `queries`, sent with the client of `prometheus`, judged by `decisions`.

The only part of the analysis that talks to Prometheus; what it decides is all in the pure functions it calls.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

from components.analysis import AnalysisSettings, url_problem
from components.settings import SettingsError
from .decisions import BaselineFigures, Measurement, judge, measure
from .prometheus import Prometheus
from .queries import Target, latency_p99_query, planned_checks, request_count_query, success_rate_query

URL_VARIABLE = "BLUEGREEN_PROMETHEUS_URL"


def prometheus_url(settings: AnalysisSettings, environ: Mapping[str, str] = os.environ) -> str:
    """Where Prometheus answers: BLUEGREEN_PROMETHEUS_URL when set, else analysis.prometheusUrl."""
    given = environ.get(URL_VARIABLE, "").strip()
    if given:
        problem = url_problem(given)
        if problem:
            raise SettingsError(f"{URL_VARIABLE} is not a Prometheus base URL: {problem}. Fix: export "
                                f"{URL_VARIABLE}=http://prometheus.istio-system:9090")
        return given
    if not settings.prometheus_url:
        raise SettingsError(f"no Prometheus to analyse the release with: bluegreen:analysis.prometheusUrl is empty and "
                            f"{URL_VARIABLE} is not set. Fix: pulumi config set --path 'analysis.prometheusUrl' "
                            f"http://prometheus.istio-system:9090 -s <routing stack>, or export {URL_VARIABLE}=URL")
    return settings.prometheus_url


def take_measurement(client: Prometheus, settings: AnalysisSettings, target: Target,
                     baseline: Optional[BaselineFigures] = None, at: Optional[float] = None) -> Measurement:
    """Count the window's requests first: without enough of them the checks are not asked (no data)."""
    requests = client.query(request_count_query(target, settings.interval), at)
    if not requests.ok or requests.value < settings.min_requests:
        return measure(settings, requests, (), None, at)
    results = [judge(check, client.query(check.query, at), settings.interval)
               for check in planned_checks(settings, target)]
    return measure(settings, requests, results, baseline, at)


def take_baseline(client: Prometheus, settings: AnalysisSettings, old: Target,
                  at: Optional[float] = None) -> BaselineFigures:
    """The old color's figures before the flip; a figure it had no data for (or no answer) is None."""
    requests = client.query(request_count_query(old, settings.interval), at)
    if not requests.ok or requests.value < settings.min_requests:
        return BaselineFigures(old.color)
    rate = client.query(success_rate_query(old, settings.interval), at)
    latency = client.query(latency_p99_query(old, settings.interval), at) if (
        settings.baseline and settings.baseline.max_latency_increase is not None) else None
    return BaselineFigures(old.color, rate.value if rate.ok else None,
                           latency.value if latency is not None and latency.ok else None)
