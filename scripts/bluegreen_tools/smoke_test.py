"""Smoke tests through the real Istio ingress gateway.

    python scripts/smoke_test.py --url URL [--cookie NAME=VALUE] [--expect-color COLOR]
                                 [--timeout SECONDS] [--settle SECONDS] [--consecutive N]
                                 [--check PATH ...] [--junit FILE]

The built-in check is the tutorial's: GET /ready answers 200 with JSON {"ready": true}. Each
--check PATH must answer 2xx. Checks run concurrently; each waits for readiness (connection
refused, 502/503/504, "ready": false) with bounded back-off, then passes on N right answers in a
row once the settle time is over, while a definite wrong answer fails at once. With --expect-color
every answer must carry x-bluegreen-color: COLOR, which the VirtualService sets. Every check, and
the run, has a wall-clock deadline; a body is read up to a cap. Exit 0: all passed; 1: a check
failed; 2: bad usage. release.py calls `run_checks` in-process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlsplit

from components.routes import COLOR_HEADER
from components.settings import COLORS, Cookie, SettingsError, parse_cookie

from .cli import (EXIT_FAILED, EXIT_OK, SECRET_MIN_LENGTH, SIGNALS, Failure, add_secret, printable, redact,
                  result_line, run_main)

READY_PATH = "/ready"
WAIT_STATUSES = frozenset({502, 503, 504})  # the gateway has no ready upstream (yet)
FIRST_BACKOFF = 0.1  # seconds between tries, doubling up to MAX_BACKOFF
MAX_BACKOFF = 2.0
CONFIRM_INTERVAL = 0.1  # seconds between right answers counted in a row
MAX_REQUEST_SECONDS = 10.0  # one socket operation; the check's deadline bounds the whole answer
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONSECUTIVE = 3
DEFAULT_MAX_BODY = 1 << 20  # bytes, after decompression: a readiness answer is a few bytes
MAX_JSON_DEPTH = 32
RUN_MARGIN = 5.0  # the run's deadline, beyond the checks' own: room for threads to report
USER_AGENT = "bluegreen-smoke-test"


@dataclass(frozen=True)
class CheckResult:
    name: str  # e.g. "GET /ready"
    passed: bool
    seconds: float
    detail: str  # what was seen, escaped; never a cookie value
    wrong_colors: int = 0  # answers from another color, or without the color header, in the whole check
    answers: int = 0  # complete answers received


class ChecksInterrupted(Failure):
    """A signal stopped the checks; `results` has every check, the unfinished ones failed."""

    def __init__(self, message: str, results: list[CheckResult]):
        super().__init__(message)
        self.results = results


class _Wait(Exception):
    """Not ready yet: try again until the timeout runs out."""


class _Late(_Wait):
    """No complete answer by the check's deadline."""


class _Wrong(Exception):
    """A definite wrong answer: fail now."""


class _WrongColor(_Wrong):
    """Answered by another color, or not through our routes: definite once the route has settled."""


# --- one GET, within a wall-clock deadline ---------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    https: bool
    host: str
    port: Optional[int]
    prefix: str  # the URL's path, without a trailing slash
    context: Optional[ssl.SSLContext]

    @classmethod
    def of(cls, url: str, verify: bool) -> "_Target":
        parts = urlsplit(url)
        https = parts.scheme == "https"
        context = None
        if https:
            if verify:
                context = ssl.create_default_context(cafile=_ca_file())
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        return cls(https, parts.hostname or "", parts.port, parts.path.rstrip("/"), context)


