"""The checks: GET /ready and each --check path, concurrently, each to a verdict by its deadline.

A check waits for readiness (connection refused, 502/503/504, "ready": false) with bounded back-off, then
passes on N right answers in a row once the settle time is over, while a definite wrong answer fails at
once. Each check's verdict comes by settle + timeout (its watchdog), the whole run's by its own deadline.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Optional, Sequence

from urllib3 import HTTPConnectionPool

from components.routes import COLOR_HEADER
from components.settings import Cookie

from ..cli import SECRET_MIN_LENGTH, Failure, printable, redact
from . import client
from .client import Answer, Late, Target, Wait, Watchdog, Wrong, WrongColor

READY_PATH = "/ready"
WAIT_STATUSES = frozenset({502, 503, 504})  # the gateway has no ready upstream (yet)
FIRST_BACKOFF = 0.1  # seconds between tries, doubling up to MAX_BACKOFF
MAX_BACKOFF = 2.0
CONFIRM_INTERVAL = 0.1  # seconds between right answers counted in a row
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONSECUTIVE = 3
DEFAULT_MAX_BODY = 1 << 20  # bytes, after decompression: a readiness answer is a few bytes
MAX_JSON_DEPTH = 32
RUN_MARGIN = 5.0  # the run's deadline, beyond the checks' own: room for threads to report


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
    target = Target.of(url, verify)
    checks = [READY_PATH, *paths]
    start = time.monotonic()
    run_deadline = start + (settle + timeout + RUN_MARGIN if run_timeout is None else run_timeout)
    deadline = min(start + settle + timeout, run_deadline)  # every check's, whatever its server does
    stop, dogs = threading.Event(), [Watchdog(deadline) for _ in checks]
    slots: list[Optional[CheckResult]] = [None] * len(checks)

    def work(index: int, path: str) -> None:
        try:
            with target.pool(dogs[index]) as pool:  # closed with the check: no connection outlives it
                slots[index] = _run_check(pool, target, path, index == 0, cookie, expect_color, timeout, settle,
                                          consecutive, max_body, start, deadline, stop, dogs[index])
        except Exception as error:  # a bug in a check must still give a result
            slots[index] = CheckResult(f"GET {path}", False, time.monotonic() - start,
                                       f"unexpected {type(error).__name__}: {printable(str(error), 80)}")

    threads = [threading.Thread(target=work, args=(i, path), name=f"check {path}", daemon=True)
               for i, path in enumerate(checks)]

    def unfinished(why: str) -> list[CheckResult]:
        finished = list(slots)  # before stopping the others, whose last answers the stop itself cuts short
        stop.set()
        for dog in dogs:  # ends every request in flight at once; a check that finished has its sockets closed
            dog.fire()
            dog.cancel()
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


def _run_check(pool: HTTPConnectionPool, target: Target, path: str, ready_check: bool, cookie: Optional[Cookie],
               expect_color: Optional[str], timeout: float, settle: float, consecutive: int, max_body: int,
               start: float, deadline: float, stop: threading.Event, dog: Watchdog) -> CheckResult:
    headers = {"Cookie": str(cookie)} if cookie else {}
    settled = start + settle
    backoff = FIRST_BACKOFF
    last, streak, wrong, answers = "no answer", 0, 0, 0

    def result(passed: bool, detail: str) -> CheckResult:
        if wrong:
            detail += f"; {wrong} wrong-color answer{'s' if wrong > 1 else ''} in all"
        if cookie and len(cookie.value) >= SECRET_MIN_LENGTH:  # a server may echo it (a Location): never shown
            detail = redact(detail, [cookie.value])
        return CheckResult(f"GET {path}", passed, time.monotonic() - start, detail, wrong, answers)

    while True:
        if stop.is_set():
            return result(False, f"stopped; last: {last}")
        asked = time.monotonic()
        pause, growing = backoff, True  # not ready, or the wrong color while settling: back off
        try:
            answer = client.get(pool, target, path, headers, deadline, ready_check, max_body, dog)
            answers += 1
            seen = judge(answer, ready_check, expect_color)
        except WrongColor as wrong_color:
            wrong += 1
            streak = 0
            if asked >= settled:
                after = f" (after the {settle:g}s settle)" if settle else ""
                return result(False, f"{wrong_color}{after}")
            last = str(wrong_color)
        except Wrong as definite:
            return result(False, str(definite))
        except Wait as wait:
            streak = 0
            if not (isinstance(wait, Late) and last != "no answer"):  # cut off at the deadline: keep what came before
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


def judge(answer: Answer, ready_check: bool, expect_color: Optional[str]) -> str:
    """What a passing answer showed; raises Wait or Wrong (or WrongColor) otherwise."""
    status = f"{answer.status} {printable(answer.reason, 60)}".strip()
    raw_color = answer.headers.get(COLOR_HEADER)
    color = printable(raw_color, 40) if raw_color is not None else None
    by = f"answered by {color}" if color else f"no {COLOR_HEADER} header"
    if expect_color and raw_color and raw_color != expect_color:
        raise WrongColor(f"{status}, {by}, expected {expect_color}")
    if answer.status in WAIT_STATUSES:
        raise Wait(f"{status} ({by})")
    if expect_color and not raw_color:
        raise WrongColor(f"{status}, {by}, expected {expect_color}: the answer did not come through the "
                          "bluegreen routes")
    if 300 <= answer.status < 400:
        location = printable(answer.headers.get("Location", "?"), 100)
        raise Wrong(f"{status}, redirected to {location} (not followed): give that URL as --url")
    if not 200 <= answer.status < 300:
        raise Wrong(f"{status} ({by}), expected 2xx")
    if ready_check:
        ready = _ready_field(answer, status)
        if ready is False:
            raise Wait(f'{status}, "ready": false ({by})')
        if ready is not True:
            raise Wrong(f'{status}, "ready" is {printable(json.dumps(ready), 40)}, expected {{"ready": true}} ({by})')
    return f"{status}, {by}"


def _ready_field(answer: Answer, status: str) -> object:
    kind = printable(answer.headers.get("Content-Type", "no content type"), 60)
    body = parse_json(answer.body, lambda why: Wrong(
        f'{status}, but the body is {why} ({kind}, {len(answer.body)} bytes), expected {{"ready": true}}'))
    if not isinstance(body, dict) or "ready" not in body:
        raise Wrong(f'{status}, but the JSON has no "ready" field, expected {{"ready": true}}')
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
