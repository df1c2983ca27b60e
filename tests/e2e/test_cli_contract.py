"""The stand-in `pulumi` (tests/harness/fake_pulumi.py) held to the real CLI: one scenario of the commands the
scripts run, against both, and the answers compared as the scripts read them.

Each answer is reduced to what release.py relies on: success or failure, stdout (JSON parsed, the
two worlds' release names replaced by the color's), and whether a failure says "not found for stack"
(release.py's `pulumi_get` reads that as "not set") or "no stack named".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from harness.sandbox_project import Project, make_project
from harness.release_world import World

SCENARIO = [
    "config get testCookie -s routing",
    "config get testToken -s routing",
    "stack output --json -s routing",
    "stack export -s routing",
    "config set test green -s routing",
    "config get test -s routing",
    "up --yes --skip-preview -s routing",
    "stack output --json -s routing",
    "config set test blue -s routing",
    "up --yes --skip-preview -s routing",
    "config rm test -s routing",
    "config rm test -s routing",
    "up --yes --skip-preview -s routing",
    "stack output --json -s routing",
    "stack output --json -s nosuchstack",
    "config set active green -s routing",
    "up --yes --skip-preview -s routing",
    "stack output --json -s routing",
    "destroy --yes -s blue",
    "stack output --json -s blue",
]


def answer(done: subprocess.CompletedProcess, releases: dict[str, str]) -> dict[str, Any]:
    """What release.py reads of one command's result."""
    stdout = done.stdout
    for release, color in releases.items():
        stdout = stdout.replace(release, f"<{color} release>")
    try:
        shown: Any = json.loads(stdout) if stdout.strip().startswith(("{", "[")) else stdout.strip()
    except json.JSONDecodeError:
        shown = stdout.strip()
    if done.returncode == 0 and done.args[1:3] == ["stack", "export"]:  # release.py reads the pending operations
        shown = {"pending_operations": shown["deployment"].get("pending_operations") or []}
    result = {"ok": done.returncode == 0}
    if done.returncode == 0:
        # up and destroy print progress: release.py streams it and never parses it.
        result["stdout"] = shown if not done.args[1:2] or done.args[1] not in ("up", "destroy") else "<progress>"
    else:
        result["not found"] = "not found for stack" in done.stderr
        result["no such stack"] = "no stack named" in done.stderr
    return result


def play(run: Callable[[list[str]], subprocess.CompletedProcess], releases: dict[str, str]) -> list[dict]:
    answers = []
    for line in SCENARIO:
        answers.append({"command": line, **answer(run(line.split()), releases)})
    return answers


@pytest.fixture(scope="module")
def real(sandbox_env, tmp_path_factory) -> Project:
    project = make_project(tmp_path_factory.mktemp("contract") / "project", sandbox_env)
    project.deploy_both_colors()
    yield project
    project.cleanup()


def test_the_stand_in_answers_the_scenario_as_the_real_cli_does(real, tmp_path):
    def real_run(words):
        return subprocess.run(["pulumi", *words], cwd=real.folder, env=real.env, text=True, capture_output=True,
                              timeout=300, stdin=subprocess.DEVNULL)

    world = World(tmp_path)
    fake_env = {**os.environ, "PATH": world.path, "FAKE_PULUMI_STATE": str(world.state_file)}

    def fake_run(words):
        return subprocess.run(["pulumi", *words], env=fake_env, text=True, capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    real_answers = play(real_run, {"v1.0.0": "blue", "v1.1.0": "green"})
    fake_answers = play(fake_run, {"v1": "blue", "v2": "green"})
    differences = [(real_answer, fake_answer) for real_answer, fake_answer in zip(real_answers, fake_answers)
                   if real_answer != fake_answer]
    assert not differences, "\n".join(f"real {r}\nfake {f}" for r, f in differences)


def test_release_py_status_tells_what_the_real_stacks_say(real):
    """status --json, through the real CLI, from the project copy (release.py's cwd is its project), agrees
    with `pulumi stack output` of each stack, whatever the scenario above has done to them so far."""
    shown = real.run(sys.executable, str(Path(real.folder) / "scripts" / "release.py"), "status", "--json").json()
    routing = real.outputs("routing")
    assert (shown["active"], shown["test"]) == (routing.get("active"), routing.get("test"))
    for color in ("blue", "green"):
        outputs = real.outputs(color)
        assert shown["colors"][color]["deployed"] is bool(outputs)
        assert shown["colors"][color]["release"] == outputs.get("release")
    assert shown["releaseInProgress"] is None
