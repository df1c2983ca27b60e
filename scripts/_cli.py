"""What the command-line scripts share: exit codes, one-line progress, and a main that never shows a traceback."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

EXIT_OK = 0
EXIT_FAILED = 1  # a check failed, a refusal, a pulumi command failed; bad usage exits 2 (argparse)


class Failure(Exception):
    """An expected failure: its message is one line for a person, and the script exits 1."""


def log(text: str) -> None:
    """Progress and diagnostics go to stderr, so stdout holds only a command's result (a table, JSON)."""
    print(text, file=sys.stderr, flush=True)


def result_line(passed: Optional[bool], title: str, seconds: float, detail: str = "") -> str:
    """One line for a check or a step: PASS/FAIL (or ok/FAIL for a step), what, how long, and why."""
    status = {True: "PASS", False: "FAIL", None: "ok"}[passed]
    return f"{status:<4} {title} ({seconds:.2f}s)" + (f": {detail}" if detail else "")


@contextmanager
def step(title: str) -> Iterator[None]:
    """A step of a longer flow: one progress line when it ends, with how long it took."""
    start = time.monotonic()
    try:
        yield
    except BaseException:
        log(result_line(False, title, time.monotonic() - start))
        raise
    log(result_line(None, title, time.monotonic() - start))


def run_main(main: Callable[[], int]) -> int:
    """Run a script's main: a Failure or an unexpected error is one line on stderr and exit 1."""
    try:
        return main()
    except Failure as failure:
        log(f"error: {failure}")
    except KeyboardInterrupt:
        log("error: interrupted")
    except Exception as error:  # a bug must still not print a traceback at a platform team
        log(f"error: unexpected {type(error).__name__}: {error}")
    return EXIT_FAILED
