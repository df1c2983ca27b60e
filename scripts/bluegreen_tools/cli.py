"""What the command-line scripts share: exit codes, one-line progress, secrets kept out of every line,
text from outside made safe to print, SIGINT/SIGTERM handling, and a main that never shows a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

EXIT_OK = 0
EXIT_FAILED = 1  # a check failed, a refusal, a pulumi command failed; bad usage exits 2 (argparse)
SECRET_MIN_LENGTH = 8  # a shorter value is no secret worth the name, and hiding it would garble messages


class Failure(Exception):
    """An expected failure: its message is one line for a person, and the script exits 1."""


class Interrupted(Failure):
    """SIGINT or SIGTERM asked the script to stop: it cleans up, then exits 1."""

    def __init__(self, signum: int, detail: str = ""):
        self.signum = signum
        super().__init__(f"interrupted by {signal_name(signum)}" + (f" {detail}" if detail else ""))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# --- text: secrets out, control characters escaped ------------------------------------------------

_SECRETS: set[str] = set()


def add_secret(value: Optional[str]) -> None:
    """From now on `value` is shown as [secret] in every line these scripts print."""
    if value and len(value) >= SECRET_MIN_LENGTH:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "[secret]")
    return text


def printable(text: str, limit: int = 120) -> str:
    """Text from outside (a server, a CLI, a stack output), safe to print on a terminal or in a log:
    control and format characters escaped (\\x1b, \\n, \\u202e), cut to `limit` characters."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")


def log(text: str) -> None:
    """Progress and diagnostics go to stderr, so stdout holds only a command's result (a table, JSON)."""
    print(redact(text), file=sys.stderr, flush=True)


def result_line(passed: Optional[bool], title: str, seconds: float, detail: str = "") -> str:
    """One line for a check or a step: PASS/FAIL (or ok/FAIL for a step), what, how long, and why."""
    status = {True: "PASS", False: "FAIL", None: "ok"}[passed]
    return f"{status:<4} {title} ({seconds:.2f}s)" + (f": {detail}" if detail else "")


@contextmanager
def step(title: str) -> Iterator[None]:
    """A step of a longer flow: one progress line when it ends, with how long it took."""
    start = time.monotonic()
    try:
        yield
    except BaseException:
        log(result_line(False, title, time.monotonic() - start))
        raise
    log(result_line(None, title, time.monotonic() - start))


# --- signals ------------------------------------------------------------------------------------------

class Signals:
    """SIGINT and SIGTERM while a script runs (run_main installs the handler).

    The first signal raises Interrupted where the script is, so it cleans up on its way out; while a
    child process runs (a `pulumi` command) it is forwarded to the child as SIGINT instead (the Pulumi
    CLI's graceful cancel), and the script raises Interrupted once the child has stopped. A signal
    during the clean-up, or a second signal, does not raise: it sets `abandon`, and the clean-up
    starts no further command (a person finishes by hand, with the commands printed).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.received: list[int] = []
        self.child: Optional[subprocess.Popen] = None
        self.forwarded_at: Optional[float] = None  # when the child was sent SIGINT
        self.deferred = 0  # > 0: a child is being started or waited for; never raise
        self.quiet = 0  # > 0: cleaning up; a signal stops the clean-up instead of raising
        self.abandon = False

    def handle(self, signum: int, frame) -> None:
        self.received.append(signum)
        self.forward()
        if len(self.received) > 1 or self.quiet:
            self.abandon = True
        elif not self.deferred:
            raise Interrupted(signum)

    def forward(self) -> None:
        """Send the running child SIGINT, once (Popen.send_signal: not to a process already reaped)."""
        child = self.child
        if child is not None and self.forwarded_at is None:
            self.forwarded_at = time.monotonic()
            try:
                child.send_signal(signal.SIGINT)
            except OSError:
                pass

    @property
    def first(self) -> Optional[int]:
        return self.received[0] if self.received else None

    @contextmanager
    def cleaning(self) -> Iterator[None]:
        """Clean-up code: a signal in here abandons the clean-up rather than interrupting it half-way."""
        self.quiet += 1
        try:
            yield
        finally:
            self.quiet -= 1


SIGNALS = Signals()


@contextmanager
def handling_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    SIGNALS.reset()
    previous = {signum: signal.signal(signum, SIGNALS.handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_main(main: Callable[[], int]) -> int:
    """Run a script's main: a Failure or an unexpected error is one line on stderr and exit 1."""
    with handling_signals():
        try:
            return main()
        except Failure as failure:
            SIGNALS.quiet += 1
            log(f"error: {failure}")
        except KeyboardInterrupt:
            SIGNALS.quiet += 1
            log("error: interrupted")
        except Exception as error:  # a bug must still not print a traceback at a platform team
            SIGNALS.quiet += 1
            log(f"error: unexpected {type(error).__name__}: {printable(str(error), 300)}")
    return EXIT_FAILED
