"""The end-to-end tier: the real Pulumi CLI, language host and pulumi-kubernetes provider against the
sandbox's real kube-apiserver (scripts/sandbox.py), each scenario in a throwaway copy of the project.

The sandbox comes from the environment when one is sourced ($BLUEGREEN_SANDBOX), else this session
starts one from the build and stops it at the end. Without a build the tests skip with one line
naming the build command, unless BLUEGREEN_E2E=require (CI), which makes that a failure.
Each e2e module runs whole on one xdist worker (pytest.ini: --dist loadfile); each worker starts one sandbox.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


from conftest import e2e_unavailable  # noqa: E402
from e2e.released_project import STACKS, Released  # noqa: E402
from e2e.sandbox_project import ROOT, Project, make_project  # noqa: E402

sys.path.insert(0, str(ROOT))

from scripts import sandbox as sandbox_script  # noqa: E402

SANDBOX_VARIABLES = ("PATH", "KUBECONFIG", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_HOME", "PULUMI_SKIP_UPDATE_CHECK",
                     "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "PULUMI_IGNORE_AMBIENT_PLUGINS", "BLUEGREEN_SANDBOX",
                     "BLUEGREEN_URL")


@pytest.fixture(scope="session")
def sandbox_env() -> dict[str, str]:
    """The environment of a running sandbox: the sourced one, or one this session starts."""
    if os.environ.get("BLUEGREEN_SANDBOX"):
        yield {name: os.environ[name] for name in SANDBOX_VARIABLES if name in os.environ}
        return
    problem = e2e_unavailable(required_too=True)
    if problem:  # only when BLUEGREEN_E2E=require: otherwise tests/conftest.py deselected the tier
        pytest.fail(f"{problem} (BLUEGREEN_E2E=require)", pytrace=False)
    env_file = Path(tempfile.mkdtemp(prefix="bluegreen-e2e-")) / "sandbox.env"
    started = subprocess.run([sys.executable, str(ROOT / "scripts" / "sandbox.py"), "up", "--env-file", str(env_file)],
                             text=True, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    if started.returncode != 0:
        pytest.fail(f"sandbox.py up failed:\n{started.stderr}", pytrace=False)
    try:
        yield sandbox_script.read_env_file(env_file)
    finally:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "sandbox.py"), "down", "--env-file", str(env_file)],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        shutil.rmtree(env_file.parent, ignore_errors=True)


@pytest.fixture
def project(sandbox_env, tmp_path) -> Project:
    project = make_project(tmp_path / "project", sandbox_env)
    yield project
    project.cleanup()


@pytest.fixture(scope="module")
def released(sandbox_env, tmp_path_factory) -> Released:
    """One released project per module: its scenarios each run in a copy of it (`live`)."""
    released = Released.deploy(tmp_path_factory.mktemp("released") / "project", sandbox_env)
    yield released
    released.project.cleanup()


@pytest.fixture
def live(released, tmp_path) -> Project:
    """A throwaway copy of the released project: blue live (v1.0.0), green deployed (v1.1.0)."""
    project = released.copy(tmp_path / "project")
    start = {stack: project.fingerprint(stack) for stack in STACKS}
    yield project
    released.done(project, start)
