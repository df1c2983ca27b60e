"""A throwaway copy of the project, run with the real CLI against the sandbox: the e2e tests' world."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sandbox import cluster as sandbox_script

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 300  # seconds for one pulumi or kubectl command; a hung one fails its test
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.blue.yaml", "Pulumi.green.yaml", "Pulumi.routing.yaml", "__main__.py",
                 "requirements.txt", "components", "scripts", "policy")


@dataclass
class Run:
    """One finished command."""

    args: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Project:
    """A throwaway copy of the project with its own Pulumi backend, and a namespace of its own."""

    folder: Path
    env: dict[str, str]
    namespace: str
    runs: list[Run] = field(default_factory=list)

    def run(self, *args: str, check: bool = True, env: Optional[dict[str, str]] = None,
            timeout: float = COMMAND_TIMEOUT) -> Run:
        done = subprocess.run(list(args), cwd=self.folder, env={**self.env, **(env or {})}, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        run = Run(list(args), done.returncode, done.stdout, done.stderr)
        self.runs.append(run)
        if check and done.returncode != 0:
            raise AssertionError(f"`{' '.join(args)}` exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                                 f"{done.stderr[-3000:]}")
        return run

    def pulumi(self, *args: str, check: bool = True, **kwargs) -> Run:
        return self.run("pulumi", *args, check=check, **kwargs)

    def kubectl(self, *args: str, check: bool = True) -> Run:
        return self.run("kubectl", *args, check=check)

    def get(self, kind: str, name: str) -> Optional[dict[str, Any]]:
        """An object as the API server stores it, or None."""
        found = self.kubectl("get", kind, name, "-n", self.namespace, "-o", "json", check=False)
        if found.code != 0:
            assert "NotFound" in found.stderr, found.stderr
            return None
        return found.json()

    def objects(self) -> dict[str, str]:
        """Every object of the project's kinds in its namespace, by kind/name, with its resourceVersion."""
        kinds = "deployments,replicasets,services,secrets,jobs,poddisruptionbudgets," \
                "gateways.networking.istio.io,destinationrules.networking.istio.io," \
                "virtualservices.networking.istio.io"
        listed = self.kubectl("get", kinds, "-n", self.namespace, "-o", "json").json()
        return {f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["resourceVersion"]
                for item in listed["items"]}

    def export(self, stack: str) -> dict[str, Any]:
        return self.pulumi("stack", "export", "-s", stack).json()

    def outputs(self, stack: str) -> dict[str, Any]:
        return self.pulumi("stack", "output", "--json", "-s", stack).json()

    def init_stacks(self, *stacks: str) -> None:
        for stack in stacks:
            self.pulumi("stack", "init", stack)
            if self.namespace != "default":
                self.pulumi("config", "set", "namespace", self.namespace, "-s", stack)

    def cleanup(self) -> None:
        """Stop the project's gateway; delete its namespace (not waiting): the sandbox stays small across scenarios.
        Namespace default's gateway and namespace are the sandbox's own (`up` started it): they stay."""
        if self.namespace != "default":
            sandbox_script.stop_recorded(Path(self.env["BLUEGREEN_SANDBOX"]), only=f"gateway-{self.namespace}")
            self.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)

    def deploy_both_colors(self, *extra_stacks: str) -> None:
        """Blue live (v1.0.0), green deployed (v1.1.0), no test route; one pod each, to stay quick."""
        self.init_stacks("blue", "green", "routing", *extra_stacks)
        for color in ("blue", "green"):
            self.pulumi("config", "set", "replicas", "1", "-s", color)
            self.up(color)
        self.up("routing")

    def up(self, stack: str, check: bool = True) -> Run:
        return self.pulumi("up", "--yes", "--skip-preview", "-s", stack, check=check)

    @property
    def backend(self) -> Path:
        return self.folder / ".pulumi-state"

    def fingerprint(self, stack: str) -> bytes:
        """The stack's config file and its checkpoint in the file backend, as bytes: what changes when
        anything is set or updated."""
        checkpoint = self.backend / ".pulumi" / "stacks" / "bluegreen" / f"{stack}.json"
        return (self.folder / f"Pulumi.{stack}.yaml").read_bytes() + b"\0" + checkpoint.read_bytes()

    def copy_to(self, folder: Path) -> "Project":
        """A throwaway copy of this project, files and backend, that manages the same namespace."""
        shutil.copytree(self.folder, folder, symlinks=True)
        return Project(folder, {**self.env, "PULUMI_BACKEND_URL": f"file://{folder / '.pulumi-state'}"},
                       self.namespace)


def make_project(folder: Path, env: dict[str, str], namespace: str = "") -> Project:
    """Copy the project into `folder`, with its own file backend, (unless given) a fresh namespace, and a
    gateway stand-in that serves that namespace only ($BLUEGREEN_URL): projects share the sandbox. In namespace
    default, the gateway is the one `python -m sandbox up` started for it, as in the README's quickstart."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__", "venv"))
        else:
            shutil.copy2(source, folder / name)
    # The project's virtualenv is the one running these tests: the pinned requirements are in it.
    (folder / "venv").symlink_to(sys.prefix, target_is_directory=True)
    (folder / "policy" / "venv").symlink_to(sys.prefix, target_is_directory=True)  # it holds pulumi-policy too
    backend = folder / ".pulumi-state"
    backend.mkdir()
    project = Project(folder, {**os.environ, **env, "PULUMI_BACKEND_URL": f"file://{backend}"},
                      namespace or f"e2e-{secrets.token_hex(4)}")
    if project.namespace != "default":
        project.kubectl("create", "namespace", project.namespace)
        project.env["BLUEGREEN_URL"] = sandbox_script.start_gateway(sandbox_script.Sandbox.of_env(env),
                                                                    project.namespace)
    return project
