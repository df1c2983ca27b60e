"""Drive a blue-green release through the Pulumi CLI.

  promote COLOR       test COLOR through the gateway with the test cookie, then flip users to it
  rollback            send users back to the other color
  decommission COLOR  pulumi destroy a color that nobody is routed to
  status              both colors, which is active, which under test, a release in progress, config drift
  unlock              clear the release lock that a crashed run left

Every pulumi command is printed before it runs, so a person can follow or finish by hand, and has a
time limit. On a timeout, Ctrl-C or SIGTERM the running command gets SIGINT (the CLI's graceful
cancel) and a bounded grace before SIGKILL; then the routing is put back, the lock released, and
the state read back and printed with the commands that finish by hand.
Exit status: 0 done, 1 refused or failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional, Sequence

from components.contract import ColorOutputs, RoutingOutputs
from components.guards import Unroutable, unroutable
from components.settings import COLORS, Cookie, declared_defaults, other_color, parse_cookie

from . import ROOT, smoke_test  # ROOT: every pulumi command runs in the Pulumi project
from .cli import (EXIT_OK, SIGNALS, Failure, Interrupted, add_secret, log, printable, redact, result_line, run_main,
                  signal_name, step)

LOCK_TAG = "bluegreen:release"
# No preview: the routing program refuses a bad target before it declares anything, and the
# flip is one VirtualService; the update prints what it changes.
UP = ("up", "--yes", "--skip-preview")
UPDATES = ("up", "destroy")  # commands that change a stack and hold its lock in the backend
KILL_WAIT = 5.0  # seconds to wait for a killed command's pipes to close


# --- time limits ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limit:
    dest: str
    flag: str
    env: str
    default: float
    positive: bool  # 0 is refused (a time limit of 0 would stop every command)
    help: str


LIMIT_OPTIONS = (
    Limit("update_timeout", "--update-timeout", "BLUEGREEN_UPDATE_TIMEOUT", 1800.0, True,
          "time limit of each `pulumi up` and `pulumi destroy`"),
    Limit("command_timeout", "--command-timeout", "BLUEGREEN_COMMAND_TIMEOUT", 120.0, True,
          "time limit of every other pulumi command (config, stack tag, stack output)"),
    Limit("cancel_grace", "--cancel-grace", "BLUEGREEN_CANCEL_GRACE", 60.0, False,
          "how long a pulumi command sent SIGINT (on a timeout, Ctrl-C or SIGTERM) has to cancel gracefully "
          "before it is killed (SIGKILL)"),
    Limit("lock_settle", "--lock-settle", "BLUEGREEN_LOCK_SETTLE", 2.0, False,
          "pause between setting the release lock and reading it back, so that a run that set it at the same "
          "time is seen"),
)
LIMITS: dict[str, float] = {limit.dest: limit.default for limit in LIMIT_OPTIONS}


@dataclass
class Events:
    """What went wrong with pulumi commands in this run, for the report at its end."""

    stopped: list[str] = field(default_factory=list)  # commands stopped by a timeout or a signal
    maybe_locked: set[str] = field(default_factory=set)  # stacks a killed update may have left locked


EVENTS = Events()


# --- the Pulumi CLI ---------------------------------------------------------------------------------

class PulumiError(Failure):
    """A pulumi command failed; the message names it."""


def _stack_of(args: Sequence[str]) -> Optional[str]:
    return args[args.index("-s") + 1] if "-s" in args[:-1] else None


def _limit_of(args: Sequence[str]) -> Limit:
    return LIMIT_OPTIONS[0] if args and args[0] in UPDATES else LIMIT_OPTIONS[1]


def _popen(command: Sequence[str], stream: bool) -> subprocess.Popen:
    """Start a pulumi command. No stdin: a prompt in CI fails at once instead of hanging. A streamed
    command (up, destroy) shows its progress on stderr (fd 2), so that stdout keeps only this script's
    result; its errors are kept too, to say why it failed. Its own process group: a Ctrl-C at the
    terminal reaches this script only, which forwards one SIGINT (a second one would make the CLI
    stop at once, without its graceful cancel)."""
    return subprocess.Popen(command, cwd=ROOT, text=True, stdin=subprocess.DEVNULL,
                            stdout=2 if stream else subprocess.PIPE, stderr=subprocess.PIPE, process_group=0)


def _run(args: Sequence[str], stream: bool) -> subprocess.CompletedProcess:
    """Run one pulumi command within its time limit; a signal meanwhile is forwarded to it as SIGINT."""
    command = ("pulumi", *args)
    shown = shlex.join(command)
    if SIGNALS.abandon:
        raise Failure(f"`{shown}` not run: a second signal stopped the clean-up")
    limit = _limit_of(args)
    log(f"$ {shown}")
    before = len(SIGNALS.received)
    SIGNALS.deferred += 1
    try:
        try:
            child = _popen(command, stream)
        except FileNotFoundError:
            raise Failure("the pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/)") from None
        except OSError as error:
            raise Failure(f"cannot run the pulumi CLI ({error.strerror or error}): check that `pulumi version` "
                          "works here") from None
        SIGNALS.child, SIGNALS.forwarded_at = child, None
        if len(SIGNALS.received) > before:  # a signal came while it started
            SIGNALS.forward()
        try:
            out, err, timed_out, ending = _wait(child, LIMITS[limit.dest])
        finally:
            SIGNALS.child = None
    finally:
        SIGNALS.deferred -= 1
    if stream and err:
        sys.stderr.write(redact(err))
    code = child.returncode if child.returncode is not None else -signal.SIGKILL  # None: it would not die
    done = subprocess.CompletedProcess(command, code, out, err)
    stack = _stack_of(args)
    if args[0] in UPDATES and stack and (code < 0 or _says_locked(err)):
        EVENTS.maybe_locked.add(stack)
    if ending:
        EVENTS.stopped.append(shown)
    if len(SIGNALS.received) > before and not SIGNALS.quiet:
        raise Interrupted(SIGNALS.received[before], f"during `{shown}` ({ending or _exit(done)})")
    if timed_out:
        raise PulumiError(f"`{shown}` ran past its {LIMITS[limit.dest]:g}s limit ({limit.flag}, or ${limit.env}): "
                          f"{ending}")
    return done


def _wait(child: subprocess.Popen, limit: float) -> tuple[str, str, bool, str]:
    """stdout, stderr, whether it ran out of time, and how it was stopped ("" when it ended by itself)."""
    deadline = time.monotonic() + limit
    timed_out = False
    grace = LIMITS["cancel_grace"]
    while True:
        now = time.monotonic()
        if SIGNALS.forwarded_at is None and now >= deadline:
            timed_out = True
            SIGNALS.forward()
        sent = SIGNALS.forwarded_at
        asked = "sent it SIGINT" if timed_out else "forwarded to it as SIGINT"
        if sent is not None and now >= sent + grace:
            out, err = _kill(child)
            return out, err, timed_out, (f"{asked}; it did not stop within the {grace:g}s cancel grace "
                                         "(--cancel-grace), so it was killed (SIGKILL)")
        until = deadline if sent is None else sent + grace
        try:
            out, err = child.communicate(timeout=max(0.01, min(until - now, 0.5)))
        except subprocess.TimeoutExpired:
            continue
        if SIGNALS.forwarded_at is None:
            return out or "", err or "", False, ""
        return out or "", err or "", timed_out, f"{asked}; it stopped ({_exit_code(child.returncode)})"


def _kill(child: subprocess.Popen) -> tuple[str, str]:
    try:
        os.killpg(child.pid, signal.SIGKILL)  # its group: the CLI and the plugins it started
    except OSError:
        pass
    try:
        out, err = child.communicate(timeout=KILL_WAIT)
    except subprocess.TimeoutExpired:  # something outside the group still holds its pipes
        for pipe in (child.stdout, child.stderr):
            if pipe:
                pipe.close()
        try:
            child.wait(timeout=KILL_WAIT)
        except subprocess.TimeoutExpired:
            pass
        out, err = "", ""
    return out or "", err or ""


def _says_locked(stderr: str) -> bool:
    return "currently locked" in stderr or "Another update is currently in progress" in stderr


def _exit_code(code: int) -> str:
    return f"killed by {signal_name(-code)}" if code < 0 else f"exit {code}"


def _exit(done: subprocess.CompletedProcess) -> str:
    return _exit_code(done.returncode)


def _error(args: Sequence[str], done: subprocess.CompletedProcess) -> PulumiError:
    lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    why = printable((errors or lines)[-1], 300) if lines else "it printed no error"
    return PulumiError(f"`{shlex.join(('pulumi', *args))}` failed ({_exit(done)}): {why}")


def pulumi(*args: str, stream: bool = False) -> str:
    """Run a pulumi command; its stdout, or PulumiError."""
    done = _run(args, stream)
    if done.returncode != 0:
        raise _error(args, done)
    return done.stdout or ""


def pulumi_get(*args: str) -> Optional[str]:
    """`config get` or `stack tag get`: the value, or None when it is not set. The CLI says 'not found', or,
    for a key Pulumi.yaml declares, answers its default, empty for every optional key: empty is not set."""
    done = _run(args, stream=False)
    if done.returncode == 0:
        return (done.stdout.splitlines()[0] if done.stdout else "") or None
    if "not found for stack" in (done.stderr or ""):
        return None
    raise _error(args, done)


def outputs(stack: str) -> dict[str, Any]:
    """The stack's outputs: a JSON object, or a Failure that says what came instead."""
    text = pulumi("stack", "output", "--json", "-s", stack)
    command = f"`pulumi stack output --json -s {stack}`"
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):
        raise Failure(f"{command} did not print JSON ({len(text)} characters, starting "
                      f"{printable(text.strip(), 40)!r}): run it to see what it says") from None
    if not isinstance(values, dict):
        raise Failure(f"{command} printed a JSON {type(values).__name__}, not an object of outputs: run it to see "
                      "what it says")
    return values


