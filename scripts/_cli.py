"""scripts/sandbox.py imports the shared command-line helpers by this name; they are in bluegreen_tools/cli.py."""

from .bluegreen_tools.cli import EXIT_OK, Failure, log, run_main, step  # noqa: F401 - re-exported for sandbox.py
