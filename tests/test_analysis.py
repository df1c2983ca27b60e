"""The metric analysis without an engine: bluegreen:analysis parsed and refused, the PromQL built and rendered,
the Prometheus client against real HTTP servers on loopback (recorded answers, and the ways a server goes wrong),
and the decisions on recorded answers: each measurement's outcome, the verdict on a run, the messages."""

from __future__ import annotations

import json
import math
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bluegreen_tools.analysis import decisions as d, gate as g
from bluegreen_tools.analysis.load import RunningLoad, drive_load, load_problem
from bluegreen_tools.analysis.measure import URL_VARIABLE, prometheus_url, take_baseline, take_measurement
from bluegreen_tools.analysis.prometheus import ERROR, NO_DATA, VALUE, Answer, Prometheus
from bluegreen_tools.analysis.queries import (PlannedCheck, RenderError, Target, latency_p99_query, planned_checks,
                                              render, request_count_query, success_rate_query)
from components.analysis import (AnalysisSettings, Baseline, CustomQuery, parse_analysis, placeholders,
                                 promql_problem)
from components.domain import Cookie
from components.settings import SettingsError
from harness import prometheus_answers as rec
from harness.analysis_cases import CONFIG, HOSTILE, PROMQL
from harness.loopback import closed_port, serve, serve_raw

GREEN = Target("shop", "myapp", "green", "v2")
BLUE = Target("shop", "myapp", "blue", "v1")
RANDOM = hsettings(max_examples=150, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])


def refused(value, secret=False) -> str:
    with pytest.raises(SettingsError) as caught:
        parse_analysis(value, "routing", secret)
    return str(caught.value)


# --- the config object ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_analysis_key_keeps_todays_behaviour(value):
    assert parse_analysis(value, "routing") is None


def test_an_empty_object_takes_every_default():
    assert parse_analysis("{}", "routing") == AnalysisSettings(
        prometheus_url="", interval="30s", count=5, failure_limit=1, min_requests=10, no_data="fail",
        success_rate=99.0, latency_p99=None, baseline=None, dry_run=False, queries=())


def test_values_as_pulumi_config_set_path_stores_them():
    # `pulumi config set --path` keeps numbers and switches as text unless told otherwise: both forms are read
    config = {"prometheusUrl": "https://prom.example.com/prometheus/", "interval": "1m30s", "count": "10",
              "failureLimit": 2, "minRequests": "50", "noData": "wait", "successRate": "99.5%", "latencyP99": "0.25s",
              "baseline": {"maxSuccessRateDrop": "1", "maxLatencyIncrease": 20}, "dryRun": "true",
              "queries": [{"name": "error-ratio", "query": 'sum(rate(errors{app="{{ app }}"}[{{ interval }}]))',
                           "max": "0.01"}]}
    parsed = parse_analysis(json.dumps(config), "routing")
    assert parsed == AnalysisSettings(
        prometheus_url="https://prom.example.com/prometheus/", interval="90s", count=10, failure_limit=2,
        min_requests=50, no_data="wait", success_rate=99.5, latency_p99="250ms",
        baseline=Baseline(max_success_rate_drop=1.0, max_latency_increase=20.0), dry_run=True,
        queries=(CustomQuery("error-ratio", config["queries"][0]["query"], None, 0.01),))
    assert parsed.interval_seconds == 90 and parsed.latency_p99_ms == 250
    assert parse_analysis(parsed.as_config(), "routing") == parsed  # what a plan shows sets the same analysis


@pytest.mark.parametrize("config, path, fix", HOSTILE, ids=[f"{case[1]}-{i}" for i, case in enumerate(HOSTILE)])
def test_a_bad_value_is_refused_naming_its_key_path_the_value_and_the_fix(config, path, fix):
    message = refused(config if isinstance(config, str) else json.dumps(config))
    assert message.startswith(f"bluegreen:{path} is "), message
    assert "Fix: pulumi config " in message and fix in message, message
    assert "\n" not in message


