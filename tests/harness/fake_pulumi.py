"""A stand-in `pulumi` executable for the release.py tests (release_world.py puts it first on PATH).

Run as `pulumi`, it keeps every stack's config, outputs and tags in one file (named by
$FAKE_PULUMI_STATE, in marshal's format: no import to read it), records every call, and implements the few commands release.py runs:
`stack output --json`, `stack export`, `config get|set|rm`, `stack tag get|set|rm`, `up` and `destroy`.
`up` on the routing stack does what the real program does there: it refuses a target color that
is not deployed and ready, then recomputes the routing outputs from `active`/`test` and the color
stacks' outputs. Hooks make a given command fail, or change the state after it ran, so that the
tests can stage a failure half-way or another machine's action; the fault hooks (`_fault`) make it
hang, die, or print something malformed. Only the standard library and the outputs' contract
(components/contract.py, standard library only too): it starts once per command, under `python -IS`, so
what it imports counts. The signal module and json import enum and re: 40 ms of CPU a command on 2 slow cores,
23 ms without them. So it takes signal's C core, keeps its state in marshal's format, and imports json only
for the commands that print JSON.
"""

from __future__ import annotations

import _signal as signal  # signal's C core (see the docstring)
import marshal
import os
import sys
import time

ERROR_EXIT = 255  # what the Pulumi CLI exits with on an error
FAULTS = ("hang", "kill", "stdout")  # hook kinds handled by _fault
# What the CLI says when an update finds the stack's lock held (here: left by a killed update).
LOCKED = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
          "delete the lock file with `pulumi cancel`.")


class _Exit(Exception):
    def __init__(self, code: int, message: str = ""):
        self.code, self.message = code, message


