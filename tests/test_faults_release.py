"""The fault matrix, release.py's half: faults injected into release.py (smoke_test.py's half is
tests/test_faults_smoke.py).

release.py runs against the stand-in pulumi (release_world), which is made to exit non-zero at each
step of a promote and of a rollback, hang, die by SIGKILL, print malformed JSON or outputs of the
wrong type, find the release record held by another run or its API server unreachable, or leave processes
behind; release.py itself gets SIGINT or SIGTERM mid-`up` (run as a subprocess).

Every case asserts that the run ends in a safe state: exit 1, no traceback, the test token nowhere in what is
printed, users on a ready color as the stand-in's routing outputs say, the release record given back or the way
to resume or abort it named, the state read back and printed (with the commands that finish by hand) once
something changed. Each case records what it tried and how it ended (the `fault` property); tests/conftest.py
prints the counts at the end of the session.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

from harness.loopback import ROOT, serve
from harness.release_world import World, color_outputs, in_boundary, mostly_in_process
from components.routes import COLOR_HEADER
from bluegreen_tools import release
from bluegreen_tools.release import reaper, runner as release_runner

UP = "up --yes --skip-preview -s routing"
TOKEN = "tok-5ecret-0f1e2d3c4b5a6978"  # the routing stack's testToken: never printed
RELEASE_PY = ROOT / "scripts" / "release.py"
SMOKE_PY = ROOT / "scripts" / "smoke_test.py"

# The pulumi commands of a promote of green and of a rollback that go to plan, in order.
# (The release record's Lease goes through kubectl: its faults are the record cases below.)
PROMOTE = ["config get testCookie -s routing", "config get testToken -s routing", "stack output --json -s green",
           "stack output --json -s routing", "stack output --json -s routing", "config set test green -s routing",
           UP, "stack output --json -s green", "config set active green -s routing", "config rm test -s routing", UP]
ROLLBACK = ["stack output --json -s routing", "stack output --json -s blue", "stack output --json -s routing",
            "config set active blue -s routing", UP]
CHANGES = ("config set active", "config set test", "config rm test", "up ")


def at_step(calls: list[str], index: int, **fault: Any) -> dict[str, Any]:
    """A hook on the index-th command of `calls`: the command's text, and how many like it run before."""
    when = calls[index]
    return {"when": when, "skip": sum(c.startswith(when) for c in calls[:index]), **fault}


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # the kind of fault, a row of the counts
    command: str  # promote or rollback
    hooks: tuple[dict, ...] = ()
    env: dict = field(default_factory=dict)
    held: Optional[dict] = None  # the release record another run holds when this one starts (World.hold_record)


def _name(calls: list[str], index: int) -> str:
    return f"{index:02d}-" + re.sub(r"[^a-z]+", "-", calls[index].split(" -s ")[0]).strip("-")


def _green(**change: Any) -> str:
    return json.dumps({**color_outputs("green", "v2"), **change})


DEEP = "[" * 50_000 + "]" * 50_000
# The time limit of a hanging command: long enough for the stand-in to start, as each case waits it out.
QUICK = {"BLUEGREEN_COMMAND_TIMEOUT": "0.5", "BLUEGREEN_UPDATE_TIMEOUT": "0.5"}

CASES: list[Case] = []
for _i in range(len(PROMOTE)):
    CASES.append(Case(f"promote-exit-{_name(PROMOTE, _i)}", "a pulumi command exits non-zero", "promote",
                      (at_step(PROMOTE, _i, fail="error: [500] Internal Server Error: the backend failed"),)))
for _i in range(len(ROLLBACK)):
    CASES.append(Case(f"rollback-exit-{_name(ROLLBACK, _i)}", "a pulumi command exits non-zero", "rollback",
                      (at_step(ROLLBACK, _i, fail="error: [500] Internal Server Error: the backend failed"),)))
for _i in (0, 2, 3, 4, 5, 6, 7, 10):
    CASES.append(Case(f"promote-hang-{_name(PROMOTE, _i)}", "a pulumi command hangs (time limit)", "promote",
                      (at_step(PROMOTE, _i, hang=30),), QUICK))
CASES.append(Case("rollback-hang-up", "a pulumi command hangs (time limit)", "rollback",
                  (at_step(ROLLBACK, 4, hang=30),), QUICK))
CASES.append(Case("promote-hang-up-ignoring-sigint", "a pulumi command hangs (time limit)", "promote",
                  (at_step(PROMOTE, 6, hang=30, interrupt="ignore"),), QUICK))