def test_an_empty_query_is_refused_before_any_change():
    assert "it is empty" in refused({"queries": [{"name": "a", "query": "  # only a comment\n", "max": 1}]})


def test_credentials_in_the_url_are_refused_without_showing_them():
    message = refused({"prometheusUrl": "https://admin:hunter2hunter2@prom.example.com"})
    assert "hunter2" not in message and "plain text" in message


def test_a_secret_analysis_key_shows_no_value():
    assert "[secret]" in refused({"prometheusUrl": "ftp://token-Qx7Kw9@h"}, secret=True)
    assert "Qx7Kw9" not in refused({"prometheusUrl": "ftp://token-Qx7Kw9@h"}, secret=True)


@pytest.mark.parametrize("query, problem", PROMQL)
def test_the_promql_sanity_check(query, problem):
    found = promql_problem(query)
    assert (found is None) if problem is None else (found and problem in found), found


@RANDOM
@given(st.text(alphabet='sum(rate)[]{}"\'`#\\\n x=~{{ app }}interval', max_size=60))
def test_the_promql_check_never_raises(query):
    problem = promql_problem(query)
    assert problem is None or (isinstance(problem, str) and problem)
    if problem is None:
        placeholders(query)  # a query the check passes can be rendered


@RANDOM
@given(CONFIG, st.booleans())
def test_any_config_is_parsed_or_refused_with_a_clear_line(config, as_text):
    value = json.dumps(config) if as_text else config
    try:
        parsed = parse_analysis(value, "routing")
    except SettingsError as error:
        message = str(error)
        assert message.startswith("bluegreen:analysis") and "Fix: pulumi config " in message, message
        assert "\n" not in message and "u:p@" not in message
        return
    assert isinstance(parsed, AnalysisSettings)
    assert 1 <= parsed.failure_limit <= parsed.count <= 100 and 0 < parsed.success_rate <= 100
    assert parsed.interval_seconds >= 1 and all(promql_problem(q.query) is None for q in parsed.queries)
    assert parse_analysis(parsed.as_config(), "routing") == parsed


# --- the queries ----------------------------------------------------------------------------------------------


def test_the_built_in_queries_select_the_colors_requests_at_the_ingress_gateway():
    labels = ('reporter="source",destination_workload_namespace="shop",destination_workload="myapp-green",'
              'destination_version="v2"')
    assert request_count_query(GREEN, "30s") == f"sum(increase(istio_requests_total{{{labels}}}[30s]))"
    assert success_rate_query(GREEN, "30s") == (
        f'sum(rate(istio_requests_total{{{labels},response_code!~"5.."}}[30s])) / '
        f"sum(rate(istio_requests_total{{{labels}}}[30s])) * 100")
    assert latency_p99_query(GREEN, "1500ms") == (
        f"histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{{{labels}}}[1500ms])))")
    for query in (request_count_query(GREEN, "30s"), success_rate_query(GREEN, "30s"), latency_p99_query(GREEN, "1s")):
        assert promql_problem(query) is None


def test_placeholder_values_are_escaped_for_the_string_they_sit_in():
    odd = Target("shop", "myapp", "green", 'v2"\\\'x')
    assert render('x{a="{{ release }}"}', odd, "30s") == 'x{a="v2\\"\\\\\'x"}'
    assert render("x{a='{{ release }}'}", odd, "30s") == "x{a='v2\"\\\\\\'x'}"
    assert render('sum(rate(x{w="{{app}}-{{ color }}",n="{{ namespace }}"}[{{ interval }}]))', GREEN, "90s") == (
        'sum(rate(x{w="myapp-green",n="shop"}[90s]))')
    with pytest.raises(RenderError):
        render("x{a=`{{ release }}`}", Target("shop", "myapp", "green", "v`2"), "30s")


