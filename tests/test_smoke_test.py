"""scripts/smoke_test.py against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from harness.loopback import (ROOT, answer, closed_port, endless, hanging, healthy, ready, self_signed, serve,
                              serve_raw, trickling)
from bluegreen_tools import smoke_test
from bluegreen_tools.smoke import client

SCRIPT = ROOT / "scripts" / "smoke_test.py"


def run(capsys, *argv: str) -> tuple[int, str, float]:
    """smoke_test.main in-process: exit code, stdout, seconds taken."""
    start = time.monotonic()
    code = smoke_test.main(list(argv))
    return code, capsys.readouterr().out, time.monotonic() - start


def line_of(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if f" GET {name} (" in line)


def test_healthy_gateway_passes_every_check_and_sends_the_cookie(capsys):
    seen = []
    with serve(healthy("green", seen)) as url:
        code, out, _ = run(capsys, "--url", url, "--cookie", "test=s3cret", "--expect-color", "green",
                           "--check", "/api/orders", "--check", "/api/users")
    assert code == 0
    for path in ("/ready", "/api/orders", "/api/users"):
        assert line_of(out, path).startswith("PASS ")
        assert "answered by green" in line_of(out, path)
    assert "3 of 3 checks passed" in out
    # three right answers in a row (--consecutive, default 3) per check, each with the cookie
    assert sorted(seen) == sorted(3 * [("/api/orders", "test=s3cret"), ("/api/users", "test=s3cret"),
                                       ("/ready", "test=s3cret")])
    assert "3 in a row" in line_of(out, "/ready")
    assert "s3cret" not in out and "test=[secret]" in out


def test_waits_for_an_app_that_becomes_ready(capsys):
    start = time.monotonic()

    def handle(path, headers):
        return answer(503, None, b"no healthy upstream") if time.monotonic() - start < 0.4 else ready("green")

    with serve(handle) as url:
        code, out, _ = run(capsys, "--url", url, "--timeout", "3")
    assert code == 0
    assert line_of(out, "/ready").startswith("PASS ")


def test_never_ready_fails_when_the_timeout_runs_out_with_what_it_saw_last(capsys):
    seen = []

    def handle(path, headers):
        seen.append(path)
        return answer(503, "green", b"upstream connect error")

    with serve(handle) as url:
        code, out, took = run(capsys, "--url", url, "--timeout", "0.6")
    assert code == 1
    assert 0.6 <= took < 2.0
    detail = line_of(out, "/ready")
    assert detail.startswith("FAIL ") and "0.6s timeout" in detail and "503 Service Unavailable" in detail
    assert 3 <= len(seen) <= 6  # it kept trying, with back-off rather than a busy loop


def test_ready_false_is_waited_on_then_fails(capsys):
    with serve(lambda path, headers: ready("green", value=False)) as url:
        code, out, took = run(capsys, "--url", url, "--timeout", "0.6")
    assert code == 1 and took >= 0.6
    assert '"ready": false' in line_of(out, "/ready")


def test_a_body_that_is_not_json_fails_at_once_without_quoting_it(capsys):
    page = b"<html>maintenance page, session=abc123</html>"
    with serve(lambda path, headers: answer(200, "green", page, "text/html")) as url:
        code, out, took = run(capsys, "--url", url, "--timeout", "5")
    assert code == 1 and took < 1.0
    detail = line_of(out, "/ready")
    assert "not JSON" in detail and "text/html" in detail and "abc123" not in detail


def test_ready_must_be_json_true(capsys):
    with serve(lambda path, headers: answer(200, "green", b'{"ready": "yes"}', "application/json")) as url:
        code, out, took = run(capsys, "--url", url, "--timeout", "5")
    assert code == 1 and took < 1.0
    assert '"ready" is "yes"' in line_of(out, "/ready")


def test_an_answer_from_the_other_color_fails_at_once_naming_it(capsys):
    with serve(healthy("blue")) as url:
        code, out, took = run(capsys, "--url", url, "--expect-color", "green", "--timeout", "5")
    assert code == 1 and took < 1.0
    assert "answered by blue, expected green" in line_of(out, "/ready")


def test_an_answer_without_the_color_header_fails_when_a_color_is_expected(capsys):
    with serve(lambda path, headers: ready(None)) as url:
        code, out, _ = run(capsys, "--url", url, "--expect-color", "green", "--timeout", "5")
    assert code == 1
    assert "did not come through the bluegreen routes" in line_of(out, "/ready")


def test_settle_waits_for_a_routing_change_to_reach_the_gateway(capsys):
    start = time.monotonic()

    def handle(path, headers):  # the old color answers until the new route arrives
        return ready("blue" if time.monotonic() - start < 0.3 else "green")

    with serve(handle) as url:
        code, out, took = run(capsys, "--url", url, "--expect-color", "green", "--settle", "0.6", "--timeout", "3")
    assert code == 0, out
    assert took >= 0.6  # right answers count only once the settle time is over
    assert "wrong-color answers in all" in line_of(out, "/ready")  # blue's answers while settling, counted


def test_settle_is_bounded_then_the_other_color_fails(capsys):
    with serve(healthy("blue")) as url:
        code, out, took = run(capsys, "--url", url, "--expect-color", "green", "--settle", "0.3", "--timeout", "5")
    assert code == 1 and 0.3 <= took < 1.5
    assert "answered by blue, expected green" in line_of(out, "/ready")


def test_nothing_listening_fails_as_unreachable(capsys):
    code, out, took = run(capsys, "--url", f"http://127.0.0.1:{closed_port()}", "--timeout", "0.6")
    assert code == 1 and took >= 0.6
    assert "Connection refused" in line_of(out, "/ready")


def test_an_extra_path_must_answer_2xx(capsys):
    def handle(path, headers):
        return ready("green") if path == "/ready" else answer(404, "green", b"not found")

    with serve(handle) as url:
        code, out, took = run(capsys, "--url", url, "--check", "/api/orders", "--timeout", "5")
    assert code == 1 and took < 1.0
    assert line_of(out, "/ready").startswith("PASS ")
    assert line_of(out, "/api/orders").startswith("FAIL ") and "404 Not Found" in line_of(out, "/api/orders")
    assert "1 of 2 checks passed" in out


def test_a_redirect_is_not_followed(capsys):
    def handle(path, headers):
        return 301, {"Location": "https://elsewhere.example/ready"}, b""

    with serve(handle) as url:
        code, out, _ = run(capsys, "--url", url, "--timeout", "5")
    assert code == 1
    assert "redirected to https://elsewhere.example/ready" in line_of(out, "/ready")


def test_independent_checks_run_concurrently(capsys):
    def handle(path, headers):
        time.sleep(0.4)
        return ready("green") if path == "/ready" else answer(200, "green")

    with serve(handle) as url:
        code, _, took = run(capsys, "--url", url, "--check", "/a", "--check", "/b", "--check", "/c",
                            "--consecutive", "1")
    assert code == 0
    assert took < 1.2  # four checks of 0.4s each


def test_the_url_can_come_from_the_environment(capsys, monkeypatch):
    with serve(healthy()) as url:
        monkeypatch.setenv("BLUEGREEN_URL", url + "/")
        code, out, _ = run(capsys)
    assert code == 0 and line_of(out, "/ready").startswith("PASS ")


def test_junit_report(tmp_path, capsys):
    def handle(path, headers):
        return ready("green") if path == "/ready" else answer(500, "green", b"boom")

    report = tmp_path / "smoke.xml"
    with serve(handle) as url:
        code, _, _ = run(capsys, "--url", url, "--check", "/api", "--junit", str(report), "--timeout", "1")
    assert code == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["GET /ready"].find("failure") is None
    assert "500 Internal Server Error" in cases["GET /api"].find("failure").get("message")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls_is_verified_unless_insecure(tmp_path, capsys):
    with serve(healthy(), tls=self_signed(tmp_path)) as url:
        code, out, took = run(capsys, "--url", url, "--timeout", "5")
        assert code == 1 and took < 1.0
        assert "TLS failed (certificate verify failed" in out and "--insecure" in out
        code, out, _ = run(capsys, "--url", url, "--insecure")
        assert code == 0


@pytest.mark.parametrize("argv, message", [
    (["--url", "ftp://gateway.example"], "is not an http(s) URL"),
    (["--url", "gateway.example"], "is not an http(s) URL"),
    (["--url", "http://gateway.example:port"], "invalid port"),
    (["--url", "http://gateway.example", "--cookie", "test"], "it must be name=value"),
    (["--url", "http://gateway.example", "--expect-color", "red"], "invalid choice: 'red'"),
    (["--url", "http://gateway.example", "--check", "api"], "must be a URL path"),
    (["--url", "http://gateway.example", "--timeout", "soon"], "is not a number of seconds"),
    (["--url", "http://gateway.example", "--consecutive", "0"], "'0' is not a number of answers from 1 to 100"),
    (["--url", "http://gateway.example", "--max-body", "lots"], "'lots' is not a number of bytes"),
    ([], "--url URL or the environment variable BLUEGREEN_URL"),
])
def test_bad_usage_exits_2(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("BLUEGREEN_URL", raising=False)
    with pytest.raises(SystemExit) as exit:
        smoke_test.main(argv)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_exits_1_or_2_and_never_prints_a_traceback(tmp_path):
    def cli(*argv):
        return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=30)

    unreachable = cli("--url", f"http://127.0.0.1:{closed_port()}", "--timeout", "0.3",
                      "--junit", str(tmp_path / "no-such-dir" / "report.xml"))
    assert unreachable.returncode == 1
    assert "FAIL GET /ready" in unreachable.stdout
    assert "error: cannot write the JUnit report" in unreachable.stderr
    usage = cli("--url", "ftp://gateway.example")
    assert usage.returncode == 2
    for done in (unreachable, usage):
        assert "Traceback" not in done.stdout + done.stderr


def test_run_checks_returns_one_result_per_check_in_order():
    with serve(healthy("blue")) as url:
        results = smoke_test.run_checks(url, ["/x", "/y"], expect_color="blue", timeout=1)
    assert [(r.name, r.passed) for r in results] == [("GET /ready", True), ("GET /x", True), ("GET /y", True)]


def test_after_the_settle_time_any_wrong_answer_fails_even_between_right_ones(capsys):
    answers = iter(["green", "green", "blue"])  # a gateway pod that has not got the new route yet

    def handle(path, headers):
        return ready(next(answers, "green"))

    with serve(handle) as url:
        code, out, took = run(capsys, "--url", url, "--expect-color", "green", "--consecutive", "3", "--timeout", "5")
    assert code == 1 and took < 1.0
    detail = line_of(out, "/ready")
    assert "answered by blue, expected green" in detail and "1 wrong-color answer in all" in detail


def test_the_junit_report_is_written_on_a_pass_with_the_answers_counted(tmp_path, capsys):
    report = tmp_path / "smoke.xml"
    with serve(healthy("green")) as url:
        code, _, _ = run(capsys, "--url", url, "--expect-color", "green", "--junit", str(report))
    assert code == 0
    case = ET.parse(report).getroot().find("testsuite/testcase")
    assert case.find("failure") is None and "3 in a row" in case.find("system-out").text
    assert {p.get("name"): p.get("value") for p in case.iter("property")} == {"answers": "3", "wrongColorAnswers": "0"}


def test_the_run_has_a_deadline_of_its_own(monkeypatch):
    """A check stuck where no deadline of its own reaches (a DNS lookup, a bug) does not hold the run."""
    stuck = threading.Event()
    monkeypatch.setattr(client, "get", lambda *args, **kwargs: stuck.wait(30))
    start = time.monotonic()
    try:
        results = smoke_test.run_checks("http://gateway.example", timeout=5, run_timeout=0.3)
    finally:
        stuck.set()
    assert time.monotonic() - start < 2
    assert [(r.passed, r.detail) for r in results] == [(False, "did not finish by the run's deadline (0.3s)")]


# --- the check's deadline: a verdict by settle + timeout + 1 s, whatever the server does -------------------

STATUS = b"HTTP/1.1 200 OK\r\nx-bluegreen-color: green\r\nContent-Type: application/json\r\n"
NEVER_COMPLETE = {  # server: (what it does, whether its headers complete: a --check path reads no body)
    "trickles-the-body-after-connection-close":
        (trickling(STATUS + b"Connection: close\r\nContent-Length: 100000\r\n\r\n"), True),
    "trickles-the-body": (trickling(STATUS + b"Content-Length: 100000\r\n\r\n"), True),
    "trickles-the-headers": (trickling(STATUS + b"X-Slow: "), False),
    "hangs": (hanging, False),
    "an-endless-chunked-body": (endless, True),
}
LATE = "no complete answer in time (the server is slow, or sends its answer a little at a time)"


@pytest.mark.parametrize("settle", [0.0, 0.5], ids=["no-settle", "settle"])
@pytest.mark.parametrize("server", NEVER_COMPLETE, ids=list(NEVER_COMPLETE))
def test_the_verdict_comes_by_settle_plus_timeout_whatever_the_server_sends(server, settle, capsys):
    timeout = 0.5
    respond, headers_complete = NEVER_COMPLETE[server]
    with serve_raw(respond) as url:
        code, out, took = run(capsys, "--url", url, "--timeout", str(timeout), "--settle", str(settle),
                              "--check", "/api")
    assert code == 1
    assert settle + timeout - 0.05 <= took < settle + timeout + 1  # waited its time, and not the run's deadline
    limit = f"0.5s timeout (after the {settle:g}s settle)" if settle else "0.5s timeout"
    assert line_of(out, "/ready").endswith(f"not ready when the {limit} ran out; last: {LATE}"), out
    if headers_complete:
        assert line_of(out, "/api").startswith("PASS "), out
    else:
        assert line_of(out, "/api").endswith(f"not ready when the {limit} ran out; last: {LATE}"), out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_the_verdict_comes_by_the_timeout_when_a_tls_server_hangs(tmp_path, capsys):
    release = threading.Event()

    def handle(path, headers):  # after the handshake: the socket to shut is the TLS one
        release.wait(30)
        return ready("green")

    try:
        with serve(handle, tls=self_signed(tmp_path)) as url:
            code, out, took = run(capsys, "--url", url, "--timeout", "1", "--insecure")
            release.set()
    finally:
        release.set()
    assert code == 1 and 1 - 0.05 <= took < 2
    assert line_of(out, "/ready").endswith(f"not ready when the 1s timeout ran out; last: {LATE}")


def test_the_command_line_gives_its_verdict_by_the_timeout_against_a_trickle(capsys):
    """The issue's case: `--timeout 3` against a body trickled after `Connection: close` took the run's
    deadline (timeout + 5 s); timed from the run's first line to its verdict, in a process of its own."""
    with serve_raw(NEVER_COMPLETE["trickles-the-body-after-connection-close"][0]) as url:
        child = subprocess.Popen([sys.executable, str(SCRIPT), "--url", url, "--timeout", "1"], text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert child.stdout.readline().startswith("smoke test ")
            started = time.monotonic()
            verdict = child.stdout.readline()
            took = time.monotonic() - started
            out, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
    assert child.returncode == 1, err
    assert took < 1 + 1
    assert verdict.startswith("FAIL GET /ready") and verdict.rstrip().endswith(LATE)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls_is_verified_with_the_ca_bundle_requests_would_use(tmp_path, capsys, monkeypatch):
    """A gateway with a private CA: $REQUESTS_CA_BUNDLE names its bundle, as for requests itself."""
    cert, _ = tls = self_signed(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with serve(healthy(), tls=tls) as url:
        code, out, _ = run(capsys, "--url", url, "--consecutive", "1")
    assert code == 0, out
