"""abort: undo a release whose run stopped: users back where they were before it started, no test route."""

from __future__ import annotations

import argparse

from ..runner import Runner
from .recover import add_arguments, recover  # noqa: F401 - the command's arguments

HELP = ("Undo a release whose run stopped (killed, its machine lost), on any host: users back on the color they "
        "were on before it started, no test route; the routing comes from the record.")


def run(args: argparse.Namespace, runner: Runner) -> int:
    return recover(args, runner, "abort")
