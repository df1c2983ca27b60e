"""resume: finish a release whose run stopped, from the phase its record says: the step it stopped in again,
the checks that never ran, then the record given back; a failed check undoes it."""

from __future__ import annotations

import argparse

from ..runner import Runner
from .recover import add_arguments, recover  # noqa: F401 - the command's arguments

HELP = ("Finish a release whose run stopped (killed, its machine lost), from the phase its record says, on any "
        "host: the routing comes from the record; a failed check undoes it.")


def run(args: argparse.Namespace, runner: Runner) -> int:
    return recover(args, runner, "resume")
