"""The fault matrix's second half: smoke_test.py against raw servers on 127.0.0.1 that hang, trickle bytes, send
huge or gzip-bomb bodies, deeply nested JSON, control characters, the wrong color, redirects, garbage; and
smoke_test.py signalled mid-run. Each case ends within its deadline, server text escaped, the test token nowhere,
the JUnit report written; it records how it ended (the `fault` property), for the counts tests/conftest.py
prints at the end of the session (the first half, release.py's, is tests/test_faults_release.py)."""

from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest

from harness.loopback import ROOT, serve_raw
from harness.release_world import in_boundary
from components.routes import COLOR_HEADER
from bluegreen_tools import smoke_test

TOKEN = "tok-5ecret-0f1e2d3c4b5a6978"  # the test cookie's value: never printed
SMOKE_PY = ROOT / "scripts" / "smoke_test.py"
DEEP = "[" * 50_000 + "]" * 50_000


def record(record_property, target: str, kind: str, ended: str) -> None:
    record_property("fault", json.dumps({"target": target, "kind": kind, "ended": ended}))


# --- smoke_test.py against bad servers ----------------------------------------------------------------

def send(connection, data: bytes) -> None:
    connection.sendall(data)


def answer(status: bytes = b"200 OK", headers: tuple[bytes, ...] = (),
           body: bytes | Callable[[], bytes] = b'{"ready": true}', color: Optional[bytes] = b"green",
           length: bool = True):
    def respond(connection, head, stop):
        payload = body() if callable(body) else body
        lines = [b"HTTP/1.1 " + status, *headers]
        if color is not None:
            lines.append(COLOR_HEADER.encode() + b": " + color)
        if length:
            lines.append(b"Content-Length: %d" % len(payload))
        send(connection, b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + payload)
    return respond


def silent(connection, head, stop):
    stop.wait(30)


def trickle(prefix: bytes):
    def respond(connection, head, stop):
        send(connection, prefix)
        while not stop.wait(0.05):
            send(connection, b"a")
    return respond


def chunked_forever(connection, head, stop):
    send(connection, b"HTTP/1.1 200 OK\r\nx-bluegreen-color: green\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
    for _ in range(256):  # 16 MiB, unless the client stops reading first
        if stop.is_set():
            return
        send(connection, chunk)


def cut_short(connection, head, stop):
    send(connection, b"HTTP/1.1 200 OK\r\nx-bluegreen-color: green\r\nContent-Length: 100\r\n\r\n{\"ready\"")


def close_at_once(connection, head, stop):
    pass


# 16 MiB in about 16 KiB, made when its case runs: not in the collection of every worker (0.13 CPU-seconds each).
def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * (16 << 20), compresslevel=9)


def deflate_bomb() -> bytes:
    return zlib.compress(b"\0" * (16 << 20), 9)


@dataclass(frozen=True)
class BadServer:
    name: str
    kind: str
    respond: Any
    expect: str  # in the FAIL line

    @property
    def timeout(self) -> float:
        """The check's --timeout: a body to read and refuse gets time for a loaded machine's CPU; a server that
        makes the check wait for its deadline gets the short one."""
        return BODY_TIMEOUT if self.kind == "a huge or compressed-bomb body" else TIMEOUT