def test_the_p99_is_measured_when_a_threshold_or_a_baseline_needs_it():
    names = lambda config: [c.name for c in planned_checks(parse_analysis(config, "r"), GREEN)]  # noqa: E731
    assert names({}) == ["success-rate"]
    assert names({"latencyP99": "300ms"}) == ["success-rate", "latency-p99"]
    assert names({"baseline": {"maxLatencyIncrease": 10}}) == ["success-rate", "latency-p99"]
    assert names({"queries": [{"name": "q", "query": "up", "min": 1}]}) == ["success-rate", "q"]


# --- the client, against real servers on loopback -------------------------------------------------------------


def ask(handler, query="sum(up)", **options):
    with serve(rec.by_query(lambda _: handler) if not callable(handler) else handler) as url:
        return Prometheus(url, **{"timeout": 3.0, **options}).query(query, at=rec.AT)


@pytest.mark.parametrize("recorded, kind, value, reason", rec.TYPED)
def test_every_answer_is_one_typed_result(recorded, kind, value, reason):
    answer = ask(recorded)
    assert (answer.kind, answer.value) == (kind, value) and reason in answer.reason
    assert "\n" not in answer.reason and answer.query == "sum(up)"


def test_the_query_goes_to_the_instant_query_api_with_its_time_and_a_time_limit():
    seen = []

    def handle(path, headers):
        seen.append(path)
        return rec.body(200, rec.vector("1"))
    with serve(handle) as url:
        assert Prometheus(url + "/", timeout=4).query('sum(x{a="b"})', at=rec.AT).value == 1.0
    assert seen[0].startswith("/api/v1/query?query=sum%28x%7Ba%3D%22b%22%7D%29")
    assert "time=1767225600.123" in seen[0] and "timeout=4s" in seen[0]


def test_garbage_and_redirects_are_reasons_not_exceptions():
    assert "not its API's JSON: \\x00" not in ask(lambda p, h: (200, {}, b"\x00\xff<html>")).reason
    assert "not its API's JSON" in ask(lambda p, h: (200, {}, b"\x00\xff<html>")).reason
    moved = ask(lambda p, h: (302, {"Location": "https://login.example.com/"}, b""))
    assert moved.kind == ERROR and "redirected to https://login.example.com/" in moved.reason
    nested = ask(lambda p, h: (200, {}, b"[" * 100_000 + b"]" * 100_000))
    assert nested.kind == ERROR


def test_an_unreachable_prometheus():
    answer = Prometheus(f"http://127.0.0.1:{closed_port()}", timeout=3).query("up")
    assert answer.kind == ERROR and "unreachable" in answer.reason and "Connection refused" in answer.reason
    assert "query=" not in answer.reason  # the URL with the query is not repeated


def test_a_huge_answer_is_cut_off_at_the_cap():
    declared = ask(lambda p, h: (200, {}, b" " * 5000), max_bytes=1000)
    assert declared.kind == ERROR and "5000 bytes, over the 1000" in declared.reason

    def chunked(connection, head, stop):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * 65536
        while not stop.is_set():
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    with serve_raw(chunked) as url:
        answer = Prometheus(url, timeout=5, max_bytes=200_000).query("up")
    assert answer.kind == ERROR and "over the 200000 bytes" in answer.reason


@pytest.mark.parametrize("behaviour", ["silent", "trickled headers", "trickled body"])
def test_a_hanging_prometheus_answers_within_the_time_limit(behaviour):
    def respond(connection: socket.socket, head: bytes, stop: threading.Event) -> None:
        if behaviour != "silent":  # a status line, then headers that never end, or a body that never does
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
        if behaviour == "trickled body":
            connection.sendall(b"Content-Length: 100000\r\n\r\n")
        while not stop.wait(0.2):
            if behaviour != "silent":
                connection.sendall(b"X-A: b\r\n" if behaviour == "trickled headers" else b" ")
    with serve_raw(respond) as url:
        started = time.monotonic()
        answer = Prometheus(url, timeout=1.0).query("up")
        took = time.monotonic() - started
    assert answer.kind == ERROR and "did not answer within 1s" in answer.reason
    assert took < 1.5