def describe(error: BaseException) -> str:
    """An error for a message: a Failure says it all; anything else is a bug, named as one."""
    if isinstance(error, Failure):
        return str(error)
    return f"unexpected {type(error).__name__}: {printable(str(error), 200)}"


# --- what the stacks say: checked, since a wrong value must stop a release, not crash it -------------

_LABEL_VALUE = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def _is_color(value: Any) -> bool:
    return value in COLORS


def _is_release(value: Any) -> bool:
    return isinstance(value, str) and _LABEL_VALUE.fullmatch(value) is not None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1_000_000


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 253 and value.isprintable()


Spec = dict[str, tuple[Callable[[Any], bool], str]]  # output name -> (is it valid, what it should be)


def output_spec(contract: type, **checks: tuple[Callable[[Any], bool], str]) -> Spec:
    """The checks of a stack's outputs, given by field of its contract, in the order they are made."""
    return {contract.output(name): check for name, check in checks.items()}


COLOR_OUTPUTS = output_spec(
    ColorOutputs,
    color=(_is_color, "blue or green"),
    release=(_is_release, "a release label (letters, digits, '-', '_', '.'; at most 63)"),
    ready_replicas=(_is_count, "a whole number of pods"),
    replicas=(_is_count, "a whole number of pods"),
    deployment=(_is_name, "a Deployment name"),
)
ROUTING_OUTPUTS = output_spec(
    RoutingOutputs,
    active=(_is_color, "blue or green"),
    test=(_is_color, "blue or green"),
    active_release=(_is_release, "a release label"),
    test_release=(_is_release, "a release label"),
)
# What `status` shows of each color stack's outputs, under their output names.
STATUS_OUTPUTS = tuple(ColorOutputs.output(name) for name in ("release", "image", "ready_replicas", "replicas"))


def shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return printable(text, 60)


def output_problems(stack: str, values: dict[str, Any], spec: Spec) -> dict[str, str]:
    """Each output that is not what the contract says, with what is wrong with it."""
    return {key: f"stack {stack}'s output {key} is {shown(values[key])}, not {what}"
            for key, (valid, what) in spec.items() if values.get(key) is not None and not valid(values[key])}


def checked(stack: str, values: dict[str, Any], spec: Spec) -> dict[str, Any]:
    problems = output_problems(stack, values, spec)
    if problems:
        raise Failure(f"{next(iter(problems.values()))}: `pulumi stack output --json -s {stack}` shows it; "
                      f"`pulumi refresh -s {stack}` or `pulumi up -s {stack}` writes it again")
    return values


def color_stack(args: argparse.Namespace, color: str) -> str:
    return args.blue_stack if color == "blue" else args.green_stack


def read_color(args: argparse.Namespace, color: str, why: str = "") -> ColorOutputs:
    stack = color_stack(args, color)
    with step(f"read {color} (stack {stack}){why}"):
        return ColorOutputs.read(checked(stack, outputs(stack), COLOR_OUTPUTS))


def require_ready(args: argparse.Namespace, color: str, state: ColorOutputs) -> ColorOutputs:
    """Refuse a color that is not deployed, is another color, or has no ready pod (the routing stack's rule)."""
    stack = color_stack(args, color)
    problem = unroutable(state, color)
    if problem is Unroutable.NOT_DEPLOYED:
        raise Failure(f"{color} is not deployed: stack {stack} has no outputs. Deploy it first: "
                      f"pulumi up -s {stack}")
    if problem is Unroutable.OTHER_COLOR:
        raise Failure(f"stack {stack} deploys {state.color}, not {color}: give the {color} stack with "
                      f"--{color}-stack")
    if problem is Unroutable.NOT_READY:
        raise Failure(f"{color} (release {state.release}, stack {stack}) has no ready pod "
                      f"(readyReplicas {state.ready_replicas or 0}): make it ready, then pulumi up -s {stack}")
    return state


def read_routing(args: argparse.Namespace, required: bool = True) -> RoutingOutputs:
    with step(f"read routing (stack {args.routing_stack})"):
        state = RoutingOutputs.read(checked(args.routing_stack, outputs(args.routing_stack), ROUTING_OUTPUTS))
    if required and state.active is None:
        raise Failure(f"the routing stack {args.routing_stack} has no outputs: deploy it first: pulumi config set "
                      f"active blue -s {args.routing_stack} && pulumi up -s {args.routing_stack}")
    return state


def read_routing_config(stack: str) -> dict[str, Optional[str]]:
    """`active` and `test` as the routing config says: what the next `pulumi up -s routing` deploys."""
    return {key: pulumi_get("config", "get", key, "-s", stack) for key in ("active", "test")}