def _ca_file() -> Optional[str]:
    """The CA bundle requests would use: $REQUESTS_CA_BUNDLE, $SSL_CERT_FILE, then certifi's."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: Message
    body: bytes


class _Watchdog:
    """Shuts the connection's socket at the deadline, whatever phase it is in (connect, TLS, headers,
    body): a server that trickles bytes cannot stretch an answer past it, as per-read timeouts allow."""

    def __init__(self, connection: http.client.HTTPConnection, deadline: float):
        self.connection = connection
        self.fired = False
        self.timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.fire)
        self.timer.daemon = True
        self.timer.start()

    def fire(self) -> None:
        self.fired = True
        sock = self.connection.sock
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the OS socket, also under TLS
            except OSError:
                pass

    def cancel(self) -> None:
        self.timer.cancel()


class _Watchdogs:
    """Every connection in flight, so that a stopped run ends them all at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: set[_Watchdog] = set()
        self.stopped = False

    def add(self, dog: _Watchdog) -> None:
        with self.lock:
            self.active.add(dog)
            stopped = self.stopped
        if stopped:
            dog.fire()

    def remove(self, dog: _Watchdog) -> None:
        with self.lock:
            self.active.discard(dog)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            dogs = list(self.active)
        for dog in dogs:
            dog.fire()


def _get(target: _Target, path: str, headers: dict[str, str], deadline: float, read_body: bool, max_body: int,
         dogs: _Watchdogs) -> _Answer:
    """GET base+path; the answer, or _Wait/_Wrong. Never past `deadline`, never more than `max_body` bytes."""
    per_operation = max(0.05, min(MAX_REQUEST_SECONDS, deadline - time.monotonic()))
    if target.https:
        connection = http.client.HTTPSConnection(target.host, target.port, timeout=per_operation,
                                                 context=target.context)
    else:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=per_operation)
    dog = _Watchdog(connection, deadline)
    dogs.add(dog)
    try:
        connection.connect()
        if dog.fired:
            raise TimeoutError("deadline")
        connection.request("GET", target.prefix + path, headers={
            "User-Agent": USER_AGENT, "Accept": "application/json, */*", "Accept-Encoding": "gzip, deflate",
            "Connection": "close", **headers})
        response = connection.getresponse()
        body = _read_body(response, max_body) if read_body else b""
        if dog.fired:  # the socket was shut at the deadline: what was read so far may look complete, it is not
            raise TimeoutError("deadline")
        return _Answer(response.status, response.reason or "", response.headers, body)
    except Exception as error:  # the socket, TLS, or a malformed answer; or the deadline cut it short
        if dog.fired or time.monotonic() >= deadline:  # the watchdog, or a socket timeout a hair before it
            raise _Late("no complete answer in time (the server is slow, or sends its answer a little at a "
                        "time)") from None
        if isinstance(error, (_Wait, _Wrong)):
            raise
        raise _classify(error, target) from None
    finally:
        dog.cancel()
        dogs.remove(dog)
        connection.close()