# --- the decisions --------------------------------------------------------------------------------------------

SETTINGS = parse_analysis({"latencyP99": "500ms", "count": 3, "failureLimit": 2}, "routing")
RATE = PlannedCheck("success-rate", "SR", low=99.0, unit="%")
P99 = PlannedCheck("latency-p99", "P99", high=500.0, unit="ms")


def value(query, number):
    return Answer(query, VALUE, value=number)


def test_a_failed_check_says_value_threshold_window_and_query():
    assert d.judge(RATE, value("SR", 80.0), "30s").message == "success rate 80.0% < 99% over the last 30s (query: SR)"
    assert d.judge(P99, value("P99", 812.4), "30s").message == "p99 latency 812.4ms > 500ms over the last 30s (query: P99)"
    passed = d.judge(RATE, value("SR", 99.5), "30s")
    assert passed.outcome == d.PASSED and passed.message == "success rate 99.5% >= 99% over the last 30s (query: SR)"
    assert d.judge(RATE, Answer("SR", NO_DATA, reason="NaN"), "30s").outcome == d.INCONCLUSIVE
    assert d.judge(RATE, Answer("SR", ERROR, reason="unreachable"), "30s").outcome == ERROR


@pytest.mark.parametrize("number, threshold, shown", [(98.96, 99, "98.96"), (99.04, 99, "99.04"), (98.999, 99, "98.999"),
                                                      (99.0, 99, "99.0"), (100.0, 99.9, "100.0")])
def test_a_value_is_never_shown_on_the_wrong_side_of_its_threshold(number, threshold, shown):
    assert d.figure(number, threshold) == shown


def test_a_measurement_without_enough_requests_is_no_data_as_configured():
    few = value("COUNT", 3.0)
    failed = d.measure(SETTINGS, few)
    assert failed.outcome == d.FAILED
    assert failed.message == ("no data: 3.0 requests < minRequests 10 over the last 30s (noData=fail; query: COUNT)")
    waiting = parse_analysis({"noData": "wait"}, "r")
    assert d.measure(waiting, few).outcome == d.INCONCLUSIVE
    assert d.measure(waiting, Answer("COUNT", NO_DATA, reason="none")).outcome == d.INCONCLUSIVE
    assert d.measure(waiting, Answer("COUNT", ERROR, reason="unreachable")).outcome == ERROR


def test_a_measurement_is_as_bad_as_its_worst_check():
    many = value("COUNT", 120.0)
    good, bad = d.judge(RATE, value("SR", 99.9), "30s"), d.judge(P99, value("P99", 900.0), "30s")
    assert d.measure(SETTINGS, many, [good]).outcome == d.PASSED
    assert d.measure(SETTINGS, many, [good]).message == "all 1 checks passed on 120.0 requests over the last 30s"
    assert d.measure(SETTINGS, many, [good, bad]).message == bad.message
    nan = d.judge(P99, Answer("P99", NO_DATA, reason="NaN"), "30s")
    assert d.measure(SETTINGS, many, [good, nan]).outcome == d.FAILED  # noData=fail
    assert d.measure(parse_analysis({"noData": "wait"}, "r"), many, [good, nan]).outcome == d.INCONCLUSIVE


