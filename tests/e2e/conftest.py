"""The end-to-end tier: the real Pulumi CLI, language host and pulumi-kubernetes provider against the
sandbox's real kube-apiserver (python -m sandbox), each scenario in a throwaway copy of the project.

The sandbox comes from the environment when one is sourced ($BLUEGREEN_SANDBOX), else this session
starts one from the build, which all workers share, and stops it at the end; a module whose scenarios
stop the API server has one of its own. Without a build the tests skip with one line naming the build
command, unless BLUEGREEN_E2E=require (CI), which makes that a failure.
Each e2e module runs whole on one xdist worker (pytest.ini: --dist loadfile).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest


from harness.e2e_tier import SHARED_SANDBOX_DIR, e2e_unavailable, stop_sandbox
from harness.released_project import STACKS, Released
from harness.sandbox_project import Project, make_project
from sandbox import cluster as sandbox_script

SANDBOX_VARIABLES = ("PATH", "KUBECONFIG", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_HOME", "PULUMI_SKIP_UPDATE_CHECK",
                     "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "PULUMI_IGNORE_AMBIENT_PLUGINS", "GOGC",
                     "BLUEGREEN_SANDBOX", "BLUEGREEN_URL", "BLUEGREEN_ISTIOD_XDS", "BLUEGREEN_ISTIOD_HTTP",
                     "BLUEGREEN_PROMETHEUS_URL")


def sourced_sandbox() -> dict[str, str]:
    return {name: os.environ[name] for name in SANDBOX_VARIABLES if name in os.environ}


def start_sandbox(env_file: Path) -> dict[str, str]:
    """`sandbox.py up` into env_file: its environment, or the test fails with what `up` said."""
    problem = e2e_unavailable(required_too=True)
    if problem:  # only when BLUEGREEN_E2E=require: otherwise tests/conftest.py deselected the tier
        pytest.fail(f"{problem} (BLUEGREEN_E2E=require)", pytrace=False)
    started = subprocess.run([sys.executable, "-m", "sandbox", "up", "--env-file", str(env_file)],
                             text=True, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    if started.returncode != 0:
        pytest.fail(f"sandbox.py up failed:\n{started.stderr}", pytrace=False)
    return sandbox_script.read_env_file(env_file)


@pytest.fixture(scope="session")
def sandbox_env() -> dict[str, str]:
    """The environment of a running sandbox: the sourced one, else the session's, which all workers share.

    The first worker that needs it starts it (under a lock in the session's folder, which the controller
    made: tests/conftest.py); the controller stops it when the session ends. Projects share it: each has
    its own namespace, backend and gateway stand-in."""
    if os.environ.get("BLUEGREEN_SANDBOX"):
        yield sourced_sandbox()
        return
    shared = Path(os.environ[SHARED_SANDBOX_DIR])
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        env_file, failed = shared / "sandbox.env", shared / "failed"
        if failed.exists():  # another worker tried: the same failure, without another minute's try
            pytest.fail(failed.read_text(), pytrace=False)
        if not env_file.exists():
            try:
                start_sandbox(env_file)
            except BaseException as error:
                failed.write_text(str(error) or "sandbox.py up failed")
                raise
        env = sandbox_script.read_env_file(env_file)
    yield env


@pytest.fixture(scope="module")
def private_sandbox_env(tmp_path_factory) -> dict[str, str]:
    """A sandbox of the module's own, for scenarios that stop its API server (the sourced one when sourced)."""
    if os.environ.get("BLUEGREEN_SANDBOX"):
        yield sourced_sandbox()
        return
    env_file = tmp_path_factory.mktemp("private-sandbox") / "sandbox.env"
    try:
        yield start_sandbox(env_file)
    finally:
        stop_sandbox(env_file)


@pytest.fixture
def project(sandbox_env, tmp_path) -> Project:
    project = make_project(tmp_path / "project", sandbox_env)
    yield project
    project.cleanup()


@pytest.fixture(scope="session")
def released(sandbox_env, tmp_path_factory) -> Released:
    """One released project per worker, for the modules it runs: their scenarios each run in a copy of it
    (`live`), after the cluster is put back to it. A module with its own sandbox deploys its own."""
    with Released.deployed(tmp_path_factory.mktemp("released") / "project", sandbox_env) as released:
        yield released


@pytest.fixture
def live(released, tmp_path) -> Project:
    """A throwaway copy of the released project: blue live (v1.0.0), green deployed (v1.1.0)."""
    project = released.copy(tmp_path / "project")
    start = {stack: project.fingerprint(stack) for stack in STACKS}
    yield project
    released.done(project, start)
