"""A release judged by what real traffic says, for real: the sandbox's Prometheus scraping the gateway stand-in's
Istio metrics, `bluegreen:analysis` set with `pulumi config set --path` on the routing stack of a released
project, and `release.py promote green --test-load` driving the test traffic while a bounded users' load runs
through the default route. The app stand-ins change how green answers the moment users reach it (errorRate,
latencyMs), as a release that breaks under real traffic does."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Iterator

import requests

from bluegreen_tools.analysis import load
from harness.loopback import serve
from harness.released_project import SETTLE, behave, default_route, held_record, record, release, route_names
from harness.sandbox_project import Project

ANALYSIS = {"interval": "3s", "count": "2", "minRequests": "5", "successRate": "95"}
PROMOTE = ("promote", "green", "--settle", SETTLE, "--timeout", "30", "--test-load", "20",
           "--test-load-duration", "4s")


def configure(project: Project, **settings: str) -> None:
    for key, value in {**ANALYSIS, **settings}.items():
        project.pulumi("config", "set", "--path", f"analysis.{key}", value, "-s", "routing")


@contextmanager
def running(work) -> Iterator[None]:
    """`work(stop)` on a thread of its own for as long as the block runs; stopped and joined, bounded, after it."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)


def users(project: Project, rps: float = 20):
    """Users' requests (no cookie) through the gateway for as long as the block runs, bounded."""
    return running(lambda stop: load.drive(project.env["BLUEGREEN_URL"], ["/"], None, rps, 600, stop=stop))


def phase(project: Project) -> str:
    lease = record(project) or {}
    note = (lease.get("metadata", {}).get("annotations") or {}).get("bluegreen.dev/release")
    return json.loads(note)["phase"] if note else ""


def once_only_metrics_can_tell(project: Project, **behaviour):
    """Green answers as `behaviour` says once users are on it and the checks after the flip have passed (the
    record's phase is analysing-live): a release that breaks under its users' traffic, which the smoke
    checks did not see."""
    def watch(stop: threading.Event) -> None:
        while not stop.wait(0.1):
            if phase(project) == "analysing-live":
                behave(project, "myapp-green", **behaviour)
                return
    return running(watch)


def last_line(run) -> str:
    return run.output.strip().splitlines()[-1]


def test_a_healthy_green_is_promoted_with_every_measurement_passing(live):
    configure(live)
    with users(live):
        done = release(live, *PROMOTE)
    assert done.code == 0, done.output
    assert default_route(live) == "green" and held_record(live) is None
    assert "analysis pre-promotion: passed" in done.output and "analysis post-promotion: passed" in done.output


def test_green_failing_a_fifth_of_its_users_is_rolled_back_by_itself(live):
    configure(live)
    with users(live), once_only_metrics_can_tell(live, errorRate=0.2):
        failed = release(live, *PROMOTE)
    assert failed.code == 1, failed.output
    assert "the analysis of green after the flip is failed, so users go back to blue" in last_line(failed)
    assert "success rate" in last_line(failed) and "< 95%" in last_line(failed)  # the figure against its threshold
    assert default_route(live) == "blue" and route_names(live) == ["myapp-default"]
    answered = requests.get(live.env["BLUEGREEN_URL"] + "/", timeout=10)
    assert answered.headers["x-sandbox-deployment"] == "myapp-blue"


def test_a_latency_regression_is_caught_by_the_p99(live):
    configure(live, latencyP99="200ms")
    with users(live), once_only_metrics_can_tell(live, latencyMs=400):
        failed = release(live, *PROMOTE)
    assert failed.code == 1, failed.output
    assert "after the flip is failed" in last_line(failed) and "histogram_quantile(0.99" in last_line(failed)
    assert default_route(live) == "blue"


def test_no_traffic_is_no_data_and_no_flip(live):
    configure(live, minRequests="1000")
    refused = release(live, "promote", "green", "--settle", SETTLE, "--timeout", "30")
    assert refused.code == 1, refused.output
    assert "the analysis of green before the flip is failed, so users stay on blue" in last_line(refused)
    assert "requests" in last_line(refused)
    assert default_route(live) == "blue" and route_names(live) == ["myapp-default"]


def test_prometheus_gone_mid_analysis_rolls_back_in_a_stated_safe_state(live):
    """The analysis asks a proxy of the sandbox's Prometheus, which stops answering once users are on green:
    the real Prometheus, shared with the other scenarios, keeps running."""
    real = live.env["BLUEGREEN_PROMETHEUS_URL"]
    gone = threading.Event()

    def proxy(path, headers):
        if gone.is_set():
            return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"
        answer = requests.get(real + path, timeout=10)
        return answer.status_code, {"Content-Type": answer.headers.get("Content-Type", "")}, answer.content

    def watch() -> None:
        while not gone.is_set():
            if phase(live) == "analysing-live":
                gone.set()
            threading.Event().wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    with serve(proxy) as url:
        configure(live, prometheusUrl=url)
        watcher.start()
        with users(live):  # the sandbox's environment names the real one: the proxy's URL overrides it
            failed = release(live, *PROMOTE, env={"BLUEGREEN_PROMETHEUS_URL": url})
        gone.set()
        watcher.join(timeout=15)
    assert failed.code == 1, failed.output
    assert "after the flip is" in last_line(failed) and "routing restored: users on blue" in last_line(failed)
    assert "Traceback" not in failed.output and default_route(live) == "blue"


def test_a_bad_promql_query_is_refused_before_any_change(live):
    configure(live)
    live.pulumi("config", "set", "--path", "analysis.queries[0].name", "broken", "-s", "routing")
    live.pulumi("config", "set", "--path", "analysis.queries[0].query", "sum(rate(x[5m)", "-s", "routing")
    live.pulumi("config", "set", "--path", "analysis.queries[0].max", "1", "-s", "routing")
    before = live.objects()
    refused = release(live, *PROMOTE)
    assert refused.code == 1, refused.output
    assert "analysis.queries[0].query" in last_line(refused)
    assert live.objects() == before and held_record(live) is None