def test_the_baseline_compares_the_new_color_with_the_old_before_the_flip():
    config = parse_analysis({"baseline": {"maxSuccessRateDrop": 1, "maxLatencyIncrease": 20}}, "r")
    old = d.BaselineFigures("blue", success_rate=99.8, latency_p99_ms=100.0)
    checks = [d.judge(RATE, value("SR", 99.5), "30s"), d.judge(PlannedCheck("latency-p99", "P99", unit="ms"),
                                                               value("P99", 150.0), "30s")]
    measured = d.measure(config, value("COUNT", 500.0), checks, old)
    assert measured.outcome == d.FAILED
    assert measured.message == ("p99 latency 150.0ms is 50.0% above blue's 100.0ms before the flip, more than the 20% "
                                "margin (baseline.maxLatencyIncrease) over the last 30s")
    assert [c.outcome for c in measured.checks[-2:]] == [d.PASSED, d.FAILED]
    unknown = d.measure(config, value("COUNT", 500.0), checks[:1], d.BaselineFigures("blue"))
    assert unknown.outcome == d.PASSED  # an old color without figures sets no baseline


def run(*outcomes, policy=d.Policy(count=3, failure_limit=2)):
    return d.verdict([d.Measurement(o, f"m{i} {o}", "30s") for i, o in enumerate(outcomes)], policy)


def test_the_verdict_on_a_run_of_measurements():
    assert run().action == d.CONTINUE
    assert run(d.PASSED, d.FAILED).action == d.CONTINUE
    assert run(d.PASSED, d.PASSED, d.PASSED).action == d.PROMOTE
    assert run(d.PASSED, d.FAILED, d.INCONCLUSIVE).action == d.PROMOTE
    rolled = run(d.FAILED, d.PASSED, d.FAILED)
    assert rolled.action == d.ROLL_BACK and rolled.message == "2 of 3 measurements failed (failureLimit 2): m2 failed"
    assert run(d.FAILED, d.FAILED).action == d.ROLL_BACK  # at once, before count is reached
    assert run(d.ERROR, d.ERROR).action == d.ROLL_BACK
    assert run(d.ERROR, d.ERROR, d.PASSED, policy=d.Policy(3, 2, errors="wait")).action == d.PROMOTE
    only = run(d.INCONCLUSIVE, d.INCONCLUSIVE, d.INCONCLUSIVE)
    assert only.action == d.ROLL_BACK and "all inconclusive" in only.message
    assert run(d.PASSED, d.PASSED, d.PASSED, d.FAILED, d.FAILED).action == d.PROMOTE  # beyond count: not weighed


def test_a_dry_run_reports_what_it_would_do_but_never_rolls_back():
    dry = d.Policy(count=3, failure_limit=1, dry_run=True)
    early = run(d.FAILED, policy=dry)
    assert early.action == d.CONTINUE and early.would == d.ROLL_BACK
    final = run(d.FAILED, d.PASSED, d.PASSED, policy=dry)
    assert final.action == d.PROMOTE and final.would == d.ROLL_BACK
    assert final.message == "dry run, so no rollback; it would have rolled back: 1 of 1 measurements failed " \
                            "(failureLimit 1): m0 failed"
    assert run(d.PASSED, d.PASSED, d.PASSED, policy=dry).would is None


def test_before_the_flip_one_measurement_decides():
    policy = d.Policy.before_flip(SETTINGS)
    assert (policy.count, policy.failure_limit) == (1, 1)
    assert run(d.PASSED, policy=policy).action == d.PROMOTE and run(d.FAILED, policy=policy).action == d.ROLL_BACK


def test_a_measurement_survives_the_release_record():
    measured = d.measure(SETTINGS, value("COUNT", 50.0), [d.judge(RATE, value("SR", 99.5), "30s")], at=rec.AT)
    assert d.Measurement.from_record(json.loads(json.dumps(measured.to_record()))) == measured


# --- a measurement, taken from a Prometheus on loopback -------------------------------------------------------


def test_a_healthy_color_is_promoted_and_a_failing_one_rolled_back():
    config = parse_analysis({"latencyP99": "500ms", "count": 2}, "routing")
    with serve(rec.prometheus_with("99.7")) as url:
        client = Prometheus(url, timeout=3)
        taken = [take_measurement(client, config, GREEN, at=rec.AT) for _ in range(2)]
    assert [m.outcome for m in taken] == [d.PASSED, d.PASSED]
    assert d.verdict(taken, d.Policy.after_flip(config)).action == d.PROMOTE
    with serve(rec.prometheus_with("80")) as url:
        failing = take_measurement(Prometheus(url, timeout=3), config, GREEN)
    outcome = d.verdict([failing], d.Policy.after_flip(config))
    assert outcome.action == d.ROLL_BACK
    assert "success rate 80.0% < 99% over the last 30s (query: sum(rate(istio_requests_total{" in outcome.message


