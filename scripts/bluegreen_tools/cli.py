"""What the command-line scripts share: the one error boundary (exit codes, secrets kept out of every line, a
one-line message, a bug's traceback kept in a log file), one-line progress, text from outside made safe to
print, and SIGINT/SIGTERM handling.

A script's run owns one `Session` (its signals and its secrets); `run_main(main, session)` is the boundary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from .secret_values import SECRET_PLACEHOLDER

# The one table of exit codes, for every script.
EXIT_OK = 0  # done; for plan.py, the plan is valid
EXIT_FAILED = 1  # a check failed, a refusal, a pulumi command failed, a signal stopped the run
EXIT_USAGE = 2  # bad usage (argparse exits 2 too)
EXIT_BUG = 3  # an internal error: a bug, its traceback in a log file
SECRET_MIN_LENGTH = 8  # a shorter value is no secret worth the name, and hiding it would garble messages


class Failure(Exception):
    """An expected failure: its message is one line for a person, and the script exits 1."""


class UsageError(Exception):
    """Bad usage found after argparse (a flag's value that cannot work): exit 2."""


class InternalError(Exception):
    """A bug that the script recognised and described (in itself or in the program): exit 3."""


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


# --- text: secrets out, control characters escaped, one line ---------------------------------------

def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Each of `secrets` in `text` as [secret]; the longest first, so that one inside another is hidden too."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, SECRET_PLACEHOLDER)
    return text


class Secrets:
    """The values a run must never print: every line the session prints has them replaced by [secret]."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: Optional[str]) -> None:
        if value and len(value) >= SECRET_MIN_LENGTH:
            self._values.add(value)

    def update(self, values: Iterable[str]) -> None:
        for value in values:
            self.add(value)

    def redact(self, text: str) -> str:
        return redact(text, self._values)


def printable(text: str, limit: int = 120) -> str:
    """Text from outside (a server, a CLI, a stack output), safe to print on a terminal or in a log:
    control and format characters escaped (\\x1b, \\n, \\u202e), cut to `limit` characters."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")


def one_line(text: str) -> str:
    """A message as one line: its own line breaks (a hostile value's, an exception's) become spaces."""
    return " ".join(text.split("\n")).replace("\r", " ")


def log(text: str) -> None:
    """Progress and diagnostics go to stderr, so stdout holds only a command's result (a table, JSON)."""
    print(text, file=sys.stderr, flush=True)


def result_line(passed: Optional[bool], title: str, seconds: float, detail: str = "") -> str:
    """One line for a check or a step: PASS/FAIL (or ok/FAIL for a step), what, how long, and why."""
    status = {True: "PASS", False: "FAIL", None: "ok"}[passed]
    return f"{status:<4} {title} ({seconds:.2f}s)" + (f": {detail}" if detail else "")


@contextmanager
def step(title: str, say: Callable[[str], None] = log) -> Iterator[None]:
    """A step of a longer flow: one progress line when it ends, with how long it took."""
    start = time.monotonic()
    try:
        yield
    except BaseException:
        say(result_line(False, title, time.monotonic() - start))
        raise
    say(result_line(None, title, time.monotonic() - start))


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
        self.received: list[int] = []
        self.child: Optional[subprocess.Popen] = None
        self.forwarded_at: Optional[float] = None  # when the child was sent SIGINT
        self.deferred = 0  # > 0: a child is being started or waited for; never raise
        self.quiet = 0  # > 0: cleaning up; a signal stops the clean-up instead of raising
        self.settled = False  # the run's outcome is decided: a signal is noted, never raised
        self.abandon = False

    def handle(self, signum: int, frame) -> None:
        self.received.append(signum)
        self.forward()
        if len(self.received) > 1 or not self.raises:
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

    @property
    def raises(self) -> bool:
        """Whether a signal now interrupts the run (not while cleaning up, nor once its outcome is settled)."""
        return not (self.quiet or self.settled)

    def settle(self) -> None:
        """The run's outcome is decided (it succeeded, or its last line is being written): from here on a signal
        is noted, not raised."""
        self.settled = True

    @contextmanager
    def cleaning(self) -> Iterator[None]:
        """Clean-up code: a signal in here abandons the clean-up rather than interrupting it half-way."""
        self.quiet += 1
        try:
            yield
        finally:
            self.quiet -= 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        """This object handles SIGINT and SIGTERM meanwhile (only the main thread can install handlers)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self.handle) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


# --- the error boundary -------------------------------------------------------------------------------

def _script_name() -> str:
    path = Path(sys.argv[0] if sys.argv and sys.argv[0] else "script")
    return path.parent.name if path.stem == "__main__" else path.stem  # `python -m sandbox`: sandbox


@dataclass
class Session:
    """One run of a script: the signals it handles, the secrets it never prints, and how its lines begin
    (plan.py's say "plan.py: "). Created once per run, and given to whatever prints or cleans up."""

    script: str = field(default_factory=_script_name)
    prefix: str = ""
    signals: Signals = field(default_factory=Signals)
    secrets: Secrets = field(default_factory=Secrets)

    def log(self, text: str) -> None:
        log(self.secrets.redact(text))

    def step(self, title: str):
        return step(title, self.log)

    def bug_log(self, error: BaseException) -> str:
        """Write the traceback of a bug (secrets redacted) to a log file of its own; where, for the message."""
        command = " ".join(sys.argv[1:])[:2000]  # what was run, to reproduce it
        text = self.secrets.redact(f"{self.script}: {command}\n" + "".join(traceback.format_exception(error)))
        try:
            handle, path = tempfile.mkstemp(prefix=f"bluegreen-{self.script}-{os.getpid()}-", suffix=".log")
            with os.fdopen(handle, "w", encoding="utf-8", errors="backslashreplace") as file:
                file.write(text)
        except OSError as failure:
            return f"its traceback could not be kept ({failure.strerror or failure}: {tempfile.gettempdir()})"
        return f"its traceback is in {path}"

    def verdict(self, error: BaseException) -> tuple[int, str]:
        """The exit code and the one line that end a run stopped by `error`."""
        if isinstance(error, Failure):
            return EXIT_FAILED, f"error: {error}"
        if isinstance(error, KeyboardInterrupt):  # SIGINT before the handler was installed, or off the main thread
            return EXIT_FAILED, "error: interrupted"
        if isinstance(error, UsageError):
            return EXIT_USAGE, f"error: {error}"
        where = self.bug_log(error)
        if isinstance(error, InternalError):
            return EXIT_BUG, f"internal error: {error}; {where}"
        return EXIT_BUG, (f"internal error: {type(error).__name__}: {printable(str(error), 500)} (a bug in "
                          f"{self.script}.py; please report it with the command that caused it; {where})")


def run_main(main: Callable[[], int], session: Optional[Session] = None) -> int:
    """Run a script's main as its one error boundary: its exit code, or the exit code of what stopped it
    (the table above) with one line on stderr, secrets redacted; never a traceback on the terminal."""
    session = session or Session()
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")  # a terminal that cannot show a character gets an escape
    with session.signals.installed():
        try:
            return main()
        except (Exception, KeyboardInterrupt) as error:  # SystemExit (argparse's exit 2) goes through
            session.signals.settle()  # a signal now must not interrupt the last line
            code, line = session.verdict(error)
            log(session.secrets.redact(one_line(session.prefix + line)))
            return code
