"""The sandbox's real Prometheus scraping the gateway stand-in's Istio metrics, asked with the analysis's own PromQL.

One namespace of the module's own holds plain objects (no Pulumi: this is about the metrics path): blue and green
Deployments of `myapp` with Istio's telemetry labels, their Service, the Gateway, a DestinationRule and a
VirtualService that sends the test cookie to green and everything else to blue. Load is bounded and sent on
loopback through the namespace's gateway stand-in; every request the test sends is tallied by the Deployment that
answered and its status, so each figure Prometheus gives is checked against counts, not against chance.
A window is cut at two scrapes (the last before the load and one after it has all been scraped): every series of
the gateway is sampled at the same instants, so the rate of each is its exact increase over the same time and the
success rate is exact, whatever the random draws of errorRate were.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Callable

import pytest
import requests

from bluegreen_tools.analysis.prometheus import Prometheus
from bluegreen_tools.analysis.queries import (DURATION_BUCKETS, REQUESTS, Target, latency_p99_query, selector,
                                             success_rate_query)
from harness.released_project import behave
from harness.sandbox_project import make_project
from sandbox.telemetry import BUCKETS

APP, COOKIE = "myapp", "test=true"
RELEASES = {"blue": "v1.0.0", "green": "v1.1.0"}
UNDER_250MS = 'le="250.0"'  # the bucket of answers up to 250 ms
WAIT = 60.0  # seconds for any one thing to show (pods ready, a count scraped); a scrape is every second


def manifests(namespace: str) -> list[dict]:
    meta = {"namespace": namespace}
    deployments = [{
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**meta, "name": f"{APP}-{color}"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": APP, "color": color}}, "template": {
            "metadata": {"labels": {"app": APP, "color": color, "version": release}},
            "spec": {"containers": [{"name": APP, "image": f"example.com/{APP}:{release}"}]}}},
    } for color, release in RELEASES.items()]
    istio = "networking.istio.io/v1"
    return [*deployments,
            {"apiVersion": "v1", "kind": "Service", "metadata": {**meta, "name": APP},
             "spec": {"selector": {"app": APP}, "ports": [{"name": "http", "port": 80, "targetPort": 3000}]}},
            {"apiVersion": istio, "kind": "Gateway", "metadata": {**meta, "name": f"{APP}-gateway"},
             "spec": {"selector": {"istio": "ingressgateway"},
                      "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}},
            {"apiVersion": istio, "kind": "DestinationRule", "metadata": {**meta, "name": f"{APP}-blue-green"},
             "spec": {"host": APP, "subsets": [{"name": c, "labels": {"color": c}} for c in RELEASES]}},
            {"apiVersion": istio, "kind": "VirtualService", "metadata": {**meta, "name": f"{APP}-blue-green"},
             "spec": {"hosts": ["*"], "gateways": [f"{APP}-gateway"], "http": [
                 {"name": "test", "match": [{"headers": {"cookie": {"regex": "^(.*;[ \t]*)?test=true([ \t]*;.*)?$"}}}],
                  "route": [{"destination": {"host": APP, "subset": "green"}}]},
                 {"name": "default", "route": [{"destination": {"host": APP, "subset": "blue"}}]}]}}]


def until(what: str, check: Callable[[], bool], timeout: float = WAIT) -> float:
    """Seconds until `check()` holds; the test fails naming `what` after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"no {what} after {timeout:.0f}s", pytrace=False)
        time.sleep(0.1)
    return time.monotonic() - start


class Mesh:
    """The namespace, its gateway, the Prometheus that scrapes it, and what the test sent through it."""

    def __init__(self, project):
        self.project, self.namespace = project, project.namespace
        self.url = project.env["BLUEGREEN_URL"]
        self.prometheus_url = project.env["BLUEGREEN_PROMETHEUS_URL"]
        self.prometheus = Prometheus(self.prometheus_url, timeout=10)
        self.sent: Counter = Counter()  # (deployment, status) -> requests
        self.slowest: dict[str, float] = {}  # deployment -> the longest answer the test waited for, in ms
        self.gateway = f'sandbox_process="gateway-{self.namespace}"'

    def send(self, color: str, count: int) -> Counter:
        """`count` requests to a color (green by the test cookie); what answered them."""
        answered: Counter = Counter()
        for _ in range(count):
            start = time.monotonic()
            answer = requests.get(self.url + "/", headers={"cookie": COOKIE} if color == "green" else {}, timeout=10)
            deployment = answer.headers.get("x-sandbox-deployment", "unknown")
            answered[(deployment, answer.status_code)] += 1
            self.slowest[deployment] = max(self.slowest.get(deployment, 0), (time.monotonic() - start) * 1000)
        self.sent.update(answered)
        return answered

    def value(self, promql: str, at: float | None = None) -> float | None:
        answer = self.prometheus.query(promql, at=at)
        assert answer.kind in ("value", "no data"), answer.reason
        return answer.value

    def scraped_total(self) -> float | None:
        return self.value(f'sum({REQUESTS}{{{self.gateway},destination_workload=~"{APP}-.*"}})')

    def wait_scraped(self) -> float:
        """Until Prometheus holds every request sent to the colors: the seconds that took."""
        expected = sum(count for (deployment, _), count in self.sent.items() if deployment.startswith(APP))
        return until(f"count of {expected} requests in Prometheus", lambda: self.scraped_total() == expected)

    def last_scrape(self) -> float:
        """The time of the gateway's newest sample in Prometheus (every series of it has one then)."""
        return self.value(f"max(timestamp({REQUESTS}{{{self.gateway}}}))")

    def target(self, color: str) -> Target:
        return Target(self.namespace, APP, color, RELEASES[color])


