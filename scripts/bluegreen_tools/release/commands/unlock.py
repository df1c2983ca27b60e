"""unlock: clear the release lock that a crashed run left, then say what is left to put back."""

from __future__ import annotations

import argparse

from ...cli import EXIT_OK, Failure, printable
from ..lock import LockInfo, read_lock, remove_lock
from ..report import advise
from ..runner import Runner

HELP = "Clear the release lock that a crashed run left, then say what is left to put back."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="remove the lock even when its run still runs on this "
                                                             "machine")


def run(args: argparse.Namespace, runner: Runner) -> int:
    stack = args.routing_stack
    held = read_lock(runner, stack)
    if held:
        info = LockInfo.parse(held)
        if info.running_here() and not args.force:
            raise Failure(f"the release lock is held by a run still going on this machine: {printable(held, 200)} "
                          f"(pid {info.pid}). Wait for it, or stop it with `kill -INT {info.pid}` (it puts the routing "
                          "back and releases the lock itself); --force removes the lock anyway")
        remove_lock(runner, stack)
        runner.log(f"removed the release lock ({printable(held, 200)}; {info.describe()})")
    else:
        runner.log("no release lock is held")
    advise(runner, args)
    return EXIT_OK
