"""How plan.py fails: bad usage (exit 2) or a bug (exit 3), each told in one line by the scripts' one error
boundary (cli.run_main), whose exceptions these are."""

from ..cli import InternalError, UsageError, one_line  # noqa: F401 - the names plan's modules raise and use
