"""Running `pulumi`: each command printed before it runs, within its time limit, in a process group of its
own; a signal meanwhile forwarded to it as SIGINT (the CLI's graceful cancel), then SIGKILL after a grace.

A `Runner` holds one run's limits, what went wrong with its commands (`Events`) and its session (signals,
secrets): created once by `main`, passed to every command.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from .. import ROOT  # every pulumi command runs in the Pulumi project
from ..cli import Failure, Interrupted, Session, printable, signal_name
from ..engine_errors import program_error
from . import reaper

# No preview: the routing program refuses a bad target before it declares anything, and the
# flip is one VirtualService; the update prints what it changes.
UP = ("up", "--yes", "--skip-preview")
UPDATES = ("up", "destroy")  # commands that change a stack and hold its lock in the backend
KILL_WAIT = 5.0  # seconds to wait for a killed command's pipes to close


@dataclass(frozen=True)
class Limit:
    dest: str
    flag: str
    env: str
    default: float
    positive: bool  # 0 is refused (a time limit of 0 would stop every command)
    help: str


LIMIT_OPTIONS = (
    Limit("update_timeout", "--update-timeout", "BLUEGREEN_UPDATE_TIMEOUT", 1800.0, True,
          "time limit of each `pulumi up` and `pulumi destroy`"),
    Limit("command_timeout", "--command-timeout", "BLUEGREEN_COMMAND_TIMEOUT", 120.0, True,
          "time limit of every other pulumi command (config, stack tag, stack output)"),
    Limit("cancel_grace", "--cancel-grace", "BLUEGREEN_CANCEL_GRACE", 60.0, False,
          "how long a pulumi command sent SIGINT (on a timeout, Ctrl-C or SIGTERM) has to cancel gracefully "
          "before it is killed (SIGKILL)"),
)


@dataclass
class Events:
    """What went wrong with pulumi commands in this run, for the report at its end."""

    stopped: list[str] = field(default_factory=list)  # commands stopped by a timeout or a signal
    maybe_locked: set[str] = field(default_factory=set)  # stacks a killed update may have left locked


class PulumiError(Failure):
    """A pulumi command failed; the message names it."""


def popen(command: Sequence[str], stream: bool) -> subprocess.Popen:
    """Start a pulumi command. No stdin: a prompt in CI fails at once instead of hanging. A streamed
    command (up, destroy) writes its progress into a pipe that a StreamTee shows on stderr as it comes (stdout
    keeps only this script's result) and keeps the tail of, for the program's own error; its stderr is kept
    too. Its own session (so its own process group): a Ctrl-C at the terminal reaches this script only, which
    forwards one SIGINT (a second one would make the CLI stop at once, without its graceful cancel); the
    session and the mark in its environment tell what it leaves behind (reaper.py)."""
    mark = reaper.new_mark()
    env = {**os.environ, reaper.MARK: mark}
    if not stream:
        child = subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        child.mark = mark  # type: ignore[attr-defined]
        return child
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdin=subprocess.DEVNULL, stdout=write_end,
                                 stderr=subprocess.PIPE, start_new_session=True)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    child.mark = mark  # type: ignore[attr-defined]
    child.tee = StreamTee(read_end)  # type: ignore[attr-defined]
    return child


class StreamTee(threading.Thread):
    """Copies a streamed command's output to stderr line by line and keeps its last TAIL characters: the
    Diagnostics section, where the program's refusal is, comes last."""

    TAIL = 64 * 1024

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd, self.kept = fd, ""
        self.start()

    def run(self) -> None:
        with open(self.fd, encoding="utf-8", errors="replace", closefd=True) as pipe:
            for line in pipe:
                sys.stderr.write(line)
                self.kept = (self.kept + line)[-self.TAIL:]

    def text(self, wait: float) -> str:
        self.join(wait)  # a plugin outside the group may hold the pipe: the tail so far
        return self.kept


@dataclass
class Runner:
    """One run of release.py: its session (signals, secrets), its time limits (seconds, by Limit.dest) and
    what went wrong with its pulumi commands."""

    session: Session
    limits: dict[str, float] = field(default_factory=lambda: {limit.dest: limit.default for limit in LIMIT_OPTIONS})
    events: Events = field(default_factory=Events)

    @classmethod
    def of(cls, args: argparse.Namespace, session: Session) -> "Runner":
        return cls(session, {limit.dest: getattr(args, limit.dest) for limit in LIMIT_OPTIONS})

    @property
    def signals(self):
        return self.session.signals

    def log(self, text: str) -> None:
        self.session.log(text)

    def step(self, title: str):
        return self.session.step(title)

    def pulumi(self, *args: str, stream: bool = False) -> str:
        """Run a pulumi command; its stdout, or PulumiError."""
        done = self._run(args, stream)
        if done.returncode != 0:
            raise _error(args, done)
        return done.stdout or ""

    def pulumi_get(self, *args: str) -> Optional[str]:
        """`config get` or `stack tag get`: the value, or None when it is not set. The CLI says 'not found', or,
        for a key Pulumi.yaml declares, answers its default, empty for every optional key: empty is not set."""
        done = self._run(args, stream=False)
        if done.returncode == 0:
            return (done.stdout.splitlines()[0] if done.stdout else "") or None
        if "not found for stack" in (done.stderr or ""):
            return None
        raise _error(args, done)

    def outputs(self, stack: str) -> dict[str, Any]:
        """The stack's outputs: a JSON object, or a Failure that says what came instead."""
        text = self.pulumi("stack", "output", "--json", "-s", stack)
        command = f"`pulumi stack output --json -s {stack}`"
        try:
            values = json.loads(text)
        except (ValueError, RecursionError):
            raise Failure(f"{command} did not print JSON ({len(text)} characters, starting "
                          f"{printable(text.strip(), 40)!r}): run it to see what it says") from None
        if not isinstance(values, dict):
            raise Failure(f"{command} printed a JSON {type(values).__name__}, not an object of outputs: run it to "
                          "see what it says")
        return values

    def _run(self, args: Sequence[str], stream: bool) -> subprocess.CompletedProcess:
        """Run one pulumi command within its time limit; a signal meanwhile is forwarded to it as SIGINT."""
        signals = self.signals
        command = ("pulumi", *args)
        shown = shlex.join(command)
        if signals.abandon:
            raise Failure(f"`{shown}` not run: a second signal stopped the clean-up")
        limit = LIMIT_OPTIONS[0] if args and args[0] in UPDATES else LIMIT_OPTIONS[1]
        self.log(f"$ {shown}")
        before = len(signals.received)
        signals.deferred += 1
        try:
            with reaper.adopting():  # what the CLI leaves is re-parented here, to be stopped (_stop_leftovers)
                child, out, err, timed_out, ending = self._start_and_wait(command, stream, limit, before)
        finally:
            signals.deferred -= 1
        tee = getattr(child, "tee", None)
        if tee is not None:
            out = tee.text(KILL_WAIT)
        if stream and err:
            sys.stderr.write(self.session.secrets.redact(err))
        code = child.returncode if child.returncode is not None else -signal.SIGKILL  # None: it would not die
        done = subprocess.CompletedProcess(command, code, out, err)
        stack = args[args.index("-s") + 1] if "-s" in args[:-1] else None
        if args[0] in UPDATES and stack and (code < 0 or _says_locked(err)):
            self.events.maybe_locked.add(stack)
        elif args[0] in UPDATES and stack and code == 0:  # it took the stack's lock and gave it back: none is left
            self.events.maybe_locked.discard(stack)
        if ending:
            self.events.stopped.append(shown)
        if len(signals.received) > before and signals.raises:
            raise Interrupted(signals.received[before], f"during `{shown}` ({ending or _exit_code(code)})")
        if timed_out:
            raise PulumiError(f"`{shown}` ran past its {self.limits[limit.dest]:g}s limit ({limit.flag}, or "
                              f"${limit.env}): {ending}")
        return done

    def _start_and_wait(self, command: Sequence[str], stream: bool, limit: Limit, before: int):
        """The command started and waited for (within its limit, signals forwarded), then what it left stopped."""
        signals = self.signals
        try:
            child = popen(command, stream)
        except FileNotFoundError:
            raise Failure("the pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/)") from None
        except OSError as error:
            raise Failure(f"cannot run the pulumi CLI ({error.strerror or error}): check that `pulumi version` "
                          "works here") from None
        signals.child, signals.forwarded_at = child, None
        if len(signals.received) > before:  # a signal came while it started
            signals.forward()
        try:
            out, err, timed_out, ending = self._wait(child, self.limits[limit.dest])
        finally:
            signals.child = None
            self._stop_leftovers(child)
        return child, out, err, timed_out, ending

    def _stop_leftovers(self, child: subprocess.Popen) -> None:
        """Once the CLI has exited: what it started and left (plugins in groups of their own), stopped and
        reaped; said in one line when any was running. Once per command (the kill path comes here first)."""
        if child.pid is None or child.poll() is None or getattr(child, "leftovers_stopped", False):
            return
        child.leftovers_stopped = True  # type: ignore[attr-defined]
        stopped, left = reaper.stop_leftovers(child.pid, getattr(child, "mark", None))
        if stopped:
            self.log(printable(f"stopped {len(stopped)} process(es) the CLI left: {reaper.describe(stopped)}", 500))
        if left:
            self.log(printable(f"could not stop {len(left)} process(es) the CLI left within "
                               f"{reaper.TERM_GRACE + reaper.KILL_WAIT:g}s: {reaper.describe(left)}", 500))

    def _wait(self, child: subprocess.Popen, limit: float) -> tuple[str, str, bool, str]:
        """stdout, stderr, whether it ran out of time, and how it was stopped ("" when it ended by itself)."""
        signals = self.signals
        deadline = time.monotonic() + limit
        timed_out = False
        grace = self.limits["cancel_grace"]
        while True:
            now = time.monotonic()
            if signals.forwarded_at is None and now >= deadline:
                timed_out = True
                signals.forward()
            sent = signals.forwarded_at
            asked = "sent it SIGINT" if timed_out else "forwarded to it as SIGINT"
            if sent is not None and now >= sent + grace:
                out, err = _kill(child, self._stop_leftovers)
                return out, err, timed_out, (f"{asked}; it did not stop within the {grace:g}s cancel grace "
                                             "(--cancel-grace), so it was killed (SIGKILL)")
            until = deadline if sent is None else sent + grace
            try:
                out, err = child.communicate(timeout=max(0.01, min(until - now, 0.5)))
            except subprocess.TimeoutExpired:
                self._stop_leftovers(child)  # it exited, and what it left may hold its pipes open
                continue
            if signals.forwarded_at is None:
                return out or "", err or "", False, ""
            return out or "", err or "", timed_out, f"{asked}; it stopped ({_exit_code(child.returncode)})"


def _kill(child: subprocess.Popen, stop_leftovers: Callable[[subprocess.Popen], None]) -> tuple[str, str]:
    try:
        os.killpg(child.pid, signal.SIGKILL)  # its group: the CLI (its plugins lead groups of their own)
    except OSError:
        pass
    try:
        child.wait(timeout=KILL_WAIT)
    except subprocess.TimeoutExpired:
        pass
    stop_leftovers(child)  # before reading its pipes: a plugin left running may hold them
    try:
        out, err = child.communicate(timeout=KILL_WAIT)
    except subprocess.TimeoutExpired:  # something outside the group still holds its pipes
        for pipe in (child.stdout, child.stderr):
            if pipe:
                pipe.close()
        try:
            child.wait(timeout=KILL_WAIT)
        except subprocess.TimeoutExpired:
            pass
        out, err = "", ""
    return out or "", err or ""


def _says_locked(stderr: str) -> bool:
    return "currently locked" in stderr or "Another update is currently in progress" in stderr


def _exit_code(code: int) -> str:
    return f"killed by {signal_name(-code)}" if code < 0 else f"exit {code}"


def _error(args: Sequence[str], done: subprocess.CompletedProcess) -> PulumiError:
    lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    # The program's own refusal (the engine's diagnostics) says why; else the CLI's last error line.
    why = (program_error(f"{done.stdout or ''}\n{done.stderr or ''}", limit=300)
           or (printable((errors or lines)[-1], 300) if lines else "it printed no error"))
    return PulumiError(f"`{shlex.join(('pulumi', *args))}` failed ({_exit_code(done.returncode)}): {why}")


def describe(error: BaseException) -> str:
    """An error for a message: a Failure says it all; anything else is a bug, named as one."""
    if isinstance(error, Failure):
        return str(error)
    return f"unexpected {type(error).__name__}: {printable(str(error), 200)}"
