"""release.py promote gated by the metric analysis: the routing stack file's `bluegreen:analysis`, a Prometheus
on 127.0.0.1 answering /api/v1/query as Prometheus 3.x does (tests/harness/prometheus_answers.py), and the
release world of tests/test_release.py (the stand-in `pulumi` and `kubectl`, a gateway that routes by what the
routing stack deployed). What a user relies on: a bad figure before the flip means no flip; after it, users go
back to the old color while it still runs; every verdict is in the record and the JUnit report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from bluegreen_tools import release
from bluegreen_tools.release import analysis_steps, runner as release_runner
from harness.loopback import closed_port, serve
from harness.prometheus_answers import EMPTY, by_query, vector
from harness.release_world import World, enter, in_boundary

ROUTING_FILE = "config:\n  bluegreen:active: blue\n  bluegreen:analysis: {analysis}\n"


def analysis(url: str, **extra) -> dict:
    return {"prometheusUrl": url, "interval": "1s", "count": 2, "minRequests": 5, "successRate": 99, **extra}


class Metrics:
    """What Prometheus answers for each color: its request count and its percent of non-5xx answers."""

    def __init__(self):
        self.requests = {"myapp-blue": "120", "myapp-green": "60"}
        self.success = {"myapp-blue": "100", "myapp-green": "100"}
        self.queries: list[str] = []
        self.before = lambda: None  # a test's change of the figures, just before each answer

    def answer(self, query: str):
        self.before()
        self.queries.append(query)
        workload = next((name for name in self.requests if f'destination_workload="{name}"' in query), None)
        if workload is None:
            return EMPTY
        if query.startswith("sum(increase("):
            return vector(self.requests[workload])
        if "response_code!~" in query:
            return vector(self.success[workload])
        return EMPTY  # no latency histogram: no latencyP99 is set


@pytest.fixture
def world(tmp_path, monkeypatch):
    world = World(tmp_path)
    enter(world, monkeypatch, release_runner.popen)
    project = tmp_path / "project"  # where release.py reads the routing stack file's analysis
    project.mkdir()
    monkeypatch.setattr(analysis_steps, "ROOT", project)
    world.metrics = Metrics()

    def configure(**settings):
        (project / "Pulumi.routing.yaml").write_text(ROUTING_FILE.format(analysis=json.dumps(settings)))
    world.configure = configure
    with serve(world.gateway) as url, serve(by_query(world.metrics.answer)) as prometheus:
        world.url, world.prometheus = url, prometheus
        configure(**analysis(prometheus))
        yield world


def promote(world, capfd, *extra):
    code = in_boundary(release.main, ["promote", "green", "--url", world.url, "--timeout", "1", "--settle", "0",
                                      *extra])
    out, err = capfd.readouterr()
    return code, err


def test_a_healthy_green_is_promoted_after_every_measurement_passes(world, capfd, tmp_path):
    report = tmp_path / "promote.xml"
    code, err = promote(world, capfd, "--junit", str(report))
    assert code == 0, err
    assert world.outputs("routing") == {"active": "green", "activeRelease": "v2"}
    assert "analysis pre-promotion: passed" in err and "analysis post-promotion: passed" in err
    lease = world.lease()
    assert lease.free and lease.record.phase == "done" and lease.record.analysis
    assert lease.record.summary.startswith("post-promotion passed")
    suites = {suite.get("name"): suite for suite in ET.parse(report).getroot().findall("testsuite")}
    assert set(suites) >= {"analysis pre-promotion", "analysis post-promotion"}
    cases = [case.get("name") for case in suites["analysis post-promotion"].findall("testcase")]
    assert "post-promotion #2 success-rate" in cases and suites["analysis post-promotion"].get("failures") == "0"
    assert all('destination_version="v2"' in query for query in world.metrics.queries
               if 'destination_workload="myapp-green"' in query)


def test_a_green_failing_its_users_after_the_flip_is_rolled_back_by_itself(world, capfd):
    def failing_after_the_flip():
        if world.outputs("routing").get("active") == "green":
            world.metrics.success["myapp-green"] = "80"  # 20 % of the users' requests fail

    world.metrics.before = failing_after_the_flip
    code, err = promote(world, capfd)
    assert code == 1
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    line = err.strip().splitlines()[-1]
    assert "the analysis of green after the flip is failed, so users go back to blue" in line
    assert "80" in line and "99" in line and "routing restored: users on blue" in line
    assert world.lease().record.phase == "aborted"


def test_a_green_failing_its_test_traffic_is_never_flipped(world, capfd):
    world.metrics.success["myapp-green"] = "90"
    code, err = promote(world, capfd)
    assert code == 1
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert not any(call.startswith("config set active green") for call in world.calls())
    assert "the analysis of green before the flip is failed, so users stay on blue" in err.strip().splitlines()[-1]


def test_no_traffic_is_no_data_and_fails_by_default(world, capfd):
    world.metrics.requests["myapp-green"] = "0"
    code, err = promote(world, capfd)
    assert code == 1 and world.outputs("routing")["active"] == "blue"
    assert "before the flip is failed" in err.strip().splitlines()[-1]


def test_prometheus_unreachable_stops_the_release_before_the_flip_in_one_line(world, capfd):
    world.configure(**analysis(f"http://127.0.0.1:{closed_port()}"))
    code, err = promote(world, capfd)
    assert code == 1 and world.outputs("routing")["active"] == "blue"
    assert "Traceback" not in err and "so users stay on blue" in err.strip().splitlines()[-1]


def test_a_dry_run_measures_and_reports_but_never_blocks(world, capfd):
    world.configure(**analysis(world.prometheus, dryRun=True))
    world.metrics.success["myapp-green"] = "50"
    code, err = promote(world, capfd)
    assert code == 0, err
    assert world.outputs("routing")["active"] == "green" and "dry-run" in err


def test_a_bad_query_in_the_config_is_refused_before_anything_changes(world, capfd):
    world.configure(**analysis(world.prometheus, queries=[{"name": "broken", "query": "sum(rate(x[5m)", "max": 1}]))
    code, err = promote(world, capfd)
    assert code == 1
    assert not any(call.startswith(("config set", "up ")) for call in world.calls()) and world.lease() is None
    assert "analysis.queries[0].query" in err.strip().splitlines()[-1]


def test_the_test_load_sends_the_cookie_over_the_check_paths_within_its_rate_and_time():
    import threading
    import time

    from bluegreen_tools.analysis import load
    from harness.loopback import answer

    seen = []

    def count(path, headers):
        seen.append((path, headers.get("Cookie")))  # as the client sends it
        return answer(200, "green")

    with serve(count) as url:
        start = time.monotonic()
        result = load.drive(url, ["/a", "/b"], "test=tok", rps=20, duration=0.5)
        took = time.monotonic() - start
        assert took < 1.5 and result.sent == len(seen) and 8 <= result.sent <= 10 and result.failed == 0
        assert {path for path, _ in seen} == {"/a", "/b"} and {cookie for _, cookie in seen} == {"test=tok"}
        stop = threading.Event()
        stop.set()
        assert load.drive(url, ["/"], None, rps=5, duration=60, stop=stop).sent == 0  # stopped: nothing sent
    with pytest.raises(ValueError, match="at most 1000"):
        load.drive(url, ["/"], None, rps=5000, duration=1)


def test_promote_drives_its_test_load_before_judging_the_test_traffic(world, capfd):
    code, err = promote(world, capfd, "--test-load", "20", "--test-load-duration", "0.5s", "--check", "/api")
    assert code == 0, err
    assert "ok   test load: 20 requests a second to green for 0.5s" in err
    assert "  test load: 10 requests in 0.5s (10 x 200; 0 without an answer, 0 skipped)" in err
    assert err.index("test load:") < err.index("analysis pre-promotion:")


def test_a_test_load_without_analysis_is_refused_before_anything_changes(world, capfd):
    (analysis_steps.ROOT / "Pulumi.routing.yaml").write_text("config:\n  bluegreen:active: blue\n")
    code, err = promote(world, capfd, "--test-load", "5")
    assert code == 1 and world.calls()[-1] == "stack output --json -s green" and world.lease() is None
    assert "--test-load drives traffic for the metric analysis" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("flag, value, says", [("--test-load", "5000", "--test-load 5000: it must be a number of "
                                                "requests a second above 0 and at most 1000"),
                                               ("--test-load", "lots", "'lots' is not a number of requests a second"),
                                               ("--test-load-duration", "2h", "--test-load-duration 7200s: it must be "
                                                "above 0s and at most 3600s"),
                                               ("--test-load-duration", "soon", "'soon' is not a duration")])
def test_a_test_load_flag_out_of_bounds_is_bad_usage_naming_the_flag(world, capfd, flag, value, says):
    with pytest.raises(SystemExit) as exit:  # argparse's exit 2, which the error boundary lets through
        promote(world, capfd, "--test-load", "5", flag, value)
    assert exit.value.code == 2 and world.calls() == [] and world.lease() is None
    assert says in capfd.readouterr().err.strip().splitlines()[-1]