def _classify(error: Exception, target: _Target) -> Exception:
    """A connection error as _Wait (may pass) or _Wrong (definite), in a few words."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return _Wrong(f"TLS failed (certificate verify failed: {printable(error.verify_message or str(error))}); "
                      "--insecure skips verification")
    if isinstance(error, ssl.SSLError):
        return _Wrong(f"TLS failed ({printable(error.reason or str(error))}); is the URL's scheme right?")
    if isinstance(error, ConnectionRefusedError):
        return _Wait("Connection refused")
    if isinstance(error, (socket.timeout, TimeoutError)):
        return _Wait("timed out")
    if isinstance(error, socket.gaierror):
        return _Wait(f"cannot resolve {printable(target.host)} ({printable(error.strerror or str(error))})")
    if isinstance(error, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        return _Wait("the connection closed before a complete answer")
    if isinstance(error, http.client.IncompleteRead):
        return _Wait(f"the answer was cut short ({len(error.partial)} bytes of the body)")
    if isinstance(error, http.client.HTTPException):  # a bad status line, a header line too long, too many
        return _Wrong(f"not a valid HTTP answer ({type(error).__name__}: {printable(str(error), 60)})")
    if isinstance(error, OSError):
        return _Wait(printable(error.strerror or str(error) or type(error).__name__))
    return _Wrong(f"unexpected {type(error).__name__}: {printable(str(error), 60)}")


def _read_body(response: http.client.HTTPResponse, cap: int) -> bytes:
    """The body, decompressed, at most `cap` bytes of it both before and after decompression."""
    if response.length is not None and response.length > cap:
        raise _Wrong(f"the body is {response.length} bytes, over the {cap}-byte cap (--max-body)")
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
        raise _Wrong(f"Content-Encoding {printable(encoding, 40)} is not supported (the request asks for gzip "
                     "or deflate)")
    decompressor = None if encoding == "identity" else zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib
    received, body = 0, bytearray()
    while True:
        chunk = response.read1(65536)
        if not chunk:
            if response.length:  # the connection closed before the Content-Length it announced
                raise _Wait(f"the answer was cut short ({received} of {received + response.length} bytes of the "
                            "body)")
            return bytes(body)
        received += len(chunk)
        if received > cap:
            raise _Wrong(f"the body is over the {cap}-byte cap (--max-body)")
        if decompressor is None:
            body += chunk
            continue
        room = cap + 1 - len(body)
        try:
            body += decompressor.decompress(chunk, room)  # never more than the cap: a bomb stops here
        except zlib.error:
            raise _Wrong(f"the {encoding} body cannot be decompressed") from None
        if len(body) > cap:
            raise _Wrong(f"the body is over the {cap}-byte cap (--max-body) once decompressed ({encoding}, "
                         f"{received} bytes sent)")


# --- the checks -------------------------------------------------------------------------------------

def run_checks(url: str, paths: Sequence[str] = (), cookie: Optional[Cookie] = None,
               expect_color: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, settle: float = 0.0,
               verify: bool = True, *, consecutive: int = DEFAULT_CONSECUTIVE, max_body: int = DEFAULT_MAX_BODY,
               run_timeout: Optional[float] = None) -> list[CheckResult]:
    """Run GET /ready and a 2xx check of each path, concurrently; one result each, in that order.

    `settle`: for this many seconds an answer from the wrong color is counted and waited on rather
    than failed, the time Istio takes to push a routing change that was just applied to the gateway;
    after it, a check passes on `consecutive` right answers in a row and fails on any wrong one.
    Each check ends by settle + timeout, the whole run by `run_timeout` (default settle + timeout +
    5 s). A signal (Interrupted) raises ChecksInterrupted with every check's result so far.
    """
    target = _Target.of(url, verify)
    checks = [READY_PATH, *paths]
    start = time.monotonic()
    run_deadline = start + (settle + timeout + RUN_MARGIN if run_timeout is None else run_timeout)
    stop, dogs = threading.Event(), _Watchdogs()
    slots: list[Optional[CheckResult]] = [None] * len(checks)

    def work(index: int, path: str) -> None:
        try:
            slots[index] = _run_check(target, path, index == 0, cookie, expect_color, timeout, settle,
                                      consecutive, max_body, run_deadline, stop, dogs)
        except Exception as error:  # a bug in a check must still give a result
            slots[index] = CheckResult(f"GET {path}", False, time.monotonic() - start,
                                       f"unexpected {type(error).__name__}: {printable(str(error), 80)}")

    threads = [threading.Thread(target=work, args=(i, path), name=f"check {path}", daemon=True)
               for i, path in enumerate(checks)]

    def unfinished(why: str) -> list[CheckResult]:
        finished = list(slots)  # before stopping the others, whose last answers the stop itself cuts short
        stop.set()
        dogs.stop()
        return [slot or CheckResult(f"GET {path}", False, time.monotonic() - start, why)
                for slot, path in zip(finished, checks)]

    try:  # a signal raises here (Interrupted), in the main thread
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, run_deadline - time.monotonic()))
    except (Failure, KeyboardInterrupt) as error:
        message = str(error) or "interrupted"
        raise ChecksInterrupted(message, unfinished(f"stopped: {message}")) from None
    return unfinished(f"did not finish by the run's deadline ({run_deadline - start:g}s)")


def _run_check(target: _Target, path: str, ready_check: bool, cookie: Optional[Cookie],
               expect_color: Optional[str], timeout: float, settle: float, consecutive: int, max_body: int,
               run_deadline: float, stop: threading.Event, dogs: _Watchdogs) -> CheckResult:
    headers = {"Cookie": str(cookie)} if cookie else {}
    start = time.monotonic()
    settled = start + settle
    deadline = min(settled + timeout, run_deadline)
    backoff = FIRST_BACKOFF
    last, streak, wrong, answers = "no answer", 0, 0, 0

    def result(passed: bool, detail: str) -> CheckResult:
        if wrong:
            detail += f"; {wrong} wrong-color answer{'s' if wrong > 1 else ''} in all"
        if cookie and len(cookie.value) >= SECRET_MIN_LENGTH:  # a server may echo it (a Location): never shown
            detail = detail.replace(cookie.value, "[secret]")
        return CheckResult(f"GET {path}", passed, time.monotonic() - start, redact(detail), wrong, answers)

    while True:
        if stop.is_set():
            return result(False, f"stopped; last: {last}")
        asked = time.monotonic()
        pause, growing = backoff, True  # not ready, or the wrong color while settling: back off
        try:
            answer = _get(target, path, headers, deadline, ready_check, max_body, dogs)
            answers += 1
            seen = _judge(answer, ready_check, expect_color)
        except _WrongColor as wrong_color:
            wrong += 1
            streak = 0
            if asked >= settled:
                after = f" (after the {settle:g}s settle)" if settle else ""
                return result(False, f"{wrong_color}{after}")
            last = str(wrong_color)
        except _Wrong as definite:
            return result(False, str(definite))
        except _Wait as wait:
            streak = 0
            if not (isinstance(wait, _Late) and last != "no answer"):  # cut off at the deadline: keep what came before
                last = str(wait)
        else:
            last, growing = seen, False
            if asked >= settled:  # only answers to requests sent after the settle time count
                streak += 1
                if streak >= consecutive:
                    return result(True, f"{seen}, {streak} in a row" if consecutive > 1 else seen)
                pause = CONFIRM_INTERVAL
            else:  # right, but the route may still be settling: ask again when it is over
                pause = min(backoff, max(settled - time.monotonic(), 0.0))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if streak:
                return result(False, f"only {streak} of {consecutive} right answers in a row when the "
                                     f"{_limit(timeout, settle)} ran out; last: {last}")
            return result(False, f"not ready when the {_limit(timeout, settle)} ran out; last: {last}")
        stop.wait(min(pause, remaining))
        if growing:
            backoff = min(backoff * 2, MAX_BACKOFF)


def _limit(timeout: float, settle: float) -> str:
    return f"{timeout:g}s timeout" + (f" (after the {settle:g}s settle)" if settle else "")


def _judge(answer: _Answer, ready_check: bool, expect_color: Optional[str]) -> str:
    """What a passing answer showed; raises _Wait or _Wrong (or _WrongColor) otherwise."""
    status = f"{answer.status} {printable(answer.reason, 60)}".strip()
    raw_color = answer.headers.get(COLOR_HEADER)
    color = printable(raw_color, 40) if raw_color is not None else None
    by = f"answered by {color}" if color else f"no {COLOR_HEADER} header"
    if expect_color and raw_color and raw_color != expect_color:
        raise _WrongColor(f"{status}, {by}, expected {expect_color}")
    if answer.status in WAIT_STATUSES:
        raise _Wait(f"{status} ({by})")
    if expect_color and not raw_color:
        raise _WrongColor(f"{status}, {by}, expected {expect_color}: the answer did not come through the "
                          "bluegreen routes")
    if 300 <= answer.status < 400:
        location = printable(answer.headers.get("Location", "?"), 100)
        raise _Wrong(f"{status}, redirected to {location} (not followed): give that URL as --url")
    if not 200 <= answer.status < 300:
        raise _Wrong(f"{status} ({by}), expected 2xx")
    if ready_check:
        ready = _ready_field(answer, status)
        if ready is False:
            raise _Wait(f'{status}, "ready": false ({by})')
        if ready is not True:
            raise _Wrong(f'{status}, "ready" is {printable(json.dumps(ready), 40)}, expected {{"ready": true}} ({by})')
    return f"{status}, {by}"


def _ready_field(answer: _Answer, status: str) -> object:
    kind = printable(answer.headers.get("Content-Type", "no content type"), 60)
    body = parse_json(answer.body, lambda why: _Wrong(
        f'{status}, but the body is {why} ({kind}, {len(answer.body)} bytes), expected {{"ready": true}}'))
    if not isinstance(body, dict) or "ready" not in body:
        raise _Wrong(f'{status}, but the JSON has no "ready" field, expected {{"ready": true}}')
    return body["ready"]


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def parse_json(data: bytes, fail) -> object:
    """JSON with bounded nesting: deeply nested input fails with fail(why), never with RecursionError.
    The text is not quoted in `why`: it may echo what the request carried."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise fail("not JSON (not UTF-8)") from None
    depth = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise fail(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise fail("not JSON") from None


# --- reports ----------------------------------------------------------------------------------------

def result_lines(results: Sequence[CheckResult]) -> list[str]:
    return [result_line(r.passed, r.name, r.seconds, r.detail) for r in results]


def failures(results: Sequence[CheckResult]) -> str:
    """The failed checks in one line, for an error message."""
    return "; ".join(f"{r.name}: {r.detail}" for r in results if not r.passed)


def write_junit(path: Path, suites: Sequence[tuple[str, Sequence[CheckResult]]]) -> None:
    """A JUnit XML report, one testsuite per run of the checks, for CI to show."""
    root = ET.Element("testsuites")
    for suite_name, results in suites:
        suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(results)),
                              failures=str(sum(not r.passed for r in results)), errors="0",
                              time=f"{max((r.seconds for r in results), default=0):.3f}")
        for result in results:
            case = ET.SubElement(suite, "testcase", classname=suite_name, name=result.name,
                                 time=f"{result.seconds:.3f}")
            properties = ET.SubElement(case, "properties")
            for name, value in (("answers", result.answers), ("wrongColorAnswers", result.wrong_colors)):
                ET.SubElement(properties, "property", name=name, value=str(value))
            if not result.passed:
                ET.SubElement(case, "failure", message=redact(result.detail)).text = redact(result.detail)
            else:
                ET.SubElement(case, "system-out").text = redact(result.detail)
    try:
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as error:
        raise Failure(f"cannot write the JUnit report {path}: {error.strerror or error}") from None


