"""Bounded test load for the analysis before the flip (`promote --test-load RPS --test-load-duration DURATION`).

GETs through the gateway with the test cookie, so that the color under test has traffic of its own in the
window Prometheus measures, as Flagger's load tester gives a canary. Bounded on every side: at most `rps` requests
a second (paced, never bursting to catch up), for `duration` seconds, each one ended at its timeout by the smoke
client's watchdog (which shuts the socket whatever the server does), at most MAX_IN_FLIGHT at once (a request
that would exceed it is skipped and counted, never queued). `stop` ends it at once; no thread outlives `wait`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from components.domain import Cookie
from ..smoke.client import Target, Watchdog, get

MAX_RPS = 1000
MAX_DURATION_SECONDS = 3600.0
MAX_IN_FLIGHT = 64
MAX_BODY = 64 * 1024  # the answers are read (a connection is then reusable) but not kept
DEFAULT_TIMEOUT = 5.0


def rate_problem(rps: float) -> Optional[str]:
    """Why --test-load RPS would not do, or None."""
    if not 0 < rps <= MAX_RPS:
        return f"--test-load {rps:g}: it must be a number of requests a second above 0 and at most {MAX_RPS}"
    return None


def duration_problem(seconds: float) -> Optional[str]:
    """Why --test-load-duration would not do, or None."""
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        return (f"--test-load-duration {seconds:g}s: it must be above 0s and at most {MAX_DURATION_SECONDS:g}s; the "
                f"load should fill the analysis interval, e.g. --test-load-duration 30s")
    return None


def load_problem(rps: float, duration: float) -> Optional[str]:
    """Why --test-load / --test-load-duration would not do, or None."""
    return rate_problem(rps) or duration_problem(duration)


@dataclass
class LoadReport:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)  # HTTP status -> answers
    failed: int = 0  # no answer: refused, reset, or not by the timeout
    skipped: int = 0  # not sent: MAX_IN_FLIGHT requests were still waiting
    seconds: float = 0.0

    def describe(self) -> str:
        shown = ", ".join(f"{count} x {status}" for status, count in sorted(self.statuses.items())) or "no answers"
        return (f"{self.sent} requests in {self.seconds:.1f}s ({shown}; {self.failed} without an answer, "
                f"{self.skipped} skipped)")

    def line(self) -> str:
        return f"test load: {self.describe()}"


class RunningLoad:
    """The load, running in the background from `start()` until its duration ends or `stop()`."""

    def __init__(self, url: str, paths: Sequence[str], cookie: Union[Cookie, str, None], rps: float, duration: float, *,
                 timeout: float = DEFAULT_TIMEOUT, verify: bool = True, stop: Optional[threading.Event] = None):
        problem = load_problem(rps, duration)
        if problem:
            raise ValueError(problem)
        self.target, self.paths = Target.of(url, verify), list(paths) or ["/"]
        self.headers = {"Cookie": str(cookie)} if cookie else {}
        self.rps, self.duration, self.timeout = rps, duration, timeout
        self.stopping = stop or threading.Event()
        self.report = LoadReport()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._requests: set[threading.Thread] = set()
        self._dogs: set[Watchdog] = set()
        self._pacer = threading.Thread(target=self._paced, name="test-load", daemon=True)
        self._broke: Optional[Exception] = None  # what stopped the pacer, raised by wait(): never a silent no-load

    def start(self) -> "RunningLoad":
        self._pacer.start()
        return self

    def stop(self) -> None:
        """End the load now: no new request, and every request in flight cut."""
        self.stopping.set()
        with self._lock:
            dogs = list(self._dogs)
        for dog in dogs:
            dog.fire()

    def wait(self, timeout: Optional[float] = None) -> LoadReport:
        """Wait for the end (the duration, or a stop), then for every request (each ends by its timeout)."""
        self._pacer.join(timeout)
        with self._lock:
            requests = list(self._requests)
        for request in requests:
            request.join(self.timeout + 1.0)
        if self._broke is not None:
            raise self._broke
        return self.report

    def _paced(self) -> None:
        try:
            self._pace()
        except Exception as error:  # noqa: BLE001 - handed to wait(), in the caller's thread
            self._broke = error

    def _pace(self) -> None:
        start = time.monotonic()
        total = int(self.rps * self.duration)
        for number in range(total):
            due = start + number / self.rps
            if self.stopping.wait(max(0.0, due - time.monotonic())):
                break
            if not self._slots.acquire(blocking=False):
                with self._lock:
                    self.report.skipped += 1
                continue
            request = threading.Thread(target=self._one, args=(self.paths[number % len(self.paths)],),
                                       name="test-load request", daemon=True)
            with self._lock:  # only ended threads are dropped: wait() joins every one still running
                self._requests = {thread for thread in self._requests if thread.is_alive()} | {request}
                self.report.sent += 1
            request.start()
        # The duration's end, not the last request's start: the load covers the whole window.
        self.stopping.wait(max(0.0, start + self.duration - time.monotonic()))
        self.report.seconds = time.monotonic() - start

    def _one(self, path: str) -> None:
        dog = Watchdog(time.monotonic() + self.timeout)
        with self._lock:
            self._dogs.add(dog)
        try:
            with self.target.pool(dog) as pool:  # one connection a request, closed with it
                answer = get(pool, self.target, path, self.headers, time.monotonic() + self.timeout, True,
                             MAX_BODY, dog)
            outcome: Optional[int] = answer.status
        except Exception:  # noqa: BLE001 - a request without an answer is counted, whatever went wrong
            outcome = None
        finally:
            dog.cancel()
            self._slots.release()
        with self._lock:
            self._dogs.discard(dog)
            if outcome is None:
                self.report.failed += 1
            else:
                self.report.statuses[outcome] += 1


def drive_load(url: str, paths: Sequence[str], cookie: Union[Cookie, str, None], rps: float, duration: float, *,
               timeout: float = DEFAULT_TIMEOUT, verify: bool = True,
               stop: Optional[threading.Event] = None) -> LoadReport:
    """The load from start to end, in the calling thread's time (it returns when the duration is over)."""
    running = RunningLoad(url, paths, cookie, rps, duration, timeout=timeout, verify=verify, stop=stop).start()
    try:
        return running.wait()
    finally:
        running.stop()
        running.wait()


drive = drive_load  # the name release/analysis_steps.py calls it by