BAD_SERVERS = [
    BadServer("accepts-and-never-answers", "the server hangs", silent, "no complete answer in time"),
    BadServer("trickles-the-headers", "the server trickles bytes", trickle(b"HTTP/1.1 200 OK\r\nX-Slow: "),
              "no complete answer in time"),
    BadServer("trickles-the-body", "the server trickles bytes",
              trickle(b"HTTP/1.1 200 OK\r\nx-bluegreen-color: green\r\nContent-Length: 100000\r\n\r\n"),
              "no complete answer in time"),
    BadServer("says-it-sends-10-gb", "a huge or compressed-bomb body",
              answer(headers=(b"Content-Length: 10000000000",), length=False), "over the 1048576-byte cap"),
    BadServer("streams-16-mib-chunked", "a huge or compressed-bomb body", chunked_forever, "over the 1048576-byte cap"),
    BadServer("gzip-bomb", "a huge or compressed-bomb body",
              answer(headers=(b"Content-Encoding: gzip",), body=gzip_bomb), "once decompressed"),
    BadServer("deflate-bomb", "a huge or compressed-bomb body",
              answer(headers=(b"Content-Encoding: deflate",), body=deflate_bomb), "once decompressed"),
    BadServer("corrupt-gzip", "a huge or compressed-bomb body",
              answer(headers=(b"Content-Encoding: gzip",), body=b"\x1f\x8bnot gzip at all"), "cannot be decompressed"),
    BadServer("brotli", "a huge or compressed-bomb body",
              answer(headers=(b"Content-Encoding: br",), body=b"\x0b\x02\x80"), "is not supported"),
    BadServer("deeply-nested-json", "malformed JSON", answer(body=DEEP.encode()), "nested more than 32 levels"),
    BadServer("deeply-nested-ready", "malformed JSON", answer(body=b'{"ready": ' + DEEP.encode() + b"}"),
              "nested more than 32 levels"),
    BadServer("a-5000-digit-number", "malformed JSON", answer(body=b'{"ready": 1' + b"0" * 5000 + b"}"), "not JSON"),
    BadServer("not-utf-8", "malformed JSON", answer(body=b'{"ready": true, "x": "\xff"}'), "not UTF-8"),
    BadServer("ready-nan", "malformed JSON", answer(body=b'{"ready": NaN}'), '"ready" is NaN'),
    BadServer("escape-codes-in-the-color", "control characters", answer(color=b"green\x1b[2J"),
              "answered by green\\x1b[2J, expected green"),
    BadServer("escape-codes-in-the-reason", "control characters",
              answer(status=b"500 Boom\x1b]0;owned\x07"), "500 Boom\\x1b]0;owned\\x07"),
    BadServer("escape-codes-in-a-location", "control characters",
              answer(status=b"302 Found", headers=(b"Location: http://x.example/\x1b[31mred",)), "\\x1b[31mred"),
    BadServer("bidi-override-in-the-color", "control characters", answer(color=b"gr\xe2\x80\xaeeen"),
              "expected green"),
    BadServer("the-wrong-color", "the wrong color", answer(color=b"blue"), "answered by blue, expected green"),
    BadServer("no-color-header", "the wrong color", answer(color=None), "did not come through the bluegreen routes"),
    BadServer("a-301", "a redirect", answer(status=b"301 Moved", headers=(b"Location: http://evil.example/",)),
              "redirected to http://evil.example/ (not followed)"),
    BadServer("a-307", "a redirect", answer(status=b"307 Temporary", headers=(b"Location: /elsewhere",)),
              "redirected to /elsewhere (not followed)"),
    BadServer("a-redirect-echoing-the-token", "a redirect",
              answer(status=b"302 Found", headers=(b"Location: http://evil.example/?c=" + TOKEN.encode(),)),
              "redirected to http://evil.example/?c=[secret]"),
    BadServer("garbage-not-http", "not HTTP", lambda c, h, s: send(c, b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
              "not a valid HTTP answer"),
    BadServer("a-70k-header-line", "not HTTP", answer(headers=(b"X-Big: " + b"a" * 70_000,)), "not a valid HTTP answer"),
    BadServer("150-headers", "not HTTP", answer(headers=tuple(b"X-%d: a" % i for i in range(150))),
              "not a valid HTTP answer"),
    BadServer("closes-at-once", "the server hangs up", close_at_once, "closed before a complete answer"),
    BadServer("body-cut-short", "the server hangs up", cut_short, "cut short"),
]
TIMEOUT = 0.5
BODY_TIMEOUT = 2.0  # reading 1 MiB or inflating a bomb to its cap: the CI machine runs the e2e tier beside it


@pytest.mark.parametrize("server", BAD_SERVERS, ids=[server.name for server in BAD_SERVERS])
def test_smoke_test_ends_safely_against_a_bad_server(server, tmp_path, capfd, record_property):
    report = tmp_path / "smoke.xml"
    argv = ["--url", "", "--cookie", f"test={TOKEN}", "--expect-color", "green", "--timeout", str(server.timeout),
            "--consecutive", "1", "--junit", str(report)]
    with serve_raw(server.respond) as url:
        argv[1] = url
        start = time.monotonic()
        code = in_boundary(smoke_test.main, argv, "smoke_test")
        took = time.monotonic() - start
    out, err = capfd.readouterr()
    text = out + err
    assert code == 1
    assert took < server.timeout + 1.5  # the deadline holds on the whole answer, not per read
    fail = next(line for line in out.splitlines() if line.startswith("FAIL GET /ready"))
    assert server.expect in fail, fail
    assert "Traceback" not in text and TOKEN not in text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text)  # server text escaped
    suite = ET.parse(report).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")
    assert TOKEN not in report.read_text()
    fast = "no complete answer" not in server.expect and "closed" not in server.expect and "cut" not in server.expect
    record(record_property, "smoke_test.py", server.kind,
           "failed at once" if fast and took < server.timeout else "failed at its deadline")


def test_a_redirect_is_never_followed_so_the_cookie_stays_home(capfd, record_property):
    hits = []

    def elsewhere(connection, head, stop):
        hits.append(head)
        answer()(connection, head, stop)

    with serve_raw(elsewhere) as other:
        with serve_raw(answer(status=b"308 Permanent", headers=(f"Location: {other}/ready".encode(),))) as url:
            code = in_boundary(smoke_test.main, ["--url", url, "--cookie", f"test={TOKEN}", "--timeout",
                                                 str(TIMEOUT)], "smoke_test")
    out, _ = capfd.readouterr()
    assert code == 1 and hits == [] and "(not followed)" in out
    record(record_property, "smoke_test.py", "a redirect", "failed at once")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_smoke_test_writes_its_report_when_interrupted(signum, tmp_path, record_property):
    asked = threading.Event()

    def respond(connection, head, stop):
        asked.set()
        stop.wait(30)

    report = tmp_path / "smoke.xml"
    with serve_raw(respond) as url:
        child = subprocess.Popen([sys.executable, str(SMOKE_PY), "--url", url, "--timeout", "30", "--check", "/a",
                                  "--junit", str(report)], text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert asked.wait(20)
        child.send_signal(signum)
        out, err = child.communicate(timeout=20)
    name = signal.Signals(signum).name
    assert child.returncode == 1
    assert err.strip().splitlines()[-1] == f"error: interrupted by {name}"
    assert "Traceback" not in out + err
    suite = ET.parse(report).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")
    assert f"stopped: interrupted by {name}" in report.read_text()
    record(record_property, "smoke_test.py", f"{name} to smoke_test.py mid-run", "stopped, report written")