@pytest.fixture(scope="module")
def mesh(sandbox_env, tmp_path_factory) -> Mesh:
    project = make_project(tmp_path_factory.mktemp("prometheus") / "project", sandbox_env)
    try:
        objects = project.folder / "objects.json"
        objects.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests(project.namespace)}))
        project.kubectl("apply", "-n", project.namespace, "-f", str(objects))
        mesh = Mesh(project)
        for color in RELEASES:
            until(f"answer from {APP}-{color}", lambda: requests.get(
                mesh.url + "/", headers={"cookie": COOKIE} if color == "green" else {}, timeout=10
            ).headers.get("x-sandbox-deployment") == f"{APP}-{color}")
        # What the readiness loops sent is in the counts too: start the tally from what Prometheus has.
        mesh.sent.clear()
        answered_by = time.time()  # the gateway counts an answer before its body goes out
        until("scrape after the first answers", lambda: (mesh.last_scrape() or 0) > answered_by)
        for color in RELEASES:
            for code in (200, 503):
                mesh.sent[(f"{APP}-{color}", code)] = int(mesh.value(
                    f'sum({REQUESTS}{{{mesh.gateway},destination_workload="{APP}-{color}",response_code="{code}"}})')
                    or 0)
        yield mesh
    finally:
        project.cleanup()


def test_prometheus_counts_each_request_by_workload_and_response_code_as_sent(mesh):
    behave(mesh.project, f"{APP}-green", errorRate=0.2)
    mesh.send("blue", 30)
    mesh.send("green", 60)
    seconds = mesh.wait_scraped()
    answer = requests.get(mesh.prometheus_url + "/api/v1/query", timeout=10, params={
        "query": f'sum by (destination_workload, response_code) ({REQUESTS}{{{mesh.gateway},reporter="source",'
                 f'destination_workload_namespace="{mesh.namespace}"}})'}).json()
    counted = {(r["metric"]["destination_workload"], int(r["metric"]["response_code"])): float(r["value"][1])
               for r in answer["data"]["result"]}
    assert counted == {key: float(count) for key, count in mesh.sent.items() if count}
    assert mesh.sent[(f"{APP}-green", 500)] > 0 and mesh.sent[(f"{APP}-blue", 500)] == 0
    print(f"\nfigure: from the last answer to its count in Prometheus's answer: {seconds:.1f}s")


def window_of_load(mesh: Mesh, load: Callable[[], None]) -> tuple[str, float]:
    """Run `load` between two scrapes: the range that holds exactly its requests, and the time to evaluate at."""
    mesh.wait_scraped()
    before = mesh.last_scrape()
    load()
    mesh.wait_scraped()
    until("scrape after the load", lambda: mesh.last_scrape() > before + 1)
    after = mesh.last_scrape()
    # Ranges are open on the left: 1 ms more takes in the sample at `before`, which holds none of the load.
    return f"{round((after - before) * 1000) + 1}ms", after


def test_an_error_rate_of_a_fifth_shows_as_the_success_rate_the_answers_had(mesh):
    behave(mesh.project, f"{APP}-green", errorRate=0.2)
    # Both of green's series must be sampled before the window opens: a series born inside it would lose the
    # requests it counted before its first scrape.
    for _ in range(20):
        if mesh.sent[(f"{APP}-green", 500)]:
            break
        mesh.send("green", 10)
    assert mesh.sent[(f"{APP}-green", 500)] and mesh.sent[(f"{APP}-green", 200)]
    answered: Counter = Counter()
    window, at = window_of_load(mesh, lambda: answered.update(mesh.send("green", 150)))
    ok, failed = answered[(f"{APP}-green", 200)], answered[(f"{APP}-green", 500)]
    assert ok + failed == 150
    sent_rate = 100 * ok / 150
    assert 60 < sent_rate < 95  # 150 draws at 0.2: six standard deviations either side of 80 %
    measured = mesh.value(success_rate_query(mesh.target("green"), window), at=at)
    assert measured == pytest.approx(sent_rate, abs=0.01)
    blue_rate = mesh.value(success_rate_query(mesh.target("blue"), "5m"))
    assert blue_rate == pytest.approx(100.0)


def test_a_latency_of_300ms_shows_in_the_p99_and_a_fast_color_stays_below_it(mesh):
    behave(mesh.project, f"{APP}-green", latencyMs=300)
    mesh.slowest.clear()
    window, at = window_of_load(mesh, lambda: (mesh.send("green", 15), mesh.send("blue", 15)))
    green = mesh.target("green")
    # Prometheus 3 keeps `le` as a float's text (250.0) whatever the exporter wrote
    under_250 = mesh.value(f"sum(increase({DURATION_BUCKETS}{selector(green, UNDER_250MS)}[{window}]))", at=at)
    assert under_250 == 0  # none of the 15 answered sooner than its 300 ms
    # The gateway timed each answer within the test's own wait for it: the p99 lies in the bucket of the
    # slowest answer the test saw, or below it, and above 250 ms.
    ceiling = next(bound for bound in BUCKETS if bound >= mesh.slowest[f"{APP}-green"])
    p99 = mesh.value(latency_p99_query(green, window), at=at)
    assert 250 < p99 <= ceiling
    blue_p99 = mesh.value(latency_p99_query(mesh.target("blue"), window), at=at)
    assert blue_p99 < p99
    blue_median = mesh.value(f"histogram_quantile(0.5, sum by (le) (rate({DURATION_BUCKETS}"
                             f"{selector(mesh.target('blue'))}[{window}])))", at=at)
    assert blue_median < 250
