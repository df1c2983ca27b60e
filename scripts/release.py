#!/usr/bin/env python3
"""Drive a blue-green release through the Pulumi CLI.

  promote COLOR       test COLOR through the gateway with the test cookie, then flip users to it
  rollback            send users back to the other color
  decommission COLOR  pulumi destroy a color that nobody is routed to
  status              both colors, which is active, which under test, a release in progress
  unlock              clear the release lock that a crashed run left

Every pulumi command is printed before it runs, so a person can follow or finish by hand.
Exit status: 0 done, 1 refused or failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

if not __package__:  # run as a file: make the project's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.guards import ColorState, RoutingState  # noqa: E402
from components.settings import COLORS, Cookie, other_color, parse_cookie, project_defaults  # noqa: E402
from scripts import smoke_test  # noqa: E402
from scripts._cli import EXIT_OK, Failure, log, result_line, run_main, step  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent  # the Pulumi project: every pulumi command runs here
LOCK_TAG = "bluegreen:release"
# No preview: the routing program refuses a bad target before it declares anything, and the
# flip is one VirtualService; the update prints what it changes.
UP = ("up", "--yes", "--skip-preview")


# --- the Pulumi CLI ---------------------------------------------------------------------------

class PulumiError(Failure):
    """A pulumi command failed; the message names it."""


def _run(args: Sequence[str], stream: bool) -> subprocess.CompletedProcess:
    command = ("pulumi", *args)
    log(f"$ {shlex.join(command)}")
    try:
        # No stdin: a prompt in CI fails at once instead of hanging. A streamed command (up,
        # destroy) shows its progress on stderr (fd 2), so that stdout keeps only this script's result;
        # its errors are kept too, to say why it failed.
        done = subprocess.run(command, cwd=ROOT, text=True, stdin=subprocess.DEVNULL,
                              stdout=2 if stream else subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise Failure("the pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/)") from None
    if stream and done.stderr:
        sys.stderr.write(done.stderr)
    return done


def _error(args: Sequence[str], done: subprocess.CompletedProcess) -> PulumiError:
    lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
    why = lines[-1][:300] if lines else "it printed no error"
    return PulumiError(f"`{shlex.join(('pulumi', *args))}` failed (exit {done.returncode}): {why}")


def pulumi(*args: str, stream: bool = False) -> str:
    """Run a pulumi command; its stdout, or PulumiError."""
    done = _run(args, stream)
    if done.returncode != 0:
        raise _error(args, done)
    return done.stdout or ""


def pulumi_get(*args: str) -> Optional[str]:
    """`config get` or `stack tag get`: the value, or None when it is not set (the CLI says 'not found')."""
    done = _run(args, stream=False)
    if done.returncode == 0:
        return done.stdout.splitlines()[0] if done.stdout else ""
    if "not found for stack" in (done.stderr or ""):
        return None
    raise _error(args, done)


def outputs(stack: str) -> dict[str, Any]:
    text = pulumi("stack", "output", "--json", "-s", stack)
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise Failure(f"`pulumi stack output --json -s {stack}` did not print JSON") from None
    return values if isinstance(values, dict) else {}


# --- what the stacks say ------------------------------------------------------------------------

def color_stack(args: argparse.Namespace, color: str) -> str:
    return args.blue_stack if color == "blue" else args.green_stack


def read_color(args: argparse.Namespace, color: str, why: str = "") -> ColorState:
    stack = color_stack(args, color)
    with step(f"read {color} (stack {stack}){why}"):
        return ColorState.from_outputs(stack, outputs(stack))


def require_ready(state: ColorState, color: str) -> ColorState:
    """Refuse a color that is not deployed, is another color, or has no ready pod."""
    if state.color is None:
        raise Failure(f"{color} is not deployed: stack {state.stack} has no outputs. Deploy it first: "
                      f"pulumi up -s {state.stack}")
    if state.color != color:
        raise Failure(f"stack {state.stack} deploys {state.color}, not {color}: give the {color} stack with "
                      f"--{color}-stack")
    if not state.ready_replicas or state.ready_replicas < 1:
        raise Failure(f"{color} (release {state.release}, stack {state.stack}) has no ready pod "
                      f"(readyReplicas {state.ready_replicas or 0}): make it ready, then pulumi up -s {state.stack}")
    return state


def read_routing(args: argparse.Namespace, required: bool = True) -> RoutingState:
    with step(f"read routing (stack {args.routing_stack})"):
        state = RoutingState.from_outputs(outputs(args.routing_stack))
    if required and state.active is None:
        raise Failure(f"the routing stack {args.routing_stack} has no outputs: deploy it first: pulumi config set "
                      f"active blue -s {args.routing_stack} && pulumi up -s {args.routing_stack}")
    return state


class Routing:
    """The routing stack's `active` and `test`, changed through the CLI.

    Used as a context manager: a Failure inside, once something changed, puts the routing back
    (users on the original color, no test route) and says so in the error.
    """

    def __init__(self, stack: str, state: RoutingState):
        self.stack = stack
        self.original = state.active
        self.config = {"active": state.active, "test": state.test}
        self.changed = False

    def set(self, key: str, value: Optional[str]) -> None:
        if value is None:
            pulumi("config", "rm", key, "-s", self.stack)
        else:
            pulumi("config", "set", key, value, "-s", self.stack)
        self.config[key] = value
        self.changed = True

    def up(self) -> None:
        pulumi(*UP, "-s", self.stack, stream=True)

    def restore(self) -> str:
        """Users back on the original color, no test route; what happened, for the error message."""
        try:
            with step(f"restore routing: users on {self.original}, no test route"):
                if self.config["active"] != self.original:
                    self.set("active", self.original)
                if self.config["test"] is not None:
                    self.set("test", None)
                self.up()
        except PulumiError as error:
            return (f"restoring the routing failed too ({error}); to put users back on {self.original} run: "
                    f"pulumi config set active {self.original} -s {self.stack} && pulumi config rm test "
                    f"-s {self.stack} && pulumi {' '.join(UP)} -s {self.stack}")
        return f"routing restored: users on {self.original}, no test route"

    def __enter__(self) -> "Routing":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, Failure) and self.changed:
            raise Failure(f"{error}; {self.restore()}") from None
        return False


# --- the release lock: a stack tag on the routing stack, so every machine sees it -----------------

def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return "_".join(f"{user}@{socket.gethostname()}".split())


def read_lock(stack: str) -> Optional[str]:
    """The release in progress, as its lock says, or None."""
    return pulumi_get("stack", "tag", "get", LOCK_TAG, "-s", stack)


def in_progress(held: str) -> str:
    return (f"a release is in progress: {held} (color, release, who, started UTC). Wait for it to finish; if "
            f"that run crashed, check `python scripts/release.py status`, then `python scripts/release.py unlock`")


class ReleaseLock:
    """Held from start to end of a change; released on any expected failure, kept after a crash."""

    def __init__(self, stack: str, color: str, release: Optional[str]):
        self.stack = stack
        utc = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.value = f"{color} {release or '-'} {who()} {utc}"

    def __enter__(self) -> "ReleaseLock":
        with step("take the release lock"):
            held = read_lock(self.stack)
            if held:
                raise Failure(in_progress(held))
            pulumi("stack", "tag", "set", LOCK_TAG, self.value, "-s", self.stack)
            held = read_lock(self.stack)
            if held != self.value:  # another machine set it between our get and set
                raise Failure(in_progress(held or "(the lock vanished)"))
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is not None and not issubclass(kind, Failure):
            log(f"the release lock stays set ({self.value}) after this unexpected error: check "
                f"`python scripts/release.py status`, then `python scripts/release.py unlock`")
            return False
        try:
            with step("release the lock"):
                held = read_lock(self.stack)
                if held == self.value:
                    pulumi("stack", "tag", "rm", LOCK_TAG, "-s", self.stack)
                else:
                    log(f"the release lock is now {held!r}, not this run's: left as it is")
        except Failure as failure:
            if kind is None:
                raise Failure(f"{failure}: run `python scripts/release.py unlock`") from None
            log(f"error: {failure}: run `python scripts/release.py unlock`")
        return False


# --- the test cookie ------------------------------------------------------------------------------

def read_test_cookie(args: argparse.Namespace) -> tuple[Cookie, str]:
    """The cookie that reaches the test color, and how to show it: a token is never shown."""
    if args.cookie:
        return args.cookie, f"{args.cookie.name}=[secret]"
    stack = args.routing_stack
    with step("read the test cookie"):
        text = pulumi_get("config", "get", "testCookie", "-s", stack) or project_defaults()["testCookie"]
        cookie = parse_cookie(text, lambda problem: Failure(f"testCookie {text!r} on stack {stack}: {problem}"))
        token = os.environ.get("BLUEGREEN_TEST_TOKEN") or pulumi_get("config", "get", "testToken", "-s", stack)
    if not token:
        return cookie, str(cookie)
    return (parse_cookie(f"{cookie.name}={token}",
                         lambda problem: Failure(f"the test token cannot be sent as a cookie: {problem}")),
            f"{cookie.name}=[secret]")


# --- subcommands ----------------------------------------------------------------------------------

def smoke(args: argparse.Namespace, title: str, cookie: Optional[Cookie], color: str, suites: list) -> str:
    """Run the checks through the gateway, expecting `color`; the failed checks, or "" when all passed."""
    start = time.monotonic()
    results = smoke_test.run_checks(args.url, args.check, cookie, color, args.timeout, args.settle,
                                    verify=not args.insecure)
    for line in smoke_test.result_lines(results):
        log(f"  {line}")
    failed = smoke_test.failures(results)
    log(result_line(False if failed else None, title, time.monotonic() - start,
                    f"{sum(r.passed for r in results)} of {len(results)} checks passed"))
    suites.append((title, results))
    return failed


def promote(args: argparse.Namespace) -> int:
    color = args.color
    cookie, shown = read_test_cookie(args)
    pinned = require_ready(read_color(args, color), color).release
    suites: list = []
    with ReleaseLock(args.routing_stack, color, pinned):
        state = read_routing(args)
        if state.active == color:
            raise Failure(f"{color} is already active (release {state.active_release}): nothing to promote. "
                          f"A new release goes to the idle color, {other_color(color)}")
        users = state.active
        try:
            with Routing(args.routing_stack, state) as routing:
                with step(f"route testers to {color}"):
                    routing.set("test", color)
                    routing.up()
                failed = smoke(args, f"smoke tests of {color} through the test route (cookie {shown})",
                               cookie, color, suites)
                if failed:
                    raise Failure(f"smoke tests of {color} failed through the test route, so users stay on "
                                  f"{users}: {failed}")
                now = read_color(args, color, f": is it still release {pinned}?")
                if now.release != pinned:
                    raise Failure(f"{color}'s release changed from {pinned} to {now.release} while it was being "
                                  f"tested, so users stay on {users}; promote {color} again to test {now.release}")
                require_ready(now, color)
                with step(f"flip users to {color} (release {pinned})"):
                    routing.set("active", color)
                    routing.set("test", None)
                    routing.up()
                failed = smoke(args, f"checks of {color} through the default route", None, color, suites)
                if failed:
                    raise Failure(f"the default route failed after the flip to {color}: {failed}")
        finally:
            if args.junit and suites:
                smoke_test.write_junit(args.junit, suites)
    log(f"{color} (release {pinned}) is live. {users} still runs: `python scripts/release.py rollback` sends "
        f"users back; when sure, `python scripts/release.py decommission {users}`")
    return EXIT_OK


def rollback(args: argparse.Namespace) -> int:
    state = read_routing(args)
    back = other_color(state.active)
    target = require_ready(read_color(args, back), back)
    with ReleaseLock(args.routing_stack, back, target.release):
        state = read_routing(args)  # again, under the lock: a release may have finished meanwhile
        if state.active == back:
            raise Failure(f"users are already on {back}: the routing changed since this rollback started; "
                          f"`python scripts/release.py status` shows it")
        with Routing(args.routing_stack, state) as routing, step(f"send users back to {back}"):
            routing.set("active", back)
            if state.test == back:  # a test route to the color users are now on would be refused
                routing.set("test", None)
            routing.up()
    log(f"users are on {back} (release {target.release})")
    return EXIT_OK


def decommission(args: argparse.Namespace) -> int:
    color = args.color
    stack = color_stack(args, color)
    state = read_color(args, color)
    with ReleaseLock(args.routing_stack, color, state.release):
        routing = read_routing(args, required=False)  # never deployed: nobody is routed anywhere
        if routing.active == color:
            raise Failure(f"{color} is the active color: users are on it. Roll back first "
                          f"(`python scripts/release.py rollback`), then decommission {color}")
        if routing.test == color:
            raise Failure(f"{color} is under test. Remove the test route first: pulumi config rm test -s "
                          f"{args.routing_stack} && pulumi up -s {args.routing_stack}")
        with step(f"destroy {color} (stack {stack})"):
            try:
                pulumi("destroy", "--yes", "-s", stack, stream=True)
            except PulumiError as error:
                raise Failure(f"{error}. Users are not affected (nobody is routed to {color}); run it again: "
                              f"pulumi destroy --yes -s {stack}") from None
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    routing = outputs(args.routing_stack)
    colors = {color: outputs(color_stack(args, color)) for color in COLORS}
    held = read_lock(args.routing_stack)
    report = {
        "active": routing.get("active"),
        "test": routing.get("test"),
        "releaseInProgress": held,
        "colors": {color: {"stack": color_stack(args, color), "deployed": bool(values),
                           **{key: values.get(key) for key in ("release", "image", "readyReplicas", "replicas")}}
                   for color, values in colors.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    rows = [("COLOR", "STACK", "ROLE", "RELEASE", "READY", "IMAGE")]
    for color, values in report["colors"].items():
        role = ("active" if color == report["active"] else "test" if color == report["test"]
                else "idle" if values["deployed"] else "not deployed")
        ready = f"{values['readyReplicas']}/{values['replicas']}" if values["deployed"] else "-"
        rows.append((color, values["stack"], role, values["release"] or "-", ready, values["image"] or "-"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"release in progress: {held or 'none'}")
    return EXIT_OK


def unlock(args: argparse.Namespace) -> int:
    held = read_lock(args.routing_stack)
    if not held:
        log("no release lock is held")
        return EXIT_OK
    pulumi("stack", "tag", "rm", LOCK_TAG, "-s", args.routing_stack)
    log(f"removed the release lock ({held}). A crashed promote can leave a test route: "
        f"`python scripts/release.py status` shows it, and `pulumi config rm test -s {args.routing_stack} && "
        f"pulumi up -s {args.routing_stack}` removes it")
    return EXIT_OK


# --- command line ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    stacks = argparse.ArgumentParser(add_help=False)
    for name in (*COLORS, "routing"):
        stacks.add_argument(f"--{name}-stack", default=name, metavar="STACK",
                            help=f"the {name} stack (default {name})")
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0],
                                     epilog="Exit status: 0 done, 1 refused or failed, 2 bad usage.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[stacks], help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    promote_parser = command("promote", promote, "Test COLOR through the gateway with the test cookie, then flip "
                                                 "users to it; on any failure users stay on (or go back to) the "
                                                 "other color.")
    promote_parser.add_argument("color", choices=COLORS)
    smoke_test.add_gateway_arguments(promote_parser, timeout=smoke_test.DEFAULT_TIMEOUT, settle=10.0)
    promote_parser.add_argument("--cookie", type=smoke_test.cookie_arg, metavar="NAME=VALUE",
                     help="the cookie that reaches the test color (default: the routing stack's testCookie, "
                          "with the value $BLUEGREEN_TEST_TOKEN or its testToken when one is set)")
    command("rollback", rollback, "Send users back to the other color (refused unless it is deployed and ready).")
    sub = command("decommission", decommission, "pulumi destroy COLOR's stack (refused while COLOR is active "
                                                "or under test).")
    sub.add_argument("color", choices=COLORS)
    sub = command("status", status, "Both colors, which is active, which under test, a release in progress.")
    sub.add_argument("--json", action="store_true", help="print JSON")
    command("unlock", unlock, "Clear the release lock that a crashed run left.")
    return parser


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "promote":
        smoke_test.require_url(parser, args)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(run_main(main))
