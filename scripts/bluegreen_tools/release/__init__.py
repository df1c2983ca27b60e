"""Drive a blue-green release through the Pulumi CLI.

  promote COLOR       test COLOR through the gateway with the test cookie, then flip users to it
  rollback            send users back to the other color
  decommission COLOR  pulumi destroy a color that nobody is routed to
  status              both colors, which is active, which under test, the release record, config drift
  resume              finish a release whose run stopped, from the phase its record says, on any host
  abort               undo a release whose run stopped: users back where they were before it started
  unlock              give back the release record that a crashed run left, as it is

Every pulumi command is printed before it runs, so a person can follow or finish by hand, and has a
time limit. On a timeout, Ctrl-C or SIGTERM the running command gets SIGINT (the CLI's graceful
cancel) and a bounded grace before SIGKILL; then the routing is put back, the release record given back, and
the state read back and printed with the commands that finish by hand.
Exit status: 0 done, 1 refused or failed, 2 bad usage, 3 a bug (cli.run_main, the boundary of every script).

The jobs, one module each: runner.py (pulumi with time limits and signals), outputs.py (the stacks' outputs,
checked), routing.py (the routing transaction), hold.py (the release record, a Lease held by compare-and-swap),
report.py (what is left to finish by hand), parser.py (the command line), commands/ (one module per command).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ..cli import Session
from .parser import build_parser, parse_args  # noqa: F401 - the command line, for CI's checks of the workflows
from .runner import Runner


def main(argv: Optional[Sequence[str]] = None, session: Optional[Session] = None) -> int:
    """Run one command; the Runner (limits, events, the session's signals and secrets) is made here, once."""
    args = parse_args(argv)
    return args.handler(args, Runner.of(args, session or Session("release")))
