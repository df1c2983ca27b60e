"""Faults half-way through a release, for real: the API server gone, pulumi killed, a failing migration.
Each ends in a known state that status tells truly, and the commands release.py prints finish the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.released_project import (SETTLE, Released, default_route, held_record, release, route_names,
                                      through_gateway)
from harness.sandbox_project import Project
from sandbox import cluster as sandbox_script


@pytest.fixture(scope="module")
def sandbox_env(private_sandbox_env):
    """A sandbox of this module's own: a scenario here stops the API server, which the shared one must not see."""
    return private_sandbox_env


@pytest.fixture(scope="module")
def released(sandbox_env, tmp_path_factory) -> Released:
    with Released.deployed(tmp_path_factory.mktemp("released") / "project", sandbox_env) as released:
        yield released


class Watched:
    """release.py running in the background, its progress lines read as they come."""

    def __init__(self, project: Project, *args: str):
        self.process = subprocess.Popen([sys.executable, str(project.folder / "scripts" / "release.py"), *args],
                                        cwd=project.folder, env=project.env, text=True, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, predicate, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            assert self.process.poll() is None or self.reader.is_alive(), "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.05)

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code, "".join(self.lines)


def flipping(lines: list[str]) -> bool:
    """The flip's `pulumi up` has started: the routing stack's second update, after `config set active`."""
    text = "".join(lines)
    at = text.find("$ pulumi config set active")
    return at >= 0 and "$ pulumi up" in text[at:]


def pulumi_child(parent: int, timeout: float = 15) -> int:
    """The pid of the `pulumi` process that release.py (pid `parent`) runs now. release.py prints a command before
    it starts it, and a child is named `pulumi` only once its exec is done: so it is waited for, bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                fields, name = text.rsplit(")", 1)[1].split(), text.split("(", 1)[1].rsplit(")", 1)[0]
            except (OSError, IndexError):
                continue
            if int(fields[1]) == parent and name == "pulumi":
                return int(stat.parent.name)
        time.sleep(0.02)
    raise AssertionError(f"release.py (pid {parent}) ran no pulumi within {timeout:g}s")


def holds_lock(project: Project, stack: str) -> bool:
    """Whether an update holds `stack`'s lock in the project's file backend (.pulumi/locks/ORG/PROJECT/STACK/)."""
    backend = Path(project.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    return any(backend.glob(f".pulumi/locks/*/*/{stack}/*.json"))


def by_hand(output: str) -> list[str]:
    """The commands release.py printed under "to finish by hand:", in order."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "to finish by hand:" in line)
    commands = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        commands.append(line.split("#", 1)[0].strip())
    return [command for command in commands if command]


def cluster_users(project: Project) -> str:
    """Where the gateway sends users now, by the VirtualService the API server holds."""
    deadline = time.monotonic() + 60  # after an outage, until kwok makes the pods ready again
    while True:
        answer = through_gateway(project, "/")
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer.headers.get("x-bluegreen-color", f"HTTP {answer.status_code}")
        time.sleep(0.5)


def finish_by_hand(project: Project, commands: list[str], timeout: float = 240) -> None:
    """Run the commands release.py printed, as an operator would. After an API server outage the node's
    lease may lapse and the node controller mark its pods not ready until kwok's heartbeat catches up;
    the routing guard then refuses (rightly) and says to wait for the pods: wait, and run them again."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [project.run("bash", "-c", command, check=False) for command in commands]
        failed = next((run for run in runs if run.code != 0), None)
        if failed is None:
            return
        assert "has no ready pod in the cluster now" in failed.output, failed.output
        assert time.monotonic() < deadline, failed.output
        time.sleep(5)


def test_the_api_server_stopped_during_the_flip_ends_in_a_known_state(live):
    sandbox = Path(live.env["BLUEGREEN_SANDBOX"])
    promote = Watched(live, "promote", "green", "--settle", SETTLE, "--update-timeout", "60")
    promote.wait_for(flipping)
    assert sandbox_script.stop_recorded(sandbox, only="kube-apiserver") == ["kube-apiserver"]
    try:
        code, output = promote.finish()
    finally:
        sandbox_script.Sandbox.of_env(live.env).restart("kube-apiserver")
        deadline = time.monotonic() + 60
        while live.kubectl("get", "--raw", "/readyz", check=False).code != 0:
            assert time.monotonic() < deadline, "kube-apiserver did not come back"
            time.sleep(0.5)
    assert code == 1, output
    assert "Traceback" not in output
    assert "restoring the routing failed too" in output or "routing restored: users on blue" in output
    # Where status says users are must be where the cluster's VirtualService sends them, or status says it is unsure.
    status = release(live, "status", "--json", check=True).json()
    if not status["problems"]:
        assert default_route(live) == status["active"], status
    finish_by_hand(live, by_hand(output))
    assert cluster_users(live) == "blue" and route_names(live) == ["myapp-default"]
    status = release(live, "status", "--json", check=True).json()
    assert status["active"] == "blue" and not status["configDiffers"] and status["releaseInProgress"] is None


def test_pulumi_killed_mid_flip_leaves_the_exact_recovery_and_a_true_status(live):
    promote = Watched(live, "promote", "green", "--settle", SETTLE)
    promote.wait_for(flipping)
    pulumi = pulumi_child(promote.process.pid)
    deadline = time.monotonic() + 15
    while not holds_lock(live, "routing"):  # killed once it holds the lock, the update leaves it held
        assert time.monotonic() < deadline, "the flip's pulumi up took no lock on the routing stack within 15s"
        time.sleep(0.02)
    os.killpg(pulumi, signal.SIGKILL)
    code, output = promote.finish()
    assert code == 1, output
    assert "Traceback" not in output and "killed by SIGKILL" in output
    commands = by_hand(output)
    assert commands[0] == "pulumi cancel --yes -s routing", output
    assert commands[-1] == "python scripts/release.py status"
    status = release(live, "status", "--json", check=True).json()
    if not status["problems"]:
        assert cluster_users(live) == status["active"], status
    for command in commands:
        live.run("bash", "-c", command)
    assert cluster_users(live) == "blue" and route_names(live) == ["myapp-default"]
    assert held_record(live) is None


def test_a_failing_migration_stops_the_release_before_the_rollout(live):
    before = live.get("deployment", "myapp-green")
    live.pulumi("config", "set", "migrateCommand", "false", "-s", "green")
    live.pulumi("config", "set", "image", "docker.io/example/myapp:v1.2.0", "-s", "green")
    failed = live.up("green", check=False)
    assert failed.code != 0, failed.output
    assert "myapp-green-migrate" in failed.output and "failed" in failed.output.lower(), failed.output
    after = live.get("deployment", "myapp-green")
    assert after["spec"]["template"] == before["spec"]["template"]  # not rolled out
    assert after["metadata"]["labels"]["release"] == before["metadata"]["labels"]["release"] == "v1.1.0"
    job = live.get("job", "myapp-green-migrate")
    assert job["status"].get("failed") == 1


def marked_by(release_pid: int) -> list[str]:
    """The processes whose environment carries the mark of one of that release.py's pulumi commands (runner.py
    marks each CLI; the plugins it starts inherit the mark)."""
    prefix = f"BLUEGREEN_PULUMI_COMMAND={release_pid}.".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if any(item.startswith(prefix) for item in environ.read_bytes().split(b"\0")):
                found.append(f"{environ.parent.name} {(environ.parent / 'comm').read_text().strip()}")
        except OSError:
            continue
    return found


def test_sigint_once_the_language_host_runs_leaves_no_plugin_behind(live):
    """The CLI starts its plugins in process groups of their own: release.py adopts and stops what it leaves."""
    promote = Watched(live, "promote", "green", "--settle", SETTLE)
    promote.wait_for(lambda lines: "$ pulumi up" in "".join(lines))
    deadline = time.monotonic() + 120
    while not any(" pulumi-language" in process for process in marked_by(promote.process.pid)):
        assert time.monotonic() < deadline and promote.process.poll() is None, "".join(promote.lines)
        time.sleep(0.05)
    promote.process.send_signal(signal.SIGINT)
    code, output = promote.finish(timeout=300)
    assert code == 1 and "error: interrupted by SIGINT" in output.strip().splitlines()[-1], output
    assert marked_by(promote.process.pid) == [], output  # nothing it started outlives it
    assert held_record(live) is None and default_route(live) == "blue"
