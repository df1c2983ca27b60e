#!/usr/bin/env python3
"""Smoke tests through the real Istio ingress gateway.

    python scripts/smoke_test.py --url URL [--cookie NAME=VALUE] [--expect-color COLOR]
                                 [--timeout SECONDS] [--check PATH ...] [--junit FILE]

The built-in check is the tutorial's: GET /ready answers 200 with JSON {"ready": true}. Each
--check PATH must answer 2xx. Checks run concurrently; each waits for readiness (connection
refused, 502/503/504, "ready": false) with bounded back-off until the timeout runs out, while a
definite wrong answer fails at once. With --expect-color every answer must carry
x-bluegreen-color: COLOR, which the VirtualService sets. Exit 0: all passed; 1: a check failed;
2: bad usage. release.py calls `run_checks` in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlsplit

if not __package__:  # run as a file: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402
import urllib3  # noqa: E402

from components.routes import COLOR_HEADER  # noqa: E402
from components.settings import COLORS, Cookie, SettingsError, parse_cookie  # noqa: E402
from scripts._cli import EXIT_FAILED, EXIT_OK, Failure, result_line, run_main  # noqa: E402

READY_PATH = "/ready"
WAIT_STATUSES = frozenset({502, 503, 504})  # the gateway has no ready upstream (yet)
FIRST_BACKOFF = 0.1  # seconds between tries, doubling up to MAX_BACKOFF
MAX_BACKOFF = 2.0
MAX_REQUEST_SECONDS = 10.0
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class CheckResult:
    name: str  # e.g. "GET /ready"
    passed: bool
    seconds: float
    detail: str  # what was seen; never a cookie value


class _Wait(Exception):
    """Not ready yet: try again until the timeout runs out."""


class _Wrong(Exception):
    """A definite wrong answer: fail now."""


class _WrongColor(_Wrong):
    """Answered by another color, or not through our routes: definite once the route has settled."""


# --- the checks -------------------------------------------------------------------------------

def run_checks(url: str, paths: Sequence[str] = (), cookie: Optional[Cookie] = None,
               expect_color: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, settle: float = 0.0,
               verify: bool = True) -> list[CheckResult]:
    """Run GET /ready and a 2xx check of each path, concurrently; one result each, in that order.

    `settle`: for this many seconds an answer from the wrong color is waited on rather than failed,
    the time Istio takes to push a routing change that was just applied to the gateway.
    """
    base = url.rstrip("/")
    if not verify:  # asked for explicitly: a warning on every request would bury the results
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    checks = [READY_PATH, *paths]
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = [pool.submit(_run_check, base, path, index == 0, cookie, expect_color, timeout, settle, verify)
                   for index, path in enumerate(checks)]
        return [future.result() for future in futures]


def _run_check(base: str, path: str, ready_check: bool, cookie: Optional[Cookie], expect_color: Optional[str],
               timeout: float, settle: float, verify: bool) -> CheckResult:
    headers = {"Cookie": str(cookie)} if cookie else {}
    start = time.monotonic()
    deadline, settled = start + timeout, start + settle
    backoff = FIRST_BACKOFF
    last = "no answer"

    def result(passed: bool, detail: str) -> CheckResult:
        return CheckResult(f"GET {path}", passed, time.monotonic() - start, detail)

    with requests.Session() as session:
        while True:
            try:
                answer = session.get(base + path, headers=headers, verify=verify, allow_redirects=False,
                                     timeout=min(MAX_REQUEST_SECONDS, max(deadline - time.monotonic(), 0.5)))
                return result(True, _judge(answer, ready_check, expect_color))
            except requests.exceptions.SSLError as error:
                return result(False, f"TLS failed ({_reason(error)}); --insecure skips verification")
            except _WrongColor as wrong:
                if time.monotonic() >= settled:
                    return result(False, str(wrong))
                last = str(wrong)
            except _Wrong as wrong:
                return result(False, str(wrong))
            except _Wait as wait:
                last = str(wait)
            except requests.exceptions.RequestException as error:
                last = _reason(error)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return result(False, f"not ready when the {timeout:g}s timeout ran out; last: {last}")
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, MAX_BACKOFF)


def _judge(answer: requests.Response, ready_check: bool, expect_color: Optional[str]) -> str:
    """What a passing answer showed; raises _Wait or _Wrong (or _WrongColor) otherwise."""
    status = f"{answer.status_code} {answer.reason or ''}".strip()
    color = answer.headers.get(COLOR_HEADER)
    by = f"answered by {color}" if color else f"no {COLOR_HEADER} header"
    if expect_color and color and color != expect_color:
        raise _WrongColor(f"{status}, {by}, expected {expect_color}")
    if answer.status_code in WAIT_STATUSES:
        raise _Wait(f"{status} ({by})")
    if expect_color and not color:
        raise _WrongColor(f"{status}, {by}, expected {expect_color}: the answer did not come through the "
                          "bluegreen routes")
    if 300 <= answer.status_code < 400:
        raise _Wrong(f"{status}, redirected to {answer.headers.get('Location', '?')}: give that URL as --url")
    if not 200 <= answer.status_code < 300:
        raise _Wrong(f"{status} ({by}), expected 2xx")
    if ready_check:
        ready = _ready_field(answer, status)
        if ready is False:
            raise _Wait(f'{status}, "ready": false ({by})')
        if ready is not True:
            raise _Wrong(f'{status}, "ready" is {json.dumps(ready)[:40]}, expected {{"ready": true}} ({by})')
    return f"{status}, {by}"


def _ready_field(answer: requests.Response, status: str) -> object:
    kind = answer.headers.get("Content-Type", "no content type")
    try:
        body = answer.json()
    except ValueError:  # the body is not quoted: it may echo what the request carried
        raise _Wrong(f'{status}, but the body is not JSON ({kind}, {len(answer.content)} bytes), '
                     f'expected {{"ready": true}}') from None
    if not isinstance(body, dict) or "ready" not in body:
        raise _Wrong(f'{status}, but the JSON has no "ready" field, expected {{"ready": true}}')
    return body["ready"]


def _reason(error: Exception) -> str:
    """The cause of a requests error in a few words: 'Connection refused', 'timed out', ..."""
    text = str(error)
    if isinstance(error, requests.exceptions.Timeout):
        return "timed out"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or re.search(r"\[SSL: [A-Z_]+\] ([^'\")(]+)", text)
    return found.group(1).strip() if found else type(error).__name__


# --- reports ----------------------------------------------------------------------------------

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
            if not result.passed:
                ET.SubElement(case, "failure", message=result.detail).text = result.detail
    try:
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as error:
        raise Failure(f"cannot write the JUnit report {path}: {error.strerror or error}") from None


# --- command line -----------------------------------------------------------------------------

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


def path_arg(text: str) -> str:
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} must be a URL path starting with '/', e.g. /api/health")
    return text


def add_gateway_arguments(parser: argparse.ArgumentParser, timeout: float, settle: float) -> None:
    """The options that say where and how to check the app; release.py's promote takes them too."""
    parser.add_argument("--url", type=url_arg, default=os.environ.get("BLUEGREEN_URL"),
                        help="the Istio ingress gateway's base URL (default: $BLUEGREEN_URL)")
    parser.add_argument("--timeout", type=seconds_arg, default=timeout, metavar="SECONDS",
                        help=f"how long each check waits for the app to be ready (default {timeout:g})")
    parser.add_argument("--settle", type=seconds_arg, default=settle, metavar="SECONDS",
                        help="how long an answer from the wrong color is waited on, the time a routing change "
                             f"takes to reach the gateway, before it fails (default {settle:g})")
    parser.add_argument("--check", type=path_arg, action="append", default=[], metavar="PATH",
                        help="another path that must answer 2xx (repeatable)")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report here")
    parser.add_argument("--insecure", action="store_true", help="do not verify the gateway's TLS certificate")


def require_url(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.url:
        parser.error("the gateway URL is required: --url URL or the environment variable BLUEGREEN_URL")


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    cookie = f", cookie {args.cookie.name}=[secret]" if args.cookie else ""
    expecting = f", expecting {args.expect_color}" if args.expect_color else ""
    unverified = ", TLS not verified (--insecure)" if args.insecure else ""
    print(f"smoke test {args.url}{cookie}{expecting}{unverified}, timeout {args.timeout:g}s", flush=True)
    start = time.monotonic()
    results = run_checks(args.url, args.check, args.cookie, args.expect_color, args.timeout, args.settle,
                         verify=not args.insecure)
    print("\n".join(result_lines(results)), flush=True)
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} checks passed in {time.monotonic() - start:.2f}s", flush=True)
    if args.junit:
        write_junit(args.junit, [("smoke", results)])
    return EXIT_OK if passed == len(results) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(run_main(main))
