"""Istio's own analysis (`istioctl analyze --use-kube=false`, built by the sandbox from the istio.io/istio istiod
is built from) of the manifests `plan.py --out` writes: the shipped stacks and the release scenarios' configs
leave no error and no warning; a planned manifest broken by hand is caught with Istio's message and exit status.
Needs only the built istioctl, no running sandbox: what the preview workflow runs on a pull request's plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.e2e_tier import e2e_unavailable
from harness.sandbox_project import ROOT
from sandbox.build import build_dir

COMMAND_TIMEOUT = 120  # seconds for plan.py or istioctl; a hung one fails its test
# The release scenarios' routing configs (tests/harness/released_project.py, test_release_cycle.py): a test route,
# named hosts with HTTPS, a flip to green, retries on status codes.
SCENARIOS = {
    "shipped stack files": [],
    "testing green": ["--stack", "routing", "--set", "test=green"],
    "green live, blue under test": ["--stack", "routing", "--set", "active=green", "test=blue"],
    "named hosts with HTTPS": ["--stack", "routing", "--set", "test=green",
                               'hosts=["shop.example.com","www.example.com"]', 'tls={"credentialName":"shop-tls"}'],
    "a migration Job and more pods": ["--stack", "green", "--set", "migrateCommand=npm run migrate", "replicas=3"],
    "timeouts and retries": ["--stack", "routing", "--set", "timeout=5s", "retryAttempts=3", "retryOn=5xx,reset",
                             "retryPerTryTimeout=1s"],
}
# Findings istioctl reports on a correct plan, each with why it is expected; none today.
EXPLAINED: dict[str, str] = {}


@pytest.fixture(scope="module")
def istioctl() -> Path:
    binary = build_dir() / "bin" / "istioctl"
    if not binary.exists():
        problem = e2e_unavailable(required_too=True) or f"the build in {build_dir()} has no istioctl"
        if os.environ.get("BLUEGREEN_E2E") == "require":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return binary


def plan(out: Path, *arguments: str) -> Path:
    done = subprocess.run([sys.executable, "scripts/plan.py", "--out", str(out), *arguments], cwd=ROOT, text=True,
                          capture_output=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(out.glob("*.yaml")), "plan.py wrote no manifest"
    return out


def analyze(istioctl: Path, folder: Path) -> tuple[int, list[dict]]:
    """istioctl's exit status (at its default failure threshold, Error; with --output json it always exits 0, so
    a second run) and its findings of every level."""
    files = [str(path) for path in sorted(folder.glob("*.yaml"))]
    runs = [subprocess.run([str(istioctl), "analyze", "--use-kube=false", *options, *files], text=True,
                           capture_output=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
            for options in ([], ["--output", "json", "--output-threshold", "Info"])]
    return runs[0].returncode, json.loads(runs[1].stdout or "[]")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_istioctl_finds_no_error_or_warning_in_the_planned_manifests(istioctl, tmp_path, scenario):
    status, findings = analyze(istioctl, plan(tmp_path, *SCENARIOS[scenario]))
    unexplained = [f for f in findings if f["level"] in ("Error", "Warning") and f["code"] not in EXPLAINED]
    assert unexplained == [] and status == 0, json.dumps(findings, indent=1)


def test_a_route_to_a_subset_nobody_declares_is_caught(istioctl, tmp_path):
    folder = plan(tmp_path, "--stack", "routing", "--set", "test=green")
    (route,) = folder.glob("routing-virtualservice-*.yaml")
    route.write_text(route.read_text().replace("subset: green", "subset: purple"))
    status, findings = analyze(istioctl, folder)
    assert status != 0
    errors = [f for f in findings if f["level"] == "Error"]
    assert [f["code"] for f in errors] == ["IST0101"], findings
    assert 'host+subset in destinationrule not found: "myapp+purple"' in errors[0]["message"]


def test_a_route_bound_to_a_gateway_nobody_declares_is_caught(istioctl, tmp_path):
    folder = plan(tmp_path)
    (gateway,) = folder.glob("routing-gateway-*.yaml")
    gateway.unlink()  # as if the routing stack's Gateway were gone while its VirtualService stays
    status, findings = analyze(istioctl, folder)
    assert status != 0
    assert any(f["code"] == "IST0101" and "Referenced gateway not found" in f["message"] for f in findings), findings