def test_no_traffic_asks_no_checks_and_a_stopped_prometheus_is_an_error():
    seen = []

    def handler(path, headers):
        seen.append(path)
        return rec.body(200, rec.EMPTY)
    with serve(handler) as url:
        measured = take_measurement(Prometheus(url, timeout=3), SETTINGS, GREEN)
    assert measured.outcome == d.FAILED and measured.message.startswith("no data: 0.0 requests") and len(seen) == 1
    stopped = take_measurement(Prometheus(f"http://127.0.0.1:{closed_port()}", timeout=2), SETTINGS, GREEN)
    assert stopped.outcome == ERROR and "unreachable" in stopped.message


def test_the_baseline_figures_of_the_old_color():
    config = parse_analysis({"baseline": {"maxLatencyIncrease": 20}}, "routing")
    with serve(rec.prometheus_with("99.7", p99="110")) as url:
        assert take_baseline(Prometheus(url, timeout=3), config, BLUE) == d.BaselineFigures("blue", 99.9, 110.0)
    with serve(rec.prometheus_with("99.7", count="2")) as url:
        assert take_baseline(Prometheus(url, timeout=3), config, BLUE) == d.BaselineFigures("blue")


def test_the_url_override_stays_out_of_the_settings():
    config = parse_analysis({"prometheusUrl": "http://prom:9090"}, "routing")
    assert prometheus_url(config, {}) == "http://prom:9090"
    assert prometheus_url(config, {URL_VARIABLE: "http://127.0.0.1:9091"}) == "http://127.0.0.1:9091"
    with pytest.raises(SettingsError, match=f"{URL_VARIABLE} is not a Prometheus base URL"):
        prometheus_url(config, {URL_VARIABLE: "127.0.0.1:9091"})
    with pytest.raises(SettingsError, match="prometheusUrl is empty"):
        prometheus_url(parse_analysis({}, "routing"), {})
    assert not math.isnan(config.interval_seconds)


# --- the gates the release phases call ------------------------------------------------------------------------


class Lines(list):
    def __call__(self, line):
        self.append(line)


def gated(stage, config, rate="99.7", count="240", p99="120", status=200, **options):
    """A gate run against a Prometheus on loopback, with a sleep that only counts; (verdict, log, sleeps)."""
    settings, log, sleeps = parse_analysis(config, "routing"), Lines(), []
    answers = rec.prometheus_with(rate, p99, count)
    handler = answers if status == 200 else (lambda path, headers: rec.body(status, {"status": "error",
                                                                                    "errorType": "internal",
                                                                                    "error": "boom"}))
    with serve(handler) as url:
        client = Prometheus(url, timeout=3)
        run = g.pre_promotion if stage == "pre" else g.post_promotion
        verdict = run(settings, GREEN, client, log, sleep=sleeps.append, clock=lambda: rec.AT, **options)
    return verdict, log, sleeps


def test_before_the_flip_one_measurement_of_the_test_traffic_decides():
    passed, log, sleeps = gated("pre", {})
    assert passed.outcome == g.PASSED and not passed.blocks and sleeps == []
    assert log == ["analysis pre-promotion #1 of myapp-green (v2): passed: all 1 checks passed on 240.0 requests "
                   "over the last 30s"]
    failed, _, _ = gated("pre", {}, rate="97.5")
    assert failed.outcome == g.FAILED and failed.blocks
    assert failed.reason.startswith("1 of 1 measurements failed (failureLimit 1): success rate 97.5% < 99% over the "
                                    "last 30s (query: sum(rate(istio_requests_total{")