# --- command line -----------------------------------------------------------------------------------

def url_arg(text: str) -> str:
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL, e.g. http://203.0.113.10:80")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r}: give the gateway's base URL, without ?query or #fragment")
    return text


def cookie_arg(text: str) -> Cookie:
    try:
        return parse_cookie(text, SettingsError)  # the message names the problem, never the value
    except SettingsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def count_arg(low: int, high: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} from {low} to {high}")
        return value
    return parse


def path_arg(text: str) -> str:
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} must be a URL path starting with '/', e.g. /api/health")
    return text


def add_gateway_arguments(parser: argparse.ArgumentParser, timeout: float, settle: float) -> None:
    """The options that say where and how to check the app; release.py's promote takes them too."""
    parser.add_argument("--url", type=url_arg, default=os.environ.get("BLUEGREEN_URL"),
                        help="the Istio ingress gateway's base URL (default: $BLUEGREEN_URL)")
    parser.add_argument("--timeout", type=seconds_arg, default=timeout, metavar="SECONDS",
                        help=f"how long each check waits, after the settle time, for the app to be ready and "
                             f"answer right (default {timeout:g})")
    parser.add_argument("--settle", type=seconds_arg, default=settle, metavar="SECONDS",
                        help="how long an answer from the wrong color is counted and waited on, the time a routing "
                             f"change takes to reach the gateway, before it fails (default {settle:g})")
    parser.add_argument("--consecutive", type=count_arg(1, 100, "a number of answers"), default=DEFAULT_CONSECUTIVE,
                        metavar="N", help="right answers in a row, after the settle time, for a check to pass "
                                          f"(default {DEFAULT_CONSECUTIVE})")
    parser.add_argument("--run-timeout", type=seconds_arg, metavar="SECONDS",
                        help="wall-clock limit of a whole run of the checks (default: settle + timeout + 5)")
    parser.add_argument("--max-body", type=count_arg(64, 1 << 30, "a number of bytes"), default=DEFAULT_MAX_BODY,
                        metavar="BYTES", help=f"the most of a body read, after decompression (default "
                                              f"{DEFAULT_MAX_BODY})")
    parser.add_argument("--check", type=path_arg, action="append", default=[], metavar="PATH",
                        help="another path that must answer 2xx (repeatable)")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report here")
    parser.add_argument("--insecure", action="store_true", help="do not verify the gateway's TLS certificate")