for _i in (2, 4, 6, 10):
    CASES.append(Case(f"promote-killed-{_name(PROMOTE, _i)}", "a pulumi command is killed (SIGKILL)", "promote",
                      (at_step(PROMOTE, _i, kill=True),)))
CASES.append(Case("promote-killed-after-the-flip", "a pulumi command is killed (SIGKILL)", "promote",
                  (at_step(PROMOTE, 10, kill=True, after=True),)))
CASES.append(Case("rollback-killed-up", "a pulumi command is killed (SIGKILL)", "rollback",
                  (at_step(ROLLBACK, 4, kill=True),)))
for _label, _index, _text in [
    ("green-not-json", 2, "a maintenance page, not JSON"),
    ("green-a-list", 2, "[1, 2]"),
    ("green-null", 2, "null"),
    ("green-ready-a-word", 2, _green(readyReplicas="two")),
    ("green-ready-a-boolean", 2, _green(readyReplicas=True)),
    ("green-ready-negative", 2, _green(readyReplicas=-1)),
    ("green-ready-a-fraction", 2, _green(readyReplicas=1.5)),
    ("green-release-with-escapes", 2, _green(release="v2\u001b[2J")),
    ("green-color-purple", 2, _green(color="purple")),
    ("green-deeply-nested", 2, DEEP),
    ("routing-active-purple", 3, json.dumps({"active": "purple", "activeRelease": "v1"})),
    ("routing-active-a-number", 4, json.dumps({"active": 7})),
    ("routing-test-a-list", 3, json.dumps({"active": "blue", "activeRelease": "v1", "test": ["green"]})),
    ("routing-html", 4, "<html>502 Bad Gateway</html>"),
    ("routing-deeply-nested", 3, '{"active": ' + DEEP + "}"),
    ("pin-ready-a-string", 7, _green(readyReplicas="2")),
    ("pin-not-json", 7, "{'color': 'green'}"),
    ("pin-release-an-object", 7, _green(release={"v": 2})),
]:
    CASES.append(Case(f"promote-output-{_label}", "pulumi prints malformed or wrong-typed outputs", "promote",
                      (at_step(PROMOTE, _index, stdout=_text),)))
for _label, _index, _text in [("routing-active-red", 0, json.dumps({"active": "red"})),
                              ("blue-ready-nan", 1, '{"color": "blue", "release": "v1", "readyReplicas": NaN}'),
                              ("routing-again-garbage", 2, "\u001b]0;owned\u0007")]:
    CASES.append(Case(f"rollback-output-{_label}", "pulumi prints malformed or wrong-typed outputs", "rollback",
                      (at_step(ROLLBACK, _index, stdout=_text),)))
CASES += [
    Case("record-held-by-a-running-release", "the release record is held, or its API server is away", "promote",
         held={"color": "green", "release": "v2", "phase": "testing", "who": "bob@ci-2"}),
    Case("record-held-by-a-dead-run", "the release record is held, or its API server is away", "promote",
         held={"color": "green", "release": "v1", "phase": "flipping", "who": "carol@laptop", "expired": True}),
    Case("record-held-with-escapes", "the release record is held, or its API server is away", "rollback",
         held={"color": "blue", "release": "v1", "kind": "rollback", "who": "\u001b[31mmallory\u001b[0m@x"}),
    Case("record-api-server-unreachable", "the release record is held, or its API server is away", "promote",
         env={"FAKE_KUBECTL_FAULT": "unreachable"}),
]