def test_no_data_fails_by_default_or_is_waited_for_when_told():
    failed, _, sleeps = gated("pre", {}, count="3")
    assert failed.outcome == g.FAILED and "no data: 3.0 requests < minRequests 10" in failed.reason and sleeps == []
    waited, log, sleeps = gated("pre", {"noData": "wait", "count": 3, "interval": "5s"}, count="3")
    assert waited.outcome == g.INCONCLUSIVE and waited.blocks and sleeps == [5.0, 5.0] and len(log) == 3
    assert waited.reason.startswith("no measurement had figures to judge after 3 of 3 tries 5s apart: no data")


def test_a_dry_run_measures_everything_and_never_blocks():
    dry, log, _ = gated("post", {"dryRun": True, "count": 2}, rate="50")
    assert dry.outcome == g.DRY_RUN and not dry.blocks and dry.would == g.FAILED
    assert dry.reason.startswith("dry run, so no rollback; it would have rolled back: 1 of 1 measurements failed")
    assert len(dry.measurements) == 2 and len(log) == 2
    healthy, _, _ = gated("pre", {"dryRun": True})
    assert healthy.outcome == g.DRY_RUN and healthy.would is None and healthy.reason.startswith("dry run: ")


def test_after_the_flip_count_measurements_interval_apart_and_each_one_handed_over():
    kept = []
    passed, log, sleeps = gated("post", {"count": 3, "interval": "10s"}, on_measurement=kept.append)
    assert passed.outcome == g.PASSED and sleeps == [10.0] * 3 and len(kept) == 3 == len(passed.measurements)
    assert passed.reason == "3 of 3 measurements passed, 0 failed (failureLimit 1), 0 inconclusive"
    failed, _, sleeps = gated("post", {"count": 5, "failureLimit": 1}, rate="80")
    assert failed.outcome == g.FAILED and sleeps == [30.0]  # at once, not after all five
    resumed, _, sleeps = gated("post", {"count": 3}, previous=kept[:2])
    assert resumed.outcome == g.PASSED and sleeps == [30.0] and len(resumed.measurements) == 3


def test_a_prometheus_that_cannot_answer_is_inconclusive_in_one_line():
    broken, log, _ = gated("post", {"count": 2}, status=500)
    assert broken.outcome == g.INCONCLUSIVE and broken.blocks
    assert "Prometheus refused the query (HTTP 500, internal): boom" in broken.reason and "\n" not in broken.reason
    settings = parse_analysis({"count": 2}, "routing")
    gone = g.pre_promotion(settings, GREEN, Prometheus(f"http://127.0.0.1:{closed_port()}", timeout=2), Lines(),
                           sleep=lambda _: None)
    assert gone.outcome == g.INCONCLUSIVE and "unreachable" in gone.reason and "Traceback" not in gone.reason
    assert g.client_for(parse_analysis({"interval": "2s", "prometheusUrl": "http://p:9090"}, "r"), {}).timeout == 2


def test_a_stop_ends_the_wait_between_measurements():
    stop = threading.Event()
    stop.set()
    stopped, _, _ = gated("post", {"count": 3}, stop=stop)
    assert stopped.outcome == g.INCONCLUSIVE and stopped.reason == "stopped after 0 of 3 measurements"


def test_the_baseline_of_the_old_color_is_a_margin_the_new_one_may_not_exceed():
    settings = parse_analysis({"baseline": {"maxSuccessRateDrop": 1}, "count": 1, "successRate": 95}, "routing")
    log = Lines()
    with serve(rec.prometheus_with("98.5")) as url:  # green 98.5 %, blue 99.9 %: 1.4 points worse
        client = Prometheus(url, timeout=3)
        old = g.baseline_of(settings, BLUE, client, log)
        verdict = g.post_promotion(settings, GREEN, client, log, sleep=lambda _: None, baseline=old)
    assert log[0] == "analysis baseline of myapp-blue (v1) over the last 30s: success rate 99.9%"
    assert verdict.outcome == g.FAILED and "1.4 points below blue's 99.9% before the flip, more than the 1-point " \
                                           "margin (baseline.maxSuccessRateDrop)" in verdict.reason
    assert g.baseline_of(parse_analysis({}, "r"), BLUE, client, log) is None


