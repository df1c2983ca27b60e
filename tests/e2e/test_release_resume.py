"""A release killed for real (SIGKILL to release.py, as a lost CI runner or an OOM kill does) in each phase of
its record, then finished with `resume` or undone with `abort` from a second working copy, as another host
would: it has the committed Pulumi.routing.yaml (not the killed run's `config set`s) and the same backend,
and knows nothing but what release.py prints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.released_project import SETTLE, behave, default_route, held_record, record, release, route_names
from harness.sandbox_project import Project

KILL_LIMIT = 240  # seconds for the release to reach the phase it is killed in


def phase_of(project: Project) -> str | None:
    lease = record(project)
    if lease is None or not (lease.get("spec") or {}).get("holderIdentity"):
        return None
    return json.loads(lease["metadata"]["annotations"]["bluegreen.dev/release"])["phase"]


def processes_in(folder: Path) -> list[int]:
    """The processes whose working directory is `folder`: the killed run's pulumi and what it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).resolve() == folder.resolve():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def kill_in_phase(project: Project, phase: str) -> None:
    """Start a promote of green and SIGKILL release.py once its record says `phase`; then wait, bounded,
    for the pulumi command it left running on its own to end (it finishes its update: the stack is not locked)."""
    command = [sys.executable, str(project.folder / "scripts" / "release.py"), "promote", "green",
               "--settle", SETTLE, "--timeout", "60"]
    child = subprocess.Popen(command, cwd=project.folder, env=project.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + KILL_LIMIT
        while phase_of(project) != phase:
            assert child.poll() is None, f"the promote ended (exit {child.returncode}) before phase {phase}"
            assert time.monotonic() < deadline, f"the promote never reached phase {phase}"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    deadline = time.monotonic() + 300
    while processes_in(project.folder):
        assert time.monotonic() < deadline, "the killed run's pulumi never ended"
        time.sleep(0.2)


def recover(project: Project, verb: str, *args: str):
    """`release.py resume` or `abort` as an operator runs it: when it says that the killed run's `pulumi up`
    left the stack locked (it can die with the run, on its broken output pipe), the advised `pulumi cancel`,
    then the command again."""
    done = release(project, verb, *args)
    if done.code != 0 and "pulumi cancel --yes -s routing`, then run" in done.output:
        project.pulumi("cancel", "--yes", "-s", "routing")
        done = release(project, verb, *args)
    return done


def another_host(project: Project, folder: Path, committed: bytes) -> Project:
    """A second working copy of the project: the same backend and cluster, the committed routing stack file."""
    shutil.copytree(project.folder, folder, symlinks=True, ignore=shutil.ignore_patterns(".pulumi-state"))
    (folder / "Pulumi.routing.yaml").write_bytes(committed)
    return Project(folder, dict(project.env), project.namespace)


@pytest.mark.parametrize("phase", ["testing", "flipping", "checking"])
def test_a_release_killed_in_each_phase_is_resumed_from_another_host(live, tmp_path, phase):
    committed = (live.folder / "Pulumi.routing.yaml").read_bytes()
    behave(live, "myapp-green", delay=1.0)  # slow answers: each phase lasts long enough to be seen
    kill_in_phase(live, phase)
    other = another_host(live, tmp_path / "other-host", committed)
    status = release(other, "status")
    assert "release in progress: promote of green (release v1.1.0)" in status.output, status.output
    assert f"phase {phase}" in status.output and "`release.py resume` finishes it" in status.output
    resumed = recover(other, "resume", "--settle", SETTLE, "--timeout", "60")
    assert resumed.code == 0, resumed.output
    assert (default_route(live), route_names(live)) == ("green", ["myapp-default"]), resumed.output
    assert held_record(live) is None
    assert resumed.output.strip().splitlines()[-1] == (
        "resume done: users on green, no test route; commit Pulumi.routing.yaml: bluegreen:active: green, no "
        "bluegreen:test")
    # Once the stack file is committed as it says, the next `pulumi up -s routing` keeps users where they are.
    other.pulumi("config", "set", "active", "green", "-s", "routing")
    assert "config differs" not in release(other, "status").output


@pytest.mark.parametrize("phase", ["testing", "flipping", "checking"])
def test_a_release_killed_in_each_phase_is_aborted_from_another_host(live, tmp_path, phase):
    committed = (live.folder / "Pulumi.routing.yaml").read_bytes()
    behave(live, "myapp-green", delay=1.0)
    kill_in_phase(live, phase)
    other = another_host(live, tmp_path / "other-host", committed)
    aborted = recover(other, "abort")
    assert aborted.code == 0, aborted.output
    assert default_route(live) == "blue" and route_names(live) == ["myapp-default"]
    assert held_record(live) is None and json.loads(
        record(live)["metadata"]["annotations"]["bluegreen.dev/release"])["phase"] == "aborted"
    assert aborted.output.strip().splitlines()[-1] == (
        "abort done: users on blue, no test route; commit Pulumi.routing.yaml: bluegreen:active: blue, no "
        "bluegreen:test")
    assert "config differs" not in release(other, "status").output  # the committed file already says blue