@pytest.fixture
def world(tmp_path, monkeypatch):
    world = World(tmp_path)
    for name, value in {"PATH": world.path, "FAKE_PULUMI_STATE": str(world.state_file),
                        "FAKE_KUBECTL_STATE": str(world.leases_file),
                        "BLUEGREEN_CANCEL_GRACE": "0.5", "BLUEGREEN_COMMAND_TIMEOUT": "10",
                        "BLUEGREEN_UPDATE_TIMEOUT": "10"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BLUEGREEN_TEST_TOKEN", raising=False)
    monkeypatch.delenv("BLUEGREEN_URL", raising=False)
    world.change(lambda state: state["stacks"]["routing"]["config"].update(testToken=TOKEN))
    world.deploy_routing()
    world.hold = None  # a color whose answers the gateway holds, until `release` is set
    world.release_pids = []  # release.py run as a process: its records are this run's
    world.blocked = threading.Event()  # set once the gateway holds a request
    world.release = threading.Event()

    def gateway(path, headers):
        answer = world.gateway(path, headers)
        if world.hold and answer[1].get(COLOR_HEADER) == world.hold:
            world.blocked.set()
            world.release.wait(20)
        return answer

    with serve(gateway) as url:
        world.url = url
        yield world
        world.release.set()


@pytest.fixture
def quick(world, monkeypatch):
    """The stand-in in this process for every command but the one a hang or kill hook waits for."""
    monkeypatch.setattr(release_runner, "popen", mostly_in_process(release_runner.popen, world.state_file))
    return world


def arguments(world: World, command: str) -> list[str]:
    if command == "promote":
        return ["promote", "green", "--url", world.url, "--timeout", "1", "--settle", "0", "--consecutive", "1"]
    return [command]


def start_state(world: World, case: Case) -> None:
    if case.command == "rollback":
        world.change(lambda state: state["stacks"]["routing"]["config"].update(active="green"))
        world.deploy_routing()
        world.went_live("green", "v2", "blue", "v1")
    if case.held:
        world.hold_record(**case.held)
    for hook in case.hooks:
        world.hook(**hook)


def ending(world: World, code: int, err: str) -> str:
    """How a run ended, in a few words, for the counts."""
    calls = world.calls()
    changed = any(call.startswith(CHANGES) for call in calls)
    lock = "record given back" if world.record_free() else "record left, resume and abort named"
    active = world.outputs("routing").get("active")
    last = err.strip().splitlines()[-1] if err.strip() else ""
    if code == 0:
        return f"succeeded; users on {active}"
    if not changed:
        return "refused before any change"
    if "routing restored" in last:
        return f"routing restored, {lock}"
    if "restoring the routing failed too" in last or "to finish by hand" in err:
        return f"put back as far as possible, commands printed, {lock}"
    return f"done but the record could not be given back; users on {active}, {lock}"


def assert_safe(world: World, code: int, out: str, err: str) -> None:
    text = out + err
    assert code == 1, err
    assert "Traceback" not in text
    assert TOKEN not in text
    assert "\x1b" not in text and "\x07" not in text  # what the outputs carried is escaped
    assert world.users_on_a_ready_color(), world.outputs("routing")
    lease = world.lease()
    if lease is not None and not lease.free:  # left, or another run's: who holds it is named, and the way out
        if lease.record.pid in (os.getpid(), *world.release_pids):  # this run's: how to finish or undo it
            assert "release.py resume" in err and "release.py abort" in err, err
        else:
            assert re.sub(r"\x1b", r"\\x1b", lease.record.who) in err, err  # another run's: who holds it
    hanging = world.state().get("hanging")
    if hanging:  # a pulumi command that was killed mid-hang: it is gone, not left running
        with pytest.raises(ProcessLookupError):
            os.kill(hanging["pid"], 0)
    calls = world.calls()
    if any(call.startswith(CHANGES) for call in calls) or "ran past its" in err or "interrupted by" in err:
        assert "state now" in err, err  # the state users are in, read back (or why not), was printed
    routing = world.state()["stacks"]["routing"]
    config_agrees = (routing["config"].get("active") == routing["outputs"].get("active")
                     and routing["config"].get("test") == routing["outputs"].get("test"))
    assert config_agrees or "to finish by hand" in err or "config says" in err, err  # never apart silently


def record(record_property, target: str, kind: str, ended: str) -> None:
    record_property("fault", json.dumps({"target": target, "kind": kind, "ended": ended}))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_release_py_ends_safely_under_fault(case, quick, capfd, monkeypatch, record_property):
    world = quick
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    start_state(world, case)
    code = in_boundary(release.main, arguments(world, case.command))
    out, err = capfd.readouterr()
    assert_safe(world, code, out, err)
    ended = ending(world, code, err)
    if case.kind.startswith("a pulumi command hangs"):
        assert "ran past its 0.5s limit" in err and "sent it SIGINT" in err
    if case.kind.startswith("pulumi prints"):
        assert "shows it" in err or "did not print JSON" in err or "printed a JSON" in err, err
    if case.held or case.env.get("FAKE_KUBECTL_FAULT"):
        assert ("error: a release is in progress" in err and "held by " in err) or "(Unreachable)" in err, err
        assert ended == "refused before any change"
        if case.held and case.held.get("expired"):
            assert "`release.py resume` finishes it, `release.py abort` undoes it" in err
    record(record_property, "release.py", case.kind, ended)


def test_the_matrix_covers_every_step():
    """Each pulumi command of a promote and of a rollback that go to plan gets its non-zero exit."""
    exits = {case.name for case in CASES if case.kind == "a pulumi command exits non-zero"}
    assert len(exits) == len(PROMOTE) + len(ROLLBACK) == 16


def test_the_gateway_hanging_during_the_smoke_tests_fails_them_in_time(quick, capfd, record_property):
    world = quick
    world.hold = "green"  # the test route's answers never come
    start = time.monotonic()
    code = in_boundary(release.main, arguments(world, "promote"))
    out, err = capfd.readouterr()
    assert time.monotonic() - start < 8
    assert_safe(world, code, out, err)
    assert "no complete answer in time" in err
    record(record_property, "release.py", "the gateway hangs during the smoke tests", ending(world, code, err))


# --- signals: release.py as a subprocess, SIGINT or SIGTERM while a pulumi command runs -----------------

@dataclass(frozen=True)
class SignalCase:
    name: str
    command: str
    hooks: tuple[dict, ...]
    signals: tuple[int, ...]  # sent one after the other, each once a command hangs (or the gateway holds)
    hold: bool = False  # signal while the gateway holds a smoke test's request


SIGNAL_CASES = [
    SignalCase("sigint-mid-test-route-up", "promote", (at_step(PROMOTE, 6, hang=30),), (signal.SIGINT,)),
    SignalCase("sigterm-mid-test-route-up", "promote", (at_step(PROMOTE, 6, hang=30),), (signal.SIGTERM,)),
    SignalCase("sigterm-mid-flip-up-after-it-applied", "promote", (at_step(PROMOTE, 10, hang=30, after=True),),
               (signal.SIGTERM,)),
    SignalCase("sigint-while-pulumi-ignores-it", "promote", (at_step(PROMOTE, 6, hang=30, interrupt="ignore"),),
               (signal.SIGINT,)),
    SignalCase("sigint-twice-the-second-mid-restore", "promote",
               (at_step(PROMOTE, 6, hang=30), {"when": UP, "hang": 30}), (signal.SIGINT, signal.SIGINT)),
    SignalCase("sigint-during-the-smoke-tests", "promote", (), (signal.SIGINT,), hold=True),
    SignalCase("sigterm-mid-rollback-up", "rollback", (at_step(ROLLBACK, 4, hang=30),), (signal.SIGTERM,)),
]


@pytest.mark.parametrize("case", SIGNAL_CASES, ids=[case.name for case in SIGNAL_CASES])
def test_release_py_ends_safely_when_signalled(case, world, record_property):
    start_state(world, Case(case.name, "", case.command, case.hooks))
    world.hold = "green" if case.hold else None
    env = dict(os.environ)
    child = subprocess.Popen([sys.executable, str(RELEASE_PY), *arguments(world, case.command)], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    world.release_pids.append(child.pid)
    try:
        seen = None
        for signum in case.signals:
            if case.hold:
                assert world.blocked.wait(20)
            else:
                seen = wait_for_a_new_hang(world, seen)
            child.send_signal(signum)
        out, err = child.communicate(timeout=30)
    finally:
        world.release.set()
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert_safe(world, child.returncode, out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: interrupted by {signal.Signals(case.signals[0]).name}"), err
    if len(case.signals) > 1:
        assert "a second signal stopped the clean-up" in err and "python scripts/release.py resume" in err
    if "ignores" in case.name:
        assert "killed (SIGKILL)" in err and "pulumi cancel --yes -s routing" in err
    record(record_property, "release.py", f"{signal.Signals(case.signals[0]).name} to release.py mid-run",
           ending(world, child.returncode, err))


def wait_for_a_new_hang(world: World, seen: Optional[dict]) -> dict:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        hanging = world.state().get("hanging")
        if hanging and hanging != seen:
            return hanging
        time.sleep(0.02)
    raise AssertionError("no pulumi command hung")


# --- what the CLI leaves running: stopped and reaped; `pulumi cancel` advised only when a lock may be left ----

def _gone(pid: int) -> bool:
    """Neither running nor a zombie (a zombie still answers kill 0: it waits for its parent to reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _children() -> set[int]:
    return {proc.pid for proc in reaper._processes(reaper.PROC) if proc.ppid == os.getpid()}


LEFT = "process(es) the CLI left"
TEST_ROUTE_UP = PROMOTE.index(UP)  # the first `up` of a promote: the test route's


@pytest.mark.parametrize("leave", [
    {"leave": "group", "hang": 30},  # a plugin in its own group (Setpgid) after the CLI's cancel on SIGINT
    {"leave": "group", "kill": True},  # the CLI killed (SIGKILL) under it
    {"leave": "session", "pipes": True, "hang": 30, "interrupt": "ignore"},  # daemonized, holding the CLI's pipes
], ids=["own-group-cli-cancelled", "own-group-cli-killed", "own-session-holding-the-pipes"])
def test_what_the_cli_leaves_running_is_stopped_and_reaped(leave, world, capfd, monkeypatch):
    monkeypatch.setenv("BLUEGREEN_UPDATE_TIMEOUT", "1")
    world.hook(**at_step(PROMOTE, TEST_ROUTE_UP, **leave))
    before = _children()
    start = time.monotonic()
    code = in_boundary(release.main, arguments(world, "promote"))
    took = time.monotonic() - start
    out, err = capfd.readouterr()
    assert_safe(world, code, out, err)
    [pid] = world.state()["left"]
    assert _gone(pid), f"pid {pid} outlived its pulumi command"
    assert f"stopped 1 {LEFT}: sleep (pid {pid})" in err, err
    assert _children() <= before  # nothing re-parented here is left, not even a zombie
    assert took < 15, took  # bounded: 1 s limit, 0.5 s grace, the leftover's TERM; not the 5 s pipe wait per read


def test_a_run_whose_cli_leaves_nothing_stops_nothing(world, capfd):
    before = _children()
    code = in_boundary(release.main, arguments(world, "promote"))
    out, err = capfd.readouterr()
    assert code == 0, err
    assert LEFT not in err and _children() <= before


def test_release_py_signalled_mid_up_leaves_no_process_behind(world):
    world.hook(**at_step(PROMOTE, TEST_ROUTE_UP, leave="group", hang=30))
    child = subprocess.Popen([sys.executable, str(RELEASE_PY), *arguments(world, "promote")], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_a_new_hang(world, None)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    [pid] = world.state()["left"]
    assert_safe(world, child.returncode, out, err)
    assert f"stopped 1 {LEFT}: sleep (pid {pid})" in err, err
    assert _gone(pid), f"pid {pid} outlived release.py"


@pytest.mark.parametrize("took_the_lock", [False, True], ids=["restore-update-succeeded", "stack-left-locked"])
def test_pulumi_cancel_is_advised_only_while_a_lock_may_be_left(took_the_lock, quick, capfd):
    world = quick
    world.hook(**at_step(PROMOTE, TEST_ROUTE_UP, kill=True, lock=took_the_lock))
    code = in_boundary(release.main, arguments(world, "promote"))
    out, err = capfd.readouterr()
    assert_safe(world, code, out, err)
    restored = "routing restored" in err.strip().splitlines()[-1]
    assert restored != took_the_lock, err  # the restore's `up` went through only with no lock left
    assert ("pulumi cancel --yes -s routing" in err) == took_the_lock, err


def test_leftovers_are_the_children_in_the_commands_session_or_marked_as_its_own():
    line = "4242 (pulumi-language-) S 100 4242 77 0 -1 4194560 0 0 0 0"
    assert reaper.parse_stat(line) == reaper.Proc(4242, "pulumi-language-", "S", 100, 77)
    assert reaper.parse_stat("7 (a (b) c) Z 100 7 7 0").comm == "a (b) c"  # a name with parentheses
    procs = [reaper.Proc(1, "plugin", "S", 100, 77), reaper.Proc(2, "kubectl", "S", 100, 50),
             reaper.Proc(3, "daemon", "S", 100, 3), reaper.Proc(4, "grandchild", "S", 1, 77)]
    assert [p.comm for p in reaper.leftovers(procs, parent=100, session=77, marked=[3])] == ["plugin", "daemon"]


def test_without_the_kernels_children_files_every_process_is_read(tmp_path):
    me = os.getpid()
    (tmp_path / str(me) / "task" / str(me)).mkdir(parents=True)  # a thread, no children file
    (tmp_path / str(me) / "stat").write_text(f"{me} (python) R 1 {me} {me} 0")
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "stat").write_text(f"4242 (sleep) S {me} 4242 4000 0")
    assert reaper._child_pids(str(tmp_path)) is None
    found = [p for p in reaper._processes(str(tmp_path), reaper._child_pids(str(tmp_path))) if p.ppid == me]
    assert [(p.pid, p.sid) for p in found] == [(4242, 4000)]
