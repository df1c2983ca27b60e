"""Smoke tests through the real Istio ingress gateway.

    python scripts/smoke_test.py --url URL [--cookie NAME=VALUE] [--expect-color COLOR]
                                 [--timeout SECONDS] [--settle SECONDS] [--consecutive N]
                                 [--check PATH ...] [--junit FILE]

The built-in check is the tutorial's: GET /ready answers 200 with JSON {"ready": true}. Each
--check PATH must answer 2xx. Checks run concurrently; each waits for readiness (connection
refused, 502/503/504, "ready": false) with bounded back-off, then passes on N right answers in a
row once the settle time is over, while a definite wrong answer fails at once. With --expect-color
every answer must carry x-bluegreen-color: COLOR, which the VirtualService sets. Every check, and
the run, has a wall-clock deadline; a body is read up to a cap. Exit 0: all passed; 1: a check
failed; 2: bad usage. release.py calls `run_checks` in-process. This module is the command line; the
client, the checks and the reports are in the `smoke` package beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlsplit

from components.routes import COLOR_HEADER
from components.settings import COLORS, Cookie, SettingsError, parse_cookie

from .cli import EXIT_FAILED, EXIT_OK, Session, printable, run_main
# release.py's promote runs the checks in-process and reports them: the names it uses, from here
from .smoke.checks import (DEFAULT_CONSECUTIVE, DEFAULT_MAX_BODY, DEFAULT_TIMEOUT, CheckResult,
                           ChecksInterrupted, parse_json, run_checks)
from .smoke.report import failures, result_lines, write_junit

__all__ = ["COLORS", "Cookie", "CheckResult", "ChecksInterrupted", "DEFAULT_TIMEOUT", "add_gateway_arguments",
           "check_options", "cookie_arg", "failures", "main", "parse_json", "require_url", "result_lines",
           "run_checks", "seconds_arg", "write_junit"]


# --- command line -----------------------------------------------------------------------------------

def url_arg(text: str) -> str:
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL, e.g. http://203.0.113.10:80")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r}: give the gateway's base URL, without ?query or #fragment")
    return text


def cookie_arg(text: str) -> Cookie:
    try:
        return parse_cookie(text, SettingsError)  # the message names the problem, never the value
    except SettingsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def count_arg(low: int, high: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} from {low} to {high}")
        return value
    return parse


def path_arg(text: str) -> str:
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} must be a URL path starting with '/', e.g. /api/health")
    return text


def add_gateway_arguments(parser: argparse.ArgumentParser, timeout: float, settle: float) -> None:
    """The options that say where and how to check the app; release.py's promote takes them too."""
    parser.add_argument("--url", type=url_arg, default=os.environ.get("BLUEGREEN_URL"),
                        help="the Istio ingress gateway's base URL (default: $BLUEGREEN_URL)")
    parser.add_argument("--timeout", type=seconds_arg, default=timeout, metavar="SECONDS",
                        help=f"how long each check waits, after the settle time, for the app to be ready and "
                             f"answer right (default {timeout:g})")
    parser.add_argument("--settle", type=seconds_arg, default=settle, metavar="SECONDS",
                        help="how long an answer from the wrong color is counted and waited on, the time a routing "
                             f"change takes to reach the gateway, before it fails (default {settle:g})")
    parser.add_argument("--consecutive", type=count_arg(1, 100, "a number of answers"), default=DEFAULT_CONSECUTIVE,
                        metavar="N", help="right answers in a row, after the settle time, for a check to pass "
                                          f"(default {DEFAULT_CONSECUTIVE})")
    parser.add_argument("--run-timeout", type=seconds_arg, metavar="SECONDS",
                        help="wall-clock limit of a whole run of the checks (default: settle + timeout + 5)")
    parser.add_argument("--max-body", type=count_arg(64, 1 << 30, "a number of bytes"), default=DEFAULT_MAX_BODY,
                        metavar="BYTES", help=f"the most of a body read, after decompression (default "
                                              f"{DEFAULT_MAX_BODY})")
    parser.add_argument("--check", type=path_arg, action="append", default=[], metavar="PATH",
                        help="another path that must answer 2xx (repeatable)")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report here")
    parser.add_argument("--insecure", action="store_true", help="do not verify the gateway's TLS certificate")


def require_url(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.url:
        parser.error("the gateway URL is required: --url URL or the environment variable BLUEGREEN_URL")


def check_options(args: argparse.Namespace) -> dict:
    """run_checks' keyword options from the command line."""
    return {"consecutive": args.consecutive, "max_body": args.max_body, "run_timeout": args.run_timeout}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="smoke_test.py", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 every check passed, 1 a check failed (or the gateway was unreachable), 2 bad usage.")
    add_gateway_arguments(parser, timeout=DEFAULT_TIMEOUT, settle=0.0)
    parser.add_argument("--cookie", type=cookie_arg, metavar="NAME=VALUE",
                        help="a cookie sent with every request, e.g. the test cookie (its value is never printed)")
    parser.add_argument("--expect-color", choices=COLORS,
                        help=f"every answer must carry {COLOR_HEADER}: COLOR")
    args = parser.parse_args(argv)
    require_url(parser, args)
    return args


def main(argv: Optional[Sequence[str]] = None, session: Optional[Session] = None) -> int:
    session = session or Session("smoke_test")
    args = parse_args(argv)
    if args.cookie:
        session.secrets.add(args.cookie.value)

    def _say(text: str) -> None:
        print(session.secrets.redact(text), flush=True)

    cookie = f", cookie {args.cookie.name}=[secret]" if args.cookie else ""
    expecting = f", expecting {args.expect_color}" if args.expect_color else ""
    unverified = ", TLS not verified (--insecure)" if args.insecure else ""
    settle = f", settle {args.settle:g}s" if args.settle else ""
    _say(f"smoke test {args.url}{cookie}{expecting}{unverified}, timeout {args.timeout:g}s{settle}, "
         f"{args.consecutive} in a row")
    start = time.monotonic()
    stopped: Optional[Exception] = None
    try:
        results = run_checks(args.url, args.check, args.cookie, args.expect_color, args.timeout, args.settle,
                             verify=not args.insecure, **check_options(args))
    except ChecksInterrupted as interrupted:
        results, stopped = interrupted.results, interrupted
    except Exception as error:  # a bug: the report still says the run failed
        results, stopped = [CheckResult("smoke test run", False, time.monotonic() - start,
                                        f"unexpected {type(error).__name__}: {printable(str(error), 80)}")], error
    with session.signals.cleaning():  # the report is written whatever happened, even on a second signal
        _say("\n".join(result_lines(results)))
        passed = sum(r.passed for r in results)
        _say(f"{passed} of {len(results)} checks passed in {time.monotonic() - start:.2f}s")
        if args.junit:
            write_junit(args.junit, [("smoke", results)], session.secrets.redact)
    if stopped is not None:
        raise stopped
    return EXIT_OK if passed == len(results) else EXIT_FAILED


if __name__ == "__main__":
    _session = Session("smoke_test")  # the boundary's: its signals and secrets
    sys.exit(run_main(lambda: main(session=_session), _session))
