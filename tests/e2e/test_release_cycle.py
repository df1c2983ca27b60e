"""The seed's release cycle for real: release.py with the real CLI against the sandbox, smoke tests
through the gateway stand-in, which routes by the VirtualService the API server holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from e2e.sandbox_project import Project, make_project
from scripts import sandbox as sandbox_script

LOCK = "bluegreen:release"
SETTLE = "1"  # the gateway stand-in re-reads the cluster every 0.5 s


@pytest.fixture
def live(sandbox_env, tmp_path) -> Project:
    """Blue live (v1.0.0) behind the routing stack, green deployed with v1.1.0 after a migration Job."""
    project = make_project(tmp_path / "project", sandbox_env)
    project.init_stacks("blue", "green", "routing")
    for color in ("blue", "green"):
        project.pulumi("config", "set", "replicas", "1", "-s", color)
        project.pulumi("config", "set", "--secret", "--path", "secretEnv.DB_PASSWORD", "pw-" + color, "-s", color)
    project.pulumi("config", "set", "--secret", "testToken", "t0ken-" + "x" * 20, "-s", "routing")
    project.up("blue")
    project.up("routing")
    project.pulumi("config", "set", "migrateCommand", "npm run migrate", "-s", "green")
    project.up("green")
    yield project
    project.cleanup()


def release(project: Project, *args: str, check: bool = False, env=None):
    return project.run(sys.executable, str(project.folder / "scripts" / "release.py"), *args, check=check, env=env)


def default_route(project: Project) -> str:
    """The color the stored VirtualService's default (last) route sends users to."""
    http = project.get("virtualservice.networking.istio.io", "myapp-blue-green")["spec"]["http"]
    assert not any(route.get("name", "").endswith("-test") for route in http[:-1]) or len(http) == 2
    return http[-1]["route"][0]["destination"]["subset"]


def route_names(project: Project) -> list[str]:
    return [r["name"] for r in project.get("virtualservice.networking.istio.io", "myapp-blue-green")["spec"]["http"]]


def through_gateway(project: Project, path: str = "/", cookie: str = "") -> requests.Response:
    return requests.get(project.env["BLUEGREEN_URL"] + path, headers={"cookie": cookie} if cookie else {},
                        timeout=10, allow_redirects=False)


def behave(project: Project, deployment: str, **behaviour) -> None:
    """Make the app stand-in of one Deployment answer differently (the sandbox's control files)."""
    folder = Path(project.env["BLUEGREEN_SANDBOX"]) / "apps" / project.namespace
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{deployment}.json").write_text(json.dumps(behaviour))


def lock(project: Project):
    found = project.pulumi("stack", "tag", "get", LOCK, "-s", "routing", check=False)
    return found.stdout.strip() if found.code == 0 else None


def test_the_seeds_cycle_promote_status_rollback_and_decommission(live):
    job = live.get("job", "myapp-green-migrate")
    assert job["status"]["succeeded"] == 1
    deployment = live.get("deployment", "myapp-green")
    assert deployment["metadata"]["creationTimestamp"] >= job["status"]["completionTime"]

    answer = through_gateway(live, "/ready")
    assert answer.headers["x-bluegreen-color"] == "blue" and answer.headers["x-sandbox-release"] == "v1.0.0"

    promoted = release(live, "promote", "green", "--check", "/api/health", "--settle", SETTLE)
    assert promoted.code == 0, promoted.output
    assert "Traceback" not in promoted.output and "t0ken" not in promoted.output
    assert default_route(live) == "green" and route_names(live) == ["myapp-default"]
    assert through_gateway(live, "/ready").headers["x-sandbox-deployment"] == "myapp-green"
    assert lock(live) is None

    status = release(live, "status", "--json", check=True).json()
    assert status["active"] == "green" and status["colors"]["blue"]["release"] == "v1.0.0"

    assert release(live, "decommission", "green").code == 1  # green is live now
    rolled = release(live, "rollback")
    assert rolled.code == 0, rolled.output
    assert default_route(live) == "blue"
    assert through_gateway(live, "/").headers["x-sandbox-deployment"] == "myapp-blue"

    refused = release(live, "decommission", "blue")
    assert refused.code == 1 and "blue is the active color" in refused.output
    assert live.get("deployment", "myapp-blue") is not None

    assert release(live, "promote", "green", "--settle", SETTLE).code == 0
    done = release(live, "decommission", "blue")
    assert done.code == 0, done.output
    assert live.get("deployment", "myapp-blue") is None
    assert through_gateway(live, "/ready").headers["x-bluegreen-color"] == "green"


def test_a_failing_smoke_test_flips_nothing_and_removes_the_test_route(live):
    behave(live, "myapp-green", ready=False)
    failed = release(live, "promote", "green", "--settle", SETTLE, "--timeout", "3")
    assert failed.code == 1, failed.output
    assert "smoke tests of green failed" in failed.output
    assert default_route(live) == "blue" and route_names(live) == ["myapp-default"]
    assert lock(live) is None
    assert live.outputs("routing") == {"active": "blue", "activeRelease": "v1.0.0"}


def test_a_failure_after_the_flip_rolls_users_back_in_the_cluster(live):
    # Healthy through the test route (with the test cookie), broken for users: as an app that breaks under load.
    behave(live, "myapp-green", statusWithoutCookie=500)
    failed = release(live, "promote", "green", "--settle", SETTLE, "--timeout", "3")
    assert failed.code == 1, failed.output
    assert "the default route failed after the flip to green" in failed.output
    assert "routing restored: users on blue" in failed.output
    assert default_route(live) == "blue"
    assert through_gateway(live, "/").headers["x-sandbox-deployment"] == "myapp-blue"
    assert lock(live) is None


def test_a_release_changed_while_under_test_is_not_flipped(live):
    def redeploy_green_once_it_is_under_test():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "myapp-test" not in route_names(live):
            time.sleep(0.5)
        live.pulumi("config", "set", "image", "docker.io/example/myapp:v1.2.0", "-s", "green")
        live.up("green")

    change = threading.Thread(target=redeploy_green_once_it_is_under_test)
    change.start()
    refused = release(live, "promote", "green", "--settle", "25")
    change.join()
    assert refused.code == 1, refused.output
    assert "release changed from v1.1.0 to v1.2.0" in refused.output
    assert default_route(live) == "blue" and route_names(live) == ["myapp-default"]
    assert lock(live) is None


def test_two_promotes_started_together_exactly_one_proceeds(live):
    command = [sys.executable, str(live.folder / "scripts" / "release.py"), "promote", "green", "--settle", SETTLE]
    runs = [subprocess.Popen(command, cwd=live.folder, env=live.env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for _ in range(2)]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "a release is in progress" in loser
    assert default_route(live) == "green"
    assert lock(live) is None
    release(live, "unlock", check=True)  # harmless when nothing is held


# --- faults half-way: the API server gone, pulumi killed ----------------------------------------------

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


def pulumi_child(parent: int) -> int:
    """The pid of the `pulumi` process that release.py (pid `parent`) runs now."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            name = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and name == "pulumi":
            return int(stat.parent.name)
    raise AssertionError(f"release.py (pid {parent}) runs no pulumi now")


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
        sandbox_script.Sandbox(sandbox, sandbox / "bin").restart("kube-apiserver")
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
    time.sleep(2)  # the update has taken the stack's lock by now
    os.killpg(pulumi_child(promote.process.pid), signal.SIGKILL)
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
    assert lock(live) is None


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