def test_every_measurement_as_rows_for_status_and_junit():
    verdict, _, _ = gated("post", {"count": 1, "latencyP99": "500ms"}, p99="812")
    rows = verdict.rows()
    assert [(r["name"], r["outcome"], r["value"], r["threshold"], r["window"]) for r in rows] == [
        ("post-promotion #1 request-count", "passed", 240.0, ">= 10", "30s"),
        ("post-promotion #1 success-rate", "passed", 99.7, ">= 99%", "30s"),
        ("post-promotion #1 latency-p99", "failed", 812.0, "<= 500ms", "30s")]
    assert rows[2]["query"].startswith("histogram_quantile(0.99") and "812.0ms > 500ms" in rows[2]["message"]
    assert json.loads(json.dumps(verdict.to_record()))["measurements"][0]["checks"][1]["threshold"] == "<= 500ms"
    nodata, _, _ = gated("pre", {}, count="0")
    assert [(r["outcome"], r["value"]) for r in nodata.rows()] == [("failed", 0.0)]


# --- the test load before the flip ----------------------------------------------------------------------------


def load_threads():
    return [t for t in threading.enumerate() if t.name.startswith("test-load")]


def test_the_test_load_is_paced_spread_over_the_paths_and_carries_the_test_cookie():
    seen = []

    def handle(path, headers):
        seen.append((path, headers.get("Cookie")))
        return 200, {}, b"ok"
    with serve(handle) as url:
        started = time.monotonic()
        report = drive_load(url + "/", ["/a", "/b"], Cookie("test", "true"), rps=20, duration=1)
        took = time.monotonic() - started
    assert report.sent == 20 == len(seen) and report.statuses == {200: 20} and report.failed == report.skipped == 0
    assert {path for path, _ in seen} == {"/a", "/b"} and {cookie for _, cookie in seen} == {"test=true"}
    assert 0.95 <= took < 4 and report.line().startswith("test load: 20 requests in 1.")
    assert "(20 x 200; 0 without an answer, 0 skipped)" in report.line()
    assert load_threads() == []


def test_the_test_load_ends_every_request_at_its_timeout_and_at_a_stop():
    with serve_raw(lambda connection, head, stop: stop.wait(30)) as url:  # a gateway that never answers
        stop = threading.Event()
        running = RunningLoad(url, ["/"], None, rps=10, duration=60, timeout=0.5, stop=stop).start()
        time.sleep(1.2)
        running.stop()
        started = time.monotonic()
        report = running.wait()
        assert time.monotonic() - started < 1.5
    assert 10 <= report.sent <= 14 and report.failed == report.sent and not report.statuses
    assert load_threads() == []


@pytest.mark.parametrize("rps, duration, problem", [(0, 30, "above 0"), (5000, 30, "at most 1000"),
                                                    (10, 0, "above 0s"), (10, 7200, "at most 3600s")])
def test_a_test_load_out_of_bounds_is_refused(rps, duration, problem):
    assert problem in load_problem(rps, duration)
    with pytest.raises(ValueError, match=problem):
        RunningLoad("http://127.0.0.1:1", ["/"], None, rps, duration)


def test_a_load_whose_pacer_breaks_raises_in_wait_rather_than_reporting_no_load():
    from decimal import Decimal
    running = RunningLoad("http://127.0.0.1:1", ["/"], None, 5.0, Decimal("0.5")).start()  # float * Decimal
    with pytest.raises(TypeError, match="Decimal"):
        running.wait()
