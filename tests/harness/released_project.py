"""The seed's release cycle for real: a released project (blue live, green deployed), release.py run in a
throwaway copy of it with the real CLI against the sandbox, and what the cluster then holds, seen through
the gateway stand-in, which routes by the VirtualService the API server holds."""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import requests
import yaml

from harness.sandbox_project import Project, make_project

SETTLE = "1"  # the gateway stand-in re-reads the cluster every 0.5 s
STACKS = ("blue", "green", "routing")  # in the order they are put back: routing's guards read the Deployments


@dataclass
class Released:
    """Blue live (v1.0.0) behind the routing stack, green deployed with v1.1.0 after a migration Job; which
    stacks the last scenario changed (in its copy, and so in the cluster, which all copies share)."""

    project: Project
    # green's migration Job and Deployment as the deploy left them (later scenarios may run the Job again)
    first_migration: dict = field(default_factory=dict)
    first_rollout: dict = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)

    @classmethod
    def deploy(cls, folder: Path, sandbox_env: dict[str, str]) -> "Released":
        project = make_project(folder, sandbox_env)
        project.init_stacks(*STACKS)
        for color in ("blue", "green"):
            project.pulumi("config", "set", "replicas", "1", "-s", color)
            project.pulumi("config", "set", "--secret", "--path", "secretEnv.DB_PASSWORD", "pw-" + color, "-s", color)
        project.pulumi("config", "set", "--secret", "testToken", "t0ken-" + "x" * 20, "-s", "routing")
        project.up("blue")
        project.up("routing")
        project.pulumi("config", "set", "migrateCommand", "npm run migrate", "-s", "green")
        project.up("green")
        return cls(project, project.get("job", "myapp-green-migrate"), project.get("deployment", "myapp-green"))

    @classmethod
    @contextmanager
    def deployed(cls, folder: Path, sandbox_env: dict[str, str]) -> Iterator["Released"]:
        """A released project for the block; its namespace deleted after it."""
        released = cls.deploy(folder, sandbox_env)
        try:
            yield released
        finally:
            released.project.cleanup()

    def copy(self, folder: Path) -> Project:
        """A throwaway copy of the released project, with the cluster put back to it first: each stack the
        last scenario changed is refreshed from the cluster and updated to the released config."""
        project = self.project.copy_to(folder)
        for stack in STACKS:
            if stack in self.changed:
                project.pulumi("up", "--refresh", "--yes", "--skip-preview", "-s", stack)
        self.changed = set(STACKS)  # until the scenario ends and shows what it changed
        return project

    def done(self, project: Project, start: dict[str, bytes]) -> None:
        """After a scenario in `project`: remember what it changed; drop the app stand-ins' behaviours.

        A stack the scenario updated but put back (a promote that failed and restored the routes) is not
        changed: its last update succeeded with the released config and declared what the release declared,
        so the cluster holds the released objects, and putting them back would cost an update for nothing."""
        self.changed = {stack for stack in STACKS if project.fingerprint(stack) != start[stack]
                        and desired_state(project, stack) != desired_state(self.project, stack)}
        shutil.rmtree(Path(project.env["BLUEGREEN_SANDBOX"]) / "apps" / project.namespace, ignore_errors=True)


def desired_state(project: Project, stack: str) -> Optional[tuple[Any, dict[str, Any]]]:
    """The stack's config and the inputs of every object it manages, as its last update left them; None when
    that update did not succeed or left an operation pending (the cluster may then hold anything)."""
    history = project.backend / ".pulumi" / "history" / "bluegreen" / stack
    updates = sorted(history.glob(f"{stack}-*.history.json"), key=lambda path: int(path.name.split("-")[-1].split(".")[0]))
    if not updates or json.loads(updates[-1].read_text()).get("result") != "succeeded":
        return None
    latest = json.loads((project.backend / ".pulumi" / "stacks" / "bluegreen" / f"{stack}.json").read_text())
    latest = latest["checkpoint"]["latest"]
    if latest.get("pending_operations"):
        return None
    config = yaml.safe_load((project.folder / f"Pulumi.{stack}.yaml").read_text())
    return config, {resource["urn"]: resource.get("inputs") for resource in latest.get("resources") or []
                    if not resource.get("external")}


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


def record(project: Project) -> Optional[dict[str, Any]]:
    """The release record's Lease as the API server holds it, or None."""
    return project.get("lease", "myapp-release")


def held_record(project: Project) -> Optional[str]:
    """Who holds the release record (its Lease's holderIdentity), or None when no release is in progress."""
    lease = record(project)
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")

