"""Prometheus's answers to /api/v1/query, as recorded from Prometheus 3.x (the sandbox's v0.316.0), for the
analysis tests: the JSON of the HTTP API's envelope, instant vectors, scalars and errors."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Optional

from bluegreen_tools.analysis.prometheus import ERROR, NO_DATA, VALUE
from harness.loopback import Answer as HttpAnswer



AT = 1767225600.123  # the evaluation time Prometheus echoes in each sample


def vector(*values: str, metric: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """An instant vector of one series per value (an aggregation like sum(...) has an empty metric)."""
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": dict(metric or {}), "value": [AT, value]} for value in values]}}


def scalar(value: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "scalar", "result": [AT, value]}}


def matrix() -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[AT - 15, "1"], [AT, "2"]]}]}}


EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}
# What Prometheus answers a query it cannot parse: HTTP 400, errorType bad_data.
BAD_DATA = (400, {"status": "error", "errorType": "bad_data",
                  "error": "invalid parameter \"query\": 1:25: parse error: unclosed left parenthesis"})
# What it answers when the evaluation outlives its timeout: HTTP 503.
TIMEOUT = (503, {"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"})
WITH_WARNINGS = {**vector("99.5"), "warnings": ["PromQL info: metric might not be a counter"]}


def body(status: int, data: Any) -> HttpAnswer:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def by_query(answers: Callable[[str], Any]) -> Callable[[str, Mapping[str, str]], HttpAnswer]:
    """A loopback handler that answers /api/v1/query by the query's text; `answers(query)` gives (status, data)
    or data (200)."""
    from urllib.parse import parse_qs, urlsplit

    def handle(path: str, headers: Mapping[str, str]) -> HttpAnswer:
        parts = urlsplit(path)
        if parts.path != "/api/v1/query":
            return body(404, {"status": "error", "errorType": "not_found", "error": "not found"})
        query = parse_qs(parts.query).get("query", [""])[0]
        answer = answers(query)
        return body(*answer) if isinstance(answer, tuple) else body(200, answer)
    return handle


def prometheus_with(rate: str, p99: str = "120", count: str = "240"):
    """A Prometheus whose green (myapp-green) has this success rate, and blue 99.9 %; every color this p99 and
    request count."""
    def answers(query):
        if query.startswith("sum(increase("):
            return vector(count)
        if query.startswith("histogram_quantile("):
            return vector(p99)
        return vector(rate) if 'destination_workload="myapp-green"' in query else vector("99.9")
    return by_query(answers)


# (recorded answer, the kind of Answer the client makes of it, its value, a piece of its reason)
TYPED = [
    (vector("99.5"), VALUE, 99.5, ""),
    (WITH_WARNINGS, VALUE, 99.5, ""),
    (scalar("3"), VALUE, 3.0, ""),
    (EMPTY, NO_DATA, None, "matched no series"),
    (vector("NaN"), NO_DATA, None, "NaN"),
    (vector("+Inf"), ERROR, None, "+Inf, not a finite number"),
    (vector("1", "2", metric={"pod": "a"}), ERROR, None, "2 series"),
    (matrix(), ERROR, None, "matrix"),
    (vector("ninety"), ERROR, None, "not a number"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, 2]}]}}, ERROR, None,
     "not [time"),
    (BAD_DATA, ERROR, None, "refused the query (HTTP 400, bad_data): invalid parameter"),
    (TIMEOUT, ERROR, None, "HTTP 503, timeout"),
    ((500, "internal error"), ERROR, None, "HTTP 500"),
    ({"data": 1}, ERROR, None, "not its API's JSON"),
    ([1, 2], ERROR, None, "not its API's JSON"),
]
