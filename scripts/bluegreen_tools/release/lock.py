"""The release lock: a stack tag on the routing stack, so every machine sees it; held from the start to the
end of a change, and released at the end whatever happened, if it is still this run's."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from ..cli import Failure, printable
from ..record.lease import user_at_host
from .runner import Runner, describe

who = user_at_host  # one spelling of user@host for the lock and the record

LOCK_TAG = "bluegreen:release"


def lock_value(color: str, release: Optional[str]) -> str:
    """color, release, who, when (UTC), and what makes it this run's only: the process id and a random part."""
    utc = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{color} {release or '-'} {who()} {utc} pid={os.getpid()} id={secrets.token_hex(4)}"


def _duration(seconds: float) -> str:
    minutes, hours = int(seconds // 60), int(seconds // 3600)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if hours < 2:
        return f"{minutes}m"
    return f"{hours}h{minutes % 60:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24}h"


@dataclass(frozen=True)
class LockInfo:
    """A lock's value read back: who holds it, since when, from which process (older values lack some)."""

    raw: str
    who: Optional[str]
    started: Optional[datetime]
    pid: Optional[int]

    @classmethod
    def parse(cls, raw: str) -> "LockInfo":
        words = raw.split()
        extra = dict(word.split("=", 1) for word in words[4:] if "=" in word)
        try:
            started = datetime.strptime(words[3], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except (IndexError, ValueError):
            started = None
        pid = extra.get("pid", "")
        return cls(raw, words[2] if len(words) > 2 and "@" in words[2] else None, started,
                   int(pid) if pid.isdigit() and len(pid) < 10 else None)

    def age(self) -> Optional[float]:
        return None if self.started is None else (datetime.now(timezone.utc) - self.started).total_seconds()

    def running_here(self) -> Optional[bool]:
        """Whether its process runs on this machine: True, False (gone), or None (another machine, or unknown)."""
        if self.pid is None or self.who is None or self.who.rpartition("@")[2] != who().rpartition("@")[2]:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True  # it exists, as another user's process
        return True

    def describe(self) -> str:
        parts = [f"held by {printable(self.who, 60)}" if self.who else "holder unknown"]
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        age = self.age()
        if age is not None:
            parts.append(f"for {_duration(max(age, 0.0))}")
        here = self.running_here()
        if here is False:
            parts.append("its process is no longer running on this machine: that run is gone")
        elif here:
            parts.append("its process is still running on this machine")
        return ", ".join(parts)


def settle(seconds: float) -> None:
    """The pause between setting the lock and reading it back."""
    time.sleep(seconds)


def read_lock(runner: Runner, stack: str) -> Optional[str]:
    """The release in progress, as its lock says, or None."""
    return runner.pulumi_get("stack", "tag", "get", LOCK_TAG, "-s", stack)


def remove_lock(runner: Runner, stack: str) -> None:
    runner.pulumi("stack", "tag", "rm", LOCK_TAG, "-s", stack)


def in_progress(held: str) -> str:
    return (f"a release is in progress: {printable(held, 200)} ({LockInfo.parse(held).describe()}). Wait for it to "
            "finish; if that run crashed, check `python scripts/release.py status`, then "
            "`python scripts/release.py unlock`")


class ReleaseLock:
    """Held from start to end of a change; released at the end whatever happened, if it is still this run's."""

    def __init__(self, runner: Runner, stack: str, color: str, release: Optional[str]):
        self.runner = runner
        self.stack = stack
        self.value = lock_value(color, release)
        self.state = "free"  # free, held, released, not ours, left (may still be set: for unlock)

    def __enter__(self) -> "ReleaseLock":
        runner = self.runner
        with runner.step("take the release lock"):
            held = read_lock(runner, self.stack)
            if held:
                raise Failure(in_progress(held))
            try:
                runner.pulumi("stack", "tag", "set", LOCK_TAG, self.value, "-s", self.stack)
                if runner.limits["lock_settle"]:
                    settle(runner.limits["lock_settle"])  # a run that set it at the same time shows now
                held = read_lock(runner, self.stack)
            except Exception as error:
                raise Failure(f"{describe(error)}; {self._give_back()}") from None
            if held != self.value:  # refuse on any doubt, and never remove another run's lock
                if held:
                    raise Failure(in_progress(held))
                raise Failure("the release lock read back as unset right after this run set it: another run or a "
                              "person removed it, or the backend answered late, so it cannot be trusted now; "
                              f"{self._give_back()}. Check `python scripts/release.py status`, then run again")
        self.state = "held"
        return self

    def _give_back(self) -> str:
        """After an error while taking the lock: remove it if it is this run's."""
        with self.runner.signals.cleaning():
            try:
                held = read_lock(self.runner, self.stack)
                if held is None:
                    return "the release lock is not set"
                if held != self.value:
                    return "the release lock is another run's now: left as it is"
                remove_lock(self.runner, self.stack)
                return "the release lock was removed again"
            except Exception as error:
                self.state = "left"
                return (f"the release lock may still hold this run's value ({self.value}): check `python "
                        f"scripts/release.py status`, then `python scripts/release.py unlock` ({describe(error)})")

    def __exit__(self, kind, error, traceback) -> bool:
        runner = self.runner
        with runner.signals.cleaning():
            try:
                with runner.step("release the lock"):
                    held = read_lock(runner, self.stack)
                    if held == self.value:
                        remove_lock(runner, self.stack)
                        self.state = "released"
                    else:
                        self.state = "not ours"
                        runner.log(f"the release lock is now {printable(held or '(unset)', 200)!r}, not this run's: "
                                   "left as it is")
            except Exception as failure:
                self.state = "left"
                message = (f"the release lock stays set ({self.value}): {describe(failure)}; when no release runs, "
                           "`python scripts/release.py unlock` clears it")
                if error is None:
                    raise Failure(message) from None
                runner.log(f"error: {message}")
        return False