def require_url(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.url:
        parser.error("the gateway URL is required: --url URL or the environment variable BLUEGREEN_URL")


def check_options(args: argparse.Namespace) -> dict:
    """run_checks' keyword options from the command line."""
    return {"consecutive": args.consecutive, "max_body": args.max_body, "run_timeout": args.run_timeout}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="smoke_test.py", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 every check passed, 1 a check failed (or the gateway was unreachable), 2 bad usage.")
    add_gateway_arguments(parser, timeout=DEFAULT_TIMEOUT, settle=0.0)
    parser.add_argument("--cookie", type=cookie_arg, metavar="NAME=VALUE",
                        help="a cookie sent with every request, e.g. the test cookie (its value is never printed)")
    parser.add_argument("--expect-color", choices=COLORS,
                        help=f"every answer must carry {COLOR_HEADER}: COLOR")
    args = parser.parse_args(argv)
    require_url(parser, args)
    return args


def _say(text: str) -> None:
    print(redact(text), flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.cookie:
        add_secret(args.cookie.value)
    cookie = f", cookie {args.cookie.name}=[secret]" if args.cookie else ""
    expecting = f", expecting {args.expect_color}" if args.expect_color else ""
    unverified = ", TLS not verified (--insecure)" if args.insecure else ""
    settle = f", settle {args.settle:g}s" if args.settle else ""
    _say(f"smoke test {args.url}{cookie}{expecting}{unverified}, timeout {args.timeout:g}s{settle}, "
         f"{args.consecutive} in a row")
    start = time.monotonic()
    stopped: Optional[Exception] = None
    try:
        results = run_checks(args.url, args.check, args.cookie, args.expect_color, args.timeout, args.settle,
                             verify=not args.insecure, **check_options(args))
    except ChecksInterrupted as interrupted:
        results, stopped = interrupted.results, interrupted
    except Exception as error:  # a bug: the report still says the run failed
        results, stopped = [CheckResult("smoke test run", False, time.monotonic() - start,
                                        f"unexpected {type(error).__name__}: {printable(str(error), 80)}")], error
    with SIGNALS.cleaning():  # the report is written whatever happened, even on a second signal
        _say("\n".join(result_lines(results)))
        passed = sum(r.passed for r in results)
        _say(f"{passed} of {len(results)} checks passed in {time.monotonic() - start:.2f}s")
        if args.junit:
            write_junit(args.junit, [("smoke", results)])
    if stopped is not None:
        raise stopped
    return EXIT_OK if passed == len(results) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(run_main(main))
