"""What a pulumi command leaves running when it ends: stopped and reaped, so that nothing outlives the run.

The Pulumi CLI starts its plugins (the language host, the providers) each in a process group of its own
(Go's Setpgid: a terminal's Ctrl-C reaches the CLI only), so a signal to the CLI's group misses them, and
a CLI that is stopped can leave them running. While a command runs this process is a child subreaper
(Linux: PR_SET_CHILD_SUBREAPER), so what the CLI leaves is re-parented here instead of to init; once the
command has ended, its leftovers are the children of this process in the CLI's session (it is started with
one of its own, which Setpgid keeps) or carrying the command's mark in their environment (for one that
left the session); they get SIGTERM, a short grace, SIGKILL, and are reaped (waitpid). Elsewhere (no
prctl, no /proc) every function here is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from typing import Iterable, Iterator, Optional

MARK = "BLUEGREEN_PULUMI_COMMAND"  # in a pulumi command's environment, inherited by what it starts
TERM_GRACE = 2.0  # seconds a leftover has after SIGTERM before SIGKILL
KILL_WAIT = 1.0  # seconds to wait for it to die after SIGKILL
POLL = 0.02
PROC = "/proc"
_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37
_marks = count(1)


@dataclass(frozen=True)
class Proc:
    """One line of /proc/<pid>/stat, the fields used here."""

    pid: int
    comm: str
    state: str  # Z: a zombie, exited and not yet reaped
    ppid: int
    sid: int


def parse_stat(text: str) -> Proc:
    """/proc/<pid>/stat: the command name is in parentheses and may hold spaces and parentheses itself."""
    head, _, rest = text.rpartition(")")
    pid, _, comm = head.partition(" (")
    fields = rest.split()
    return Proc(int(pid), comm, fields[0], int(fields[1]), int(fields[3]))


def new_mark() -> str:
    """A value for MARK that names one command of this process."""
    return f"{os.getpid()}.{next(_marks)}"


def leftovers(processes: Iterable[Proc], parent: int, session: int, marked: Iterable[int] = ()) -> list[Proc]:
    """The children of `parent` that a command in `session` left: in that session, or marked as its own."""
    marked = set(marked)
    return [p for p in processes if p.ppid == parent and (p.sid == session or p.pid in marked)]


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


@contextmanager
def adopting() -> Iterator[bool]:
    """This process a child subreaper while the block runs (True if it is), as it was after: set per command,
    so that a caller in-process (the tests) does not keep adopting orphans after the run."""
    libc = _libc()
    before = ctypes.c_int(0)
    if libc is None or libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0) != 0:
        yield False
        return
    if before.value or libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        yield bool(before.value)
        return
    try:
        yield True
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _child_pids(root: str) -> Optional[list[str]]:
    """This process's children, from each thread's children file (an orphan is re-parented to one of its
    threads); None where the kernel has no such file (CONFIG_PROC_CHILDREN)."""
    try:
        tasks = os.listdir(f"{root}/{os.getpid()}/task")
        pids: list[str] = []
        for task in tasks:
            try:
                with open(f"{root}/{os.getpid()}/task/{task}/children", encoding="ascii") as file:
                    pids += file.read().split()
            except FileNotFoundError:
                if not os.path.exists(f"{root}/{os.getpid()}/task/{task}"):
                    continue  # the thread ended meanwhile
                return None
        return pids
    except OSError:
        return None


def _processes(root: str, only: Optional[list[str]] = None) -> list[Proc]:
    """The processes in `root` (those named in `only`, when given)."""
    try:
        names = only if only is not None else [name for name in os.listdir(root) if name.isdigit()]
    except OSError:
        return []
    found = []
    for name in names:
        try:
            with open(f"{root}/{name}/stat", encoding="utf-8", errors="replace") as file:
                found.append(parse_stat(file.read()))
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not readable
            continue
    return found


def _carries(pid: int, mark: str, root: str) -> bool:
    try:
        with open(f"{root}/{pid}/environ", "rb") as file:
            return f"{MARK}={mark}".encode() in file.read().split(b"\0")
    except OSError:
        return False


def _scan(session: int, mark: Optional[str], root: str, known: Iterable[int]) -> list[Proc]:
    """`known`: the leftovers found before, marked even once a zombie (a zombie's environ reads empty)."""
    me, known = os.getpid(), set(known)
    children = [p for p in _processes(root, _child_pids(root)) if p.ppid == me]  # a full scan: 25 ms on 2 cores
    marked = [p.pid for p in children if p.pid in known or (mark and p.sid != session and _carries(p.pid, mark, root))]
    return leftovers(children, me, session, marked)


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # reaped already (it is not this process's child any more)
        return True


def _send(proc: Proc, signum: int) -> None:
    try:  # its group too when it leads one (a plugin's own children); an unreaped child's pid is not reused
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
    except OSError:
        pass


def stop_leftovers(session: int, mark: Optional[str] = None, root: str = PROC, grace: float = TERM_GRACE,
                   kill_wait: float = KILL_WAIT) -> tuple[list[Proc], list[Proc]]:
    """Stop and reap what the command whose session is `session` left: (the processes it had to stop, those
    still there when its time ran out). Zombies found are reaped and not counted: they were not running.
    Bounded by grace + kill_wait; new leftovers (children of a stopped one) are taken as they appear."""
    stopped: dict[int, Proc] = {}
    killed: set[int] = set()
    start = time.monotonic()
    while True:
        found = _scan(session, mark, root, stopped)
        now = time.monotonic()
        for proc in found:
            if proc.state == "Z":
                _reaped(proc.pid)
                continue
            if proc.pid not in stopped:
                stopped[proc.pid] = proc
                _send(proc, signal.SIGTERM if now - start < grace else signal.SIGKILL)
            elif now - start >= grace and proc.pid not in killed:
                killed.add(proc.pid)
                _send(proc, signal.SIGKILL)
        alive = [proc for proc in found if proc.state != "Z" and not _reaped(proc.pid)]
        if not alive:
            return list(stopped.values()), []
        if now - start >= grace + kill_wait:
            left = {proc.pid for proc in alive}
            return [proc for proc in stopped.values() if proc.pid not in left], alive
        time.sleep(POLL)


def describe(procs: Iterable[Proc]) -> str:
    return ", ".join(f"{p.comm} (pid {p.pid})" for p in procs)