def _merge(into: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def routing_up(state: dict, stack: dict) -> None:
    # Imported here: only this command needs the contract, and the others start faster without dataclasses.
    from components.contract import ColorOutputs, RoutingOutputs
    config = stack["config"]
    active, test = config.get("active"), config.get("test")
    if test == active:
        raise _Exit(ERROR_EXIT, f"error: bluegreen:test is {test!r}, but it is also the active color")
    releases = {}
    for key, color in (("active", active), ("test", test)):
        if not color:
            continue
        target = ColorOutputs.read(state["stacks"].get(config.get(f"{color}Stack", color), {}).get("outputs", {}))
        if target.color != color or not target.ready_replicas:
            raise _Exit(ERROR_EXIT, f"error: bluegreen:{key} is {color!r}, but {color} has no ready pods")
        releases[key] = target.release
    outputs = RoutingOutputs(active=active, test=test or None, active_release=releases["active"],
                             test_release=releases.get("test")).exported()
    stack["outputs"] = {name: value for name, value in outputs.items() if value is not None}  # Pulumi leaves nulls out
    cookie = config.get("testCookie", state["defaults"]["testCookie"])
    token = config.get("testToken")
    stack["deployed_cookie"] = f"{cookie.partition('=')[0]}={token}" if token else cookie


def _command(state: dict, args: list[str]) -> str:
    """Run one command on the state; its stdout, or _Exit."""
    if "-s" not in args:
        raise _Exit(2, "fake pulumi: every command needs -s STACK")
    at = args.index("-s")
    name, words = args[at + 1], args[:at] + args[at + 2:]
    if name not in state["stacks"]:
        raise _Exit(ERROR_EXIT, f"error: no stack named '{name}' found")
    stack = state["stacks"][name]
    if words[:1] in (["up"], ["destroy"]) and stack.get("locked_by"):
        raise _Exit(ERROR_EXIT, f"{LOCKED}\n  {name}: created by fake@localhost (pid {stack['locked_by']})")
    match words:
        case ["stack", "output", "--json"]:
            return _json(stack["outputs"], indent=4)
        case ["stack", "export"]:  # the checkpoint, as far as release.py reads it
            return _json({"version": 3, "deployment": {
                "manifest": {}, "resources": [], "pending_operations": stack.get("pending_operations", [])}})
        case ["config", "get", key]:
            value = stack["config"].get(key, state["defaults"].get(key))
            if value is None:
                raise _Exit(ERROR_EXIT, f"error: configuration key 'bluegreen:{key}' not found for stack '{name}'")
            return f"{value}\n"
        case ["config", "set", key, value]:
            stack["config"][key] = value
        case ["config", "rm", key]:
            stack["config"].pop(key, None)
        case ["stack", "tag", "get", tag]:
            if tag not in stack["tags"]:
                raise _Exit(ERROR_EXIT, f"error: stack tag '{tag}' not found for stack '{name}'")
            return f"{stack['tags'][tag]}\n"
        case ["stack", "tag", "set", tag, value]:
            stack["tags"][tag] = value
        case ["stack", "tag", "rm", tag]:
            stack["tags"].pop(tag, None)
        case ["up", "--yes", "--skip-preview"]:
            if "active" in stack["config"]:
                routing_up(state, stack)
            return f"Updating ({name}):\n    pulumi:pulumi:Stack bluegreen-{name}\nUpdate complete.\n"
        case ["destroy", "--yes"]:
            stack["outputs"] = {}
            return f"Destroying ({name}):\nThe resources in the stack have been deleted.\n"
        case ["cancel", "--yes"]:
            stack.pop("locked_by", None)
            return f"The currently running update for '{name}' has been canceled!\n"
        case _:
            raise _Exit(2, f"fake pulumi: unsupported command: {' '.join(args)}")
    return ""


def _json(value, **options) -> str:
    import json  # here, for the commands that print JSON (see the docstring)

    return json.dumps(value, **options) + "\n"


def load(path: str) -> dict:
    with open(path, "rb") as file:
        return marshal.load(file)


def save(path: str, state: dict) -> None:
    """Replace the file whole: the gateway reads it while a command runs."""
    with open(f"{path}.tmp", "wb") as file:
        marshal.dump(state, file)
    os.replace(f"{path}.tmp", path)


def _fault(path: str, state: dict, args: list[str], hook: dict) -> int:
    """The fault hook kinds, a CLI that misbehaves:

    {"hang": seconds}: waits that long before running the command (with "after": true, after it),
        as a CLI stuck on its backend. SIGINT cancels it as the CLI does (exit 255, nothing more
        done), unless "interrupt": "ignore": then only SIGKILL ends it. An `up` or `destroy` holds
        the stack's lock while it hangs; killed, it leaves it (`pulumi cancel` clears it).
        state["hanging"] says, while it hangs, that it does (and its pid).
    {"kill": true}: dies by SIGKILL before the command (with "after": true, after it); an `up` or
        `destroy` leaves the stack's lock (with "lock": false, it dies before it took it).
    {"stdout": text}: runs the command, and prints `text` instead of its output.
    """
    name = args[args.index("-s") + 1] if "-s" in args[:-1] else None
    updating = args[0] in ("up", "destroy") and name in state["stacks"]
    out = ""
    if hook.get("after") or "stdout" in hook:
        try:
            out = _command(state, args)
            _merge(state["stacks"], hook.get("patch", {}))
        except _Exit as stop:
            save(path, state)
            sys.stderr.write(stop.message + "\n")
            return stop.code
        if "stdout" in hook:
            save(path, state)
            sys.stdout.write(hook["stdout"])
            return 0
    if updating and hook.get("lock", True):  # "lock": false, killed before it took the stack's lock
        state["stacks"][name]["locked_by"] = os.getpid()
    if "kill" in hook:
        save(path, state)
        os.kill(os.getpid(), signal.SIGKILL)
    if hook.get("interrupt") == "ignore":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    cancelled = False
    try:
        state["hanging"] = {"pid": os.getpid(), "args": args}
        save(path, state)
        time.sleep(hook["hang"])
    except KeyboardInterrupt:
        cancelled = True
    state = load(path)  # other commands may have run meanwhile
    state.pop("hanging", None)
    if updating:
        state["stacks"][name].pop("locked_by", None)
    code, message = 0, ""
    if cancelled:
        out, code, message = "", ERROR_EXIT, f"error: {'update ' if updating else ''}canceled"
    elif not hook.get("after"):
        try:
            out = _command(state, args)
            _merge(state["stacks"], hook.get("patch", {}))
        except _Exit as stop:
            out, code, message = "", stop.code, stop.message
    return _finish(path, state, out, code, message)


def _finish(path: str, state: dict, out: str, code: int, message: str) -> int:
    """Save the state, print what the command printed, and give its exit code."""
    save(path, state)
    sys.stdout.write(out)
    if message:
        sys.stderr.write(message + "\n")
    return code


def _leave(path: str, state: dict, hook: dict) -> None:
    """{"leave": "group" | "session"}, with any other hook: first starts `sleep 300` in a process group of its
    own (as the CLI starts its plugins: Go's Setpgid) or in a session of its own (a process that daemonizes),
    which outlives this command; with "pipes": true it keeps this command's stdout and stderr (a plugin that
    inherited them). state["left"] lists their pids."""
    pid = os.fork()
    if pid == 0:  # the child: no Python clean-up, only the exec
        try:
            os.setsid() if hook["leave"] == "session" else os.setpgid(0, 0)
            if not hook.get("pipes"):
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
            os.execvp("sleep", ["sleep", "300"])
        finally:
            os._exit(127)
    state.setdefault("left", []).append(pid)
    save(path, state)


def main(args: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on SIGINT cancels, as the CLI's does
    path = os.environ["FAKE_PULUMI_STATE"]
    state = load(path)
    state["calls"].append(args)
    line = " ".join(args)
    hook = next((h for h in state["hooks"] if line.startswith(h["when"])), None)
    if hook is not None:
        if hook.get("skip", 0):
            hook["skip"] -= 1
            hook = None
        else:
            state["hooks"].remove(hook)
    if hook is not None and "leave" in hook:
        _leave(path, state, hook)
    if hook is not None and any(kind in hook for kind in FAULTS):
        return _fault(path, state, args, hook)
    try:
        if hook is not None and "fail" in hook:
            raise _Exit(ERROR_EXIT, hook["fail"])
        out = _command(state, args)
        if hook is not None:
            _merge(state["stacks"], hook["patch"])
        code, message = 0, ""
    except _Exit as stop:
        out, code, message = "", stop.code, stop.message
    return _finish(path, state, out, code, message)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