def drift(config: dict[str, Optional[str]], deployed: RoutingOutputs, stack: str) -> list[str]:
    """Where the routing config and what is deployed (the routing stack's outputs) differ."""
    lines = []
    if config["active"] != deployed.active:
        said = printable(config["active"] or "(unset)", 40)
        lines.append(f"the routing config says active {said}, but {deployed.active or 'nothing'} is deployed: the "
                     f"next `pulumi up -s {stack}` would send users to {said}")
    if config["test"] != deployed.test:
        now = f"a test route to {deployed.test}" if deployed.test else "no test route"
        lines.append(f"the routing config says test {printable(config['test'] or '(unset)', 40)}, but {now} is "
                     "deployed")
    return lines


def users_line(deployed: RoutingOutputs, stack: str) -> str:
    """Who is routed where, from the routing stack's (checked) outputs."""
    if deployed.active is None:
        return f"nobody is routed: the routing stack {stack} has no outputs"
    testers = (f"testers with the cookie on {deployed.test} (release {deployed.test_release or '?'})"
               if deployed.test else "no test route")
    return f"users are on {deployed.active} (release {deployed.active_release or '?'}), {testers}"


# --- the routing stack's config, changed through the CLI -----------------------------------------

class Routing:
    """The routing stack's `active` and `test`, changed through the CLI.

    Used as a context manager: any error inside (a failure, a timeout, a signal, a bug), once
    something changed, puts the routing back (users on the original color, no test route: the
    config first, then `pulumi up` if one was started) and says so in the error.
    """

    def __init__(self, stack: str, state: RoutingOutputs):
        self.stack = stack
        self.original = state.active
        self.config = {"active": state.active, "test": state.test}
        self.changed = False  # a config value was (perhaps) changed
        self.deployed = False  # a `pulumi up` was started: what is deployed may have changed
        self.restored: Optional[bool] = None  # None: not tried
        self.completed = False  # the change went to plan: its config is where users are meant to be

    def set(self, key: str, value: Optional[str]) -> None:
        self.changed = True
        self.config[key] = value  # taken as done even if the command fails or is stopped: restore undoes it anyway
        if value is None:
            pulumi("config", "rm", key, "-s", self.stack)
        else:
            pulumi("config", "set", key, value, "-s", self.stack)

    def up(self) -> None:
        self.deployed = True
        pulumi(*UP, "-s", self.stack, stream=True)

    def by_hand(self) -> str:
        steps = [f"pulumi config set active {self.original} -s {self.stack}", f"pulumi config rm test -s {self.stack}",
                 f"pulumi {' '.join(UP)} -s {self.stack}"]
        if self.stack in EVENTS.maybe_locked:
            steps.insert(0, f"pulumi cancel --yes -s {self.stack}")
        return " && ".join(steps)

    def restore(self) -> str:
        """Users back on the original color, no test route; what happened, for the error message."""
        with SIGNALS.cleaning():
            try:
                with step(f"restore routing: users on {self.original}, no test route"):
                    if self.config["active"] != self.original:
                        self.set("active", self.original)
                    if self.config["test"] is not None:
                        self.set("test", None)
                    if self.deployed:
                        self.up()
            except Exception as error:
                self.restored = False
                return (f"restoring the routing failed too ({describe(error)}); to put users back on {self.original} "
                        f"run: {self.by_hand()}")
        self.restored = True
        return f"routing restored: users on {self.original}, no test route"

    def __enter__(self) -> "Routing":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        self.completed = error is None
        if isinstance(error, Exception) and (self.changed or self.deployed):
            raise Failure(f"{describe(error)}; {self.restore()}") from None
        return False


# --- the release lock: a stack tag on the routing stack, so every machine sees it -------------------

def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return "_".join(f"{user}@{socket.gethostname()}".split())


def lock_value(color: str, release: Optional[str]) -> str:
    """color, release, who, when (UTC), and what makes it this run's only: the process id and a random part."""
    utc = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{color} {release or '-'} {who()} {utc} pid={os.getpid()} id={secrets.token_hex(4)}"


