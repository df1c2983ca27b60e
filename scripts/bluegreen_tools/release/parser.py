"""release.py's command line: the commands, the stacks, the time limits (a flag wins over its environment
variable, which wins over the default)."""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from components.settings import COLORS

from .. import smoke_test
from .commands import abort, decommission, promote, resume, rollback, status, unlock
from .runner import LIMIT_OPTIONS

DESCRIPTION = "Drive a blue-green release through the Pulumi CLI."
EXIT_STATUS = "Exit status: 0 done, 1 refused or failed, 2 bad usage, 3 a bug (its traceback in a log file it names)."
COMMANDS = {"promote": promote, "rollback": rollback, "decommission": decommission, "status": status,
            "resume": resume, "abort": abort, "unlock": unlock}


def _seconds(positive: bool):
    def parse(text: str) -> float:
        value = smoke_test.seconds_arg(text)
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a time limit: give a number of seconds above 0")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    for name in (*COLORS, "routing"):
        common.add_argument(f"--{name}-stack", default=name, metavar="STACK",
                            help=f"the {name} stack (default {name})")
    for limit in LIMIT_OPTIONS:
        common.add_argument(limit.flag, dest=limit.dest, type=_seconds(limit.positive), metavar="SECONDS",
                            help=f"{limit.help} (default {limit.default:g}, or ${limit.env})")
    parser = argparse.ArgumentParser(prog="release.py", description=DESCRIPTION, epilog=EXIT_STATUS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, parents=[common], help=command.HELP, description=command.HELP)
        sub.set_defaults(handler=command.run)
        command.add_arguments(sub)
    return parser


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    for limit in LIMIT_OPTIONS:  # a flag wins over the environment variable, which wins over the default
        if getattr(args, limit.dest) is None:
            raw = os.environ.get(limit.env, "").strip()
            try:
                value = _seconds(limit.positive)(raw) if raw else limit.default
            except argparse.ArgumentTypeError:
                parser.error(f"{limit.env}={raw!r} is not a number of seconds{' above 0' if limit.positive else ''} "
                             f"({limit.flag}): set it to e.g. {limit.default:g}, or unset it")
            setattr(args, limit.dest, value)
    if args.command == "promote":
        smoke_test.require_url(parser, args)
    return args