def _duration(seconds: float) -> str:
    minutes, hours = int(seconds // 60), int(seconds // 3600)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if hours < 2:
        return f"{minutes}m"
    return f"{hours}h{minutes % 60:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24}h"


@dataclass(frozen=True)
class LockInfo:
    """A lock's value read back: who holds it, since when, from which process (older values lack some)."""

    raw: str
    who: Optional[str]
    started: Optional[datetime]
    pid: Optional[int]

    @classmethod
    def parse(cls, raw: str) -> "LockInfo":
        words = raw.split()
        extra = dict(word.split("=", 1) for word in words[4:] if "=" in word)
        try:
            started = datetime.strptime(words[3], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except (IndexError, ValueError):
            started = None
        pid = extra.get("pid", "")
        return cls(raw, words[2] if len(words) > 2 and "@" in words[2] else None, started,
                   int(pid) if pid.isdigit() and len(pid) < 10 else None)

    def age(self) -> Optional[float]:
        return None if self.started is None else (datetime.now(timezone.utc) - self.started).total_seconds()

    def running_here(self) -> Optional[bool]:
        """Whether its process runs on this machine: True, False (gone), or None (another machine, or unknown)."""
        if self.pid is None or self.who is None or self.who.rpartition("@")[2] != who().rpartition("@")[2]:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True  # it exists, as another user's process
        return True

    def describe(self) -> str:
        parts = [f"held by {printable(self.who, 60)}" if self.who else "holder unknown"]
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        age = self.age()
        if age is not None:
            parts.append(f"for {_duration(max(age, 0.0))}")
        here = self.running_here()
        if here is False:
            parts.append("its process is no longer running on this machine: that run is gone")
        elif here:
            parts.append("its process is still running on this machine")
        return ", ".join(parts)


def settle(seconds: float) -> None:
    """The pause between setting the lock and reading it back."""
    time.sleep(seconds)


def read_lock(stack: str) -> Optional[str]:
    """The release in progress, as its lock says, or None."""
    return pulumi_get("stack", "tag", "get", LOCK_TAG, "-s", stack)


def in_progress(held: str) -> str:
    return (f"a release is in progress: {printable(held, 200)} ({LockInfo.parse(held).describe()}). Wait for it to "
            "finish; if that run crashed, check `python scripts/release.py status`, then "
            "`python scripts/release.py unlock`")


class ReleaseLock:
    """Held from start to end of a change; released at the end whatever happened, if it is still this run's."""

    def __init__(self, stack: str, color: str, release: Optional[str]):
        self.stack = stack
        self.value = lock_value(color, release)
        self.state = "free"  # free, held, released, not ours, left (may still be set: for unlock)

    def __enter__(self) -> "ReleaseLock":
        with step("take the release lock"):
            held = read_lock(self.stack)
            if held:
                raise Failure(in_progress(held))
            try:
                pulumi("stack", "tag", "set", LOCK_TAG, self.value, "-s", self.stack)
                if LIMITS["lock_settle"]:
                    settle(LIMITS["lock_settle"])  # a run that set it at the same time shows now
                held = read_lock(self.stack)
            except Exception as error:
                raise Failure(f"{describe(error)}; {self._give_back()}") from None
            if held != self.value:  # refuse on any doubt, and never remove another run's lock
                if held:
                    raise Failure(in_progress(held))
                raise Failure("the release lock read back as unset right after this run set it: another run or a "
                              "person removed it, or the backend answered late, so it cannot be trusted now; "
                              f"{self._give_back()}. Check `python scripts/release.py status`, then run again")
        self.state = "held"
        return self

    def _give_back(self) -> str:
        """After an error while taking the lock: remove it if it is this run's."""
        with SIGNALS.cleaning():
            try:
                held = read_lock(self.stack)
                if held is None:
                    return "the release lock is not set"
                if held != self.value:
                    return "the release lock is another run's now: left as it is"
                pulumi("stack", "tag", "rm", LOCK_TAG, "-s", self.stack)
                return "the release lock was removed again"
            except Exception as error:
                self.state = "left"
                return (f"the release lock may still hold this run's value ({self.value}): check `python "
                        f"scripts/release.py status`, then `python scripts/release.py unlock` ({describe(error)})")

    def __exit__(self, kind, error, traceback) -> bool:
        with SIGNALS.cleaning():
            try:
                with step("release the lock"):
                    held = read_lock(self.stack)
                    if held == self.value:
                        pulumi("stack", "tag", "rm", LOCK_TAG, "-s", self.stack)
                        self.state = "released"
                    else:
                        self.state = "not ours"
                        log(f"the release lock is now {printable(held or '(unset)', 200)!r}, not this run's: left as "
                            "it is")
            except Exception as failure:
                self.state = "left"
                message = (f"the release lock stays set ({self.value}): {describe(failure)}; when no release runs, "
                           "`python scripts/release.py unlock` clears it")
                if error is None:
                    raise Failure(message) from None
                log(f"error: {message}")
        return False


# --- the report at the end of a promote or rollback that did not go to plan ------------------------

@dataclass
class Run:
    stack: str
    lock: Optional[ReleaseLock] = None
    routing: Optional[Routing] = None

    def needs_report(self) -> bool:
        return bool((self.routing and (self.routing.changed or self.routing.deployed))
                    or (self.lock and self.lock.state == "left") or SIGNALS.received or EVENTS.stopped)


@contextmanager
def reporting(args: argparse.Namespace) -> Iterator[Run]:
    """On an error, once the routing changed or a command was stopped: the state users are in, read
    back from the routing stack (not assumed), and the commands that finish by hand."""
    run = Run(args.routing_stack)
    try:
        yield run
    except Exception:
        if run.needs_report():
            with SIGNALS.cleaning():
                report(run)
        raise


def report(run: Run) -> None:
    stack = run.stack
    deployed: Optional[RoutingOutputs] = None
    config: Optional[dict[str, Optional[str]]] = None
    if SIGNALS.abandon:
        log("state now: not read back (a second signal stopped the clean-up): `python scripts/release.py status` "
            "reads it")
    else:
        try:
            values = checked(stack, outputs(stack), ROUTING_OUTPUTS)
            deployed = RoutingOutputs.read(values)
            config = read_routing_config(stack)
        except Exception as error:
            log(f"state now: could not be read back ({describe(error)})")
    if deployed is not None:
        log(f"state now, read back from the routing stack's outputs: {users_line(deployed, stack)}")
        for line in drift(config, deployed, stack) if config is not None else ():
            log(f"  {line}")
    if run.routing is not None:  # where users are meant to be: where they were, unless the change went to plan
        target = run.routing.config["active"] if run.routing.completed else run.routing.original
    else:
        target = deployed.active if deployed else None
    commands = [f"pulumi cancel --yes -s {name}   # only if no pulumi command runs on it: a killed update left "
                "its lock" for name in sorted(EVENTS.maybe_locked)]
    if target:
        if config is None or config["active"] != target:
            commands.append(f"pulumi config set active {target} -s {stack}")
        if config is None or config["test"] is not None:
            commands.append(f"pulumi config rm test -s {stack}")
        if (deployed is None or deployed.active != target or deployed.test is not None
                or (run.routing is not None and run.routing.restored is False)):  # deployed may not be as it says
            commands.append(f"pulumi {' '.join(UP)} -s {stack}   # users on {target}, no test route")
    if run.lock is not None and run.lock.state == "left":
        commands.append("python scripts/release.py unlock")
    if not commands:
        log("nothing is left to finish by hand")
        return
    log("to finish by hand:")
    for command in [*commands, "python scripts/release.py status"]:
        log(f"  {command}")


# --- the test cookie ----------------------------------------------------------------------------------

def read_test_cookie(args: argparse.Namespace) -> tuple[Cookie, str]:
    """The cookie that reaches the test color, and how to show it: a token is never shown."""
    if args.cookie:
        add_secret(args.cookie.value)
        return args.cookie, f"{args.cookie.name}=[secret]"
    stack = args.routing_stack
    with step("read the test cookie"):
        text = (pulumi_get("config", "get", "testCookie", "-s", stack)
                or declared_defaults(ROOT / "Pulumi.yaml")["testCookie"])
        cookie = parse_cookie(text, lambda problem: Failure(f"testCookie {printable(text, 60)!r} on stack {stack}: "
                                                            f"{problem}"))
        token = os.environ.get("BLUEGREEN_TEST_TOKEN") or pulumi_get("config", "get", "testToken", "-s", stack)
    if not token:
        return cookie, str(cookie)
    add_secret(token)
    return (parse_cookie(f"{cookie.name}={token}",
                         lambda problem: Failure(f"the test token cannot be sent as a cookie: {problem}")),
            f"{cookie.name}=[secret]")


# --- subcommands --------------------------------------------------------------------------------------

def smoke(args: argparse.Namespace, title: str, cookie: Optional[Cookie], color: str, suites: list) -> str:
    """Run the checks through the gateway, expecting `color`; the failed checks, or "" when all passed."""
    start = time.monotonic()
    try:
        results = smoke_test.run_checks(args.url, args.check, cookie, color, args.timeout, args.settle,
                                        verify=not args.insecure, **smoke_test.check_options(args))
    except smoke_test.ChecksInterrupted as stopped:
        suites.append((title, stopped.results))
        raise
    for line in smoke_test.result_lines(results):
        log(f"  {line}")
    failed = smoke_test.failures(results)
    log(result_line(False if failed else None, title, time.monotonic() - start,
                    f"{sum(r.passed for r in results)} of {len(results)} checks passed"))
    suites.append((title, results))
    return failed


def write_junit(args: argparse.Namespace, suites: list, raising: bool) -> None:
    if not (args.junit and suites):
        return
    try:
        smoke_test.write_junit(args.junit, suites)
    except Failure as failure:
        if raising:
            raise
        log(f"error: {failure}")


def promote(args: argparse.Namespace) -> int:
    color = args.color
    suites: list = []
    try:
        with reporting(args) as run:
            cookie, shown_cookie = read_test_cookie(args)
            pinned = require_ready(args, color, read_color(args, color)).release
            run.lock = ReleaseLock(args.routing_stack, color, pinned)
            with run.lock:
                state = read_routing(args)
                if state.active == color:
                    raise Failure(f"{color} is already active (release {state.active_release}): nothing to promote. "
                                  f"A new release goes to the idle color, {other_color(color)}")
                users = state.active
                run.routing = Routing(args.routing_stack, state)
                with run.routing as routing:
                    with step(f"route testers to {color}"):
                        routing.set("test", color)
                        routing.up()
                    failed = smoke(args, f"smoke tests of {color} through the test route (cookie {shown_cookie})",
                                   cookie, color, suites)
                    if failed:
                        raise Failure(f"smoke tests of {color} failed through the test route, so users stay on "
                                      f"{users}: {failed}")
                    now = read_color(args, color, f": is it still release {pinned}?")
                    if now.release != pinned:
                        raise Failure(f"{color}'s release changed from {pinned} to {now.release} while it was being "
                                      f"tested, so users stay on {users}; promote {color} again to test {now.release}")
                    require_ready(args, color, now)
                    with step(f"flip users to {color} (release {pinned})"):
                        routing.set("active", color)
                        routing.set("test", None)
                        routing.up()
                    failed = smoke(args, f"checks of {color} through the default route", None, color, suites)
                    if failed:
                        raise Failure(f"the default route failed after the flip to {color}: {failed}")
    except BaseException:
        write_junit(args, suites, raising=False)
        raise
    write_junit(args, suites, raising=True)
    log(f"{color} (release {pinned}) is live. {users} still runs: `python scripts/release.py rollback` sends "
        f"users back; when sure, `python scripts/release.py decommission {users}`")
    return EXIT_OK


def rollback(args: argparse.Namespace) -> int:
    with reporting(args) as run:
        state = read_routing(args)
        back = other_color(state.active)
        target = require_ready(args, back, read_color(args, back))
        run.lock = ReleaseLock(args.routing_stack, back, target.release)
        with run.lock:
            state = read_routing(args)  # again, under the lock: a release may have finished meanwhile
            if state.active == back:
                raise Failure(f"users are already on {back}: the routing changed since this rollback started; "
                              f"`python scripts/release.py status` shows it")
            run.routing = Routing(args.routing_stack, state)
            with run.routing as routing, step(f"send users back to {back}"):
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
            except Failure as error:
                cancel = f"pulumi cancel --yes -s {stack} && " if stack in EVENTS.maybe_locked else ""
                raise Failure(f"{error}. Users are not affected (nobody is routed to {color}); run it again: "
                              f"{cancel}pulumi destroy --yes -s {stack}") from None
    return EXIT_OK


def _tolerant(stack: str, spec: Spec, problems: list[str]) -> dict[str, Any]:
    """A stack's outputs for `status`: a value that is not what it should be is shown as unknown, and listed."""
    try:
        values = outputs(stack)
    except PulumiError:
        raise
    except Failure as failure:
        problems.append(str(failure))
        return {}
    found = output_problems(stack, values, spec)
    problems.extend(found.values())
    return {key: value for key, value in values.items() if key not in found}


def unfinished(stack: str) -> list[str]:
    """The operations a stopped update of `stack` left pending (from its checkpoint): while there are
    any, its outputs may not be what the cluster holds."""
    text = pulumi("stack", "export", "-s", stack)
    try:
        pending = json.loads(text)["deployment"].get("pending_operations") or []
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise Failure(f"`pulumi stack export -s {stack}` did not print a checkpoint: run it to see what it says") from None
    return [f"{printable(str(op.get('type')), 20)} of {printable(str(op.get('resource', {}).get('urn')), 200)}"
            for op in pending if isinstance(op, dict) and isinstance(op.get("resource"), dict)]


def _unfinished_problem(stack: str, problems: list[str]) -> None:
    try:
        pending = unfinished(stack)
    except Failure as failure:
        problems.append(str(failure))
        return
    if pending:
        problems.append(f"stack {stack}'s last update was stopped half-way ({'; '.join(pending)} never finished), "
                        f"so what it says here may not be what the cluster holds: `pulumi refresh --yes -s {stack}` "
                        f"reads the cluster back (first `pulumi cancel --yes -s {stack}` if its lock was left too)")


def status(args: argparse.Namespace) -> int:
    problems: list[str] = []
    routing = _tolerant(args.routing_stack, ROUTING_OUTPUTS, problems)
    colors = {color: _tolerant(color_stack(args, color), COLOR_OUTPUTS, problems) for color in COLORS}
    for stack in (args.routing_stack, *(color_stack(args, color) for color in COLORS)):
        _unfinished_problem(stack, problems)
    config = read_routing_config(args.routing_stack)
    held = read_lock(args.routing_stack)
    deployed = RoutingOutputs.read(routing)
    differences = drift(config, deployed, args.routing_stack)
    lock = LockInfo.parse(held) if held else None
    report_ = {
        "active": deployed.active,
        "test": deployed.test,
        "releaseInProgress": held,
        "lock": None if lock is None else {"value": held, "holder": lock.who, "pid": lock.pid,
                                           "ageSeconds": None if lock.age() is None else round(lock.age()),
                                           "runningHere": lock.running_here()},
        "config": config,
        "configDiffers": differences,
        "problems": problems,
        "colors": {color: {"stack": color_stack(args, color), "deployed": bool(values),
                           **{key: values.get(key) for key in STATUS_OUTPUTS}}
                   for color, values in colors.items()},
    }
    if args.json:
        print(json.dumps(report_, indent=2))
        return EXIT_OK
    rows = [("COLOR", "STACK", "ROLE", "RELEASE", "READY", "IMAGE")]
    for color, values in report_["colors"].items():
        role = ("active" if color == deployed.active else "test" if color == deployed.test
                else "idle" if values["deployed"] else "not deployed")
        said = ColorOutputs.read(values)
        ready = f"{said.ready_replicas}/{said.replicas}" if values["deployed"] else "-"
        rows.append((color, printable(values["stack"], 60), role, printable(str(said.release or "-"), 80),
                     printable(ready, 40), printable(str(said.image or "-"), 120)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"release in progress: {printable(held, 200)} ({lock.describe()})" if lock else "release in progress: none")
    if differences:
        for line in differences:
            print(f"config differs: {line}")
    else:
        print("routing config: as deployed")
    for problem in problems:
        print(f"problem: {problem}")
    return EXIT_OK


def unlock(args: argparse.Namespace) -> int:
    stack = args.routing_stack
    held = read_lock(stack)
    if held:
        info = LockInfo.parse(held)
        if info.running_here() and not args.force:
            raise Failure(f"the release lock is held by a run still going on this machine: {printable(held, 200)} "
                          f"(pid {info.pid}). Wait for it, or stop it with `kill -INT {info.pid}` (it puts the routing "
                          "back and releases the lock itself); --force removes the lock anyway")
        pulumi("stack", "tag", "rm", LOCK_TAG, "-s", stack)
        log(f"removed the release lock ({printable(held, 200)}; {info.describe()})")
    else:
        log("no release lock is held")
    advise(args)
    return EXIT_OK


def advise(args: argparse.Namespace) -> None:
    """After a crash: the state users are in, read back, and the commands that make config and deployment
    agree without moving users (and remove a test route a crashed promote left)."""
    stack = args.routing_stack
    with step(f"read routing (stack {stack})"):
        values = checked(stack, outputs(stack), ROUTING_OUTPUTS)
    deployed = RoutingOutputs.read(values)
    config = read_routing_config(stack)
    log(f"state now, read back from the routing stack's outputs: {users_line(deployed, stack)}")
    for line in drift(config, deployed, stack):
        log(f"  {line}")
    commands = []
    if deployed.active and config["active"] != deployed.active:
        commands.append(f"pulumi config set active {deployed.active} -s {stack}   # keeps users on {deployed.active}")
    if config["test"] is not None or deployed.test:
        commands.append(f"pulumi config rm test -s {stack}")
    if deployed.test:
        commands.append(f"pulumi {' '.join(UP)} -s {stack}   # removes the test route to {deployed.test}; users stay "
                        f"on {deployed.active}")
    if not commands:
        log("the routing config is as deployed: nothing to put back. If `pulumi up` says the stack is locked and no "
            f"pulumi command runs on it: pulumi cancel --yes -s {stack}")
        return
    log("to finish by hand (if `pulumi up` says the stack is locked and no pulumi command runs on it, first "
        f"pulumi cancel --yes -s {stack}):")
    for command in commands:
        log(f"  {command}")


# --- command line -------------------------------------------------------------------------------------

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
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0],
                                     epilog="Exit status: 0 done, 1 refused or failed, 2 bad usage.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    promote_parser = command("promote", promote, "Test COLOR through the gateway with the test cookie, then flip "
                                                 "users to it; on any failure users stay on (or go back to) the "
                                                 "other color.")
    promote_parser.add_argument("color", choices=COLORS)
    smoke_test.add_gateway_arguments(promote_parser, timeout=smoke_test.DEFAULT_TIMEOUT, settle=10.0)
    promote_parser.add_argument("--cookie", type=smoke_test.cookie_arg, metavar="NAME=VALUE",
                                help="the cookie that reaches the test color (default: the routing stack's "
                                     "testCookie, with the value $BLUEGREEN_TEST_TOKEN or its testToken when one is "
                                     "set)")
    command("rollback", rollback, "Send users back to the other color (refused unless it is deployed and ready).")
    sub = command("decommission", decommission, "pulumi destroy COLOR's stack (refused while COLOR is active "
                                                "or under test).")
    sub.add_argument("color", choices=COLORS)
    sub = command("status", status, "Both colors, which is active, which under test, a release in progress, and "
                                    "where the routing config differs from what is deployed.")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub = command("unlock", unlock, "Clear the release lock that a crashed run left, then say what is left to put "
                                    "back.")
    sub.add_argument("--force", action="store_true", help="remove the lock even when its run still runs on this "
                                                          "machine")
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    LIMITS.update({limit.dest: getattr(args, limit.dest) for limit in LIMIT_OPTIONS})
    EVENTS.stopped.clear()
    EVENTS.maybe_locked.clear()
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(run_main(main))
