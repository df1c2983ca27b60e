"""Istio's own validating webhook (istiod, sandbox/istiod.py) at the sandbox's API server: what Istio refuses is
refused at admission with Istio's message; while istiod is down an update of an Istio object meets the
webhook's failure policy, and the gateway keeps serving the last config istiod pushed, as Envoy does. A sandbox
of the module's own: stopping istiod would refuse every other module's Istio objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.released_project import default_route
from harness.sandbox_project import make_project
from sandbox.cluster import Sandbox, stop_recorded
from sandbox.istiod import webhook_answers
from sandbox.xds_propagation import answered_by, wait_for_deployment

NAMESPACE = "istio-webhook-e2e"
DENIED = 'admission webhook "validation.istio.io" denied the request'


@pytest.fixture(scope="module")
def mesh(private_sandbox_env) -> Sandbox:
    """The private sandbox, with the istiod `up` started."""
    sandbox = Sandbox.of_env(private_sandbox_env)
    created = sandbox.kubectl("create", "namespace", NAMESPACE)
    assert created.returncode == 0, created.stderr
    yield sandbox
    sandbox.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


def virtual_service(folder: Path, name: str, **route) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"hosts": ["myapp.example.com"], "http": [{"route": [{"destination": {"host": "myapp-blue"}}], **route}]}}))
    return path


def dry_run(sandbox: Sandbox, path: Path):
    return sandbox.kubectl("apply", "--dry-run=server", "-f", str(path))


def test_a_route_istio_refuses_is_refused_at_admission_with_istios_message(mesh, tmp_path):
    # The CRD's schema takes any string as a regex: only Istio's own validation knows RE2 and its limit.
    too_long = dry_run(mesh, virtual_service(tmp_path, "long", match=[{"uri": {"regex": "a" * 1025}}]))
    assert too_long.returncode != 0
    assert DENIED in too_long.stderr and "regex is too large, max length allowed is 1024" in too_long.stderr
    not_re2 = dry_run(mesh, virtual_service(tmp_path, "bad", match=[{"uri": {"regex": "a("}}]))
    assert DENIED in not_re2.stderr and "error parsing regexp: missing closing )" in not_re2.stderr
    fine = dry_run(mesh, virtual_service(tmp_path, "fine", match=[{"uri": {"regex": "a" * 1024}}], timeout="5s"))
    assert fine.returncode == 0, fine.stderr


def test_while_istiod_is_down_an_update_is_refused_by_the_failure_policy_and_admitted_after_a_restart(mesh, tmp_path):
    route = virtual_service(tmp_path, "myapp", timeout="5s")
    created = mesh.kubectl("apply", "-f", str(route))
    assert created.returncode == 0, created.stderr
    stop_recorded(mesh.folder, only="istiod")
    try:
        update = virtual_service(tmp_path, "myapp", timeout="6s")
        refused = mesh.kubectl("apply", "-f", str(update))
        assert refused.returncode != 0
        assert 'failed calling webhook "validation.istio.io"' in refused.stderr, refused.stderr
        timeout = mesh.kubectl("get", "virtualservice", "myapp", "-n", NAMESPACE, "-o", "jsonpath={.spec.http[0].timeout}")
        assert timeout.stdout == "5s"
        # Only Istio's groups wait on istiod: the rest of the cluster is still admitted.
        other = mesh.kubectl("create", "configmap", "while-istiod-is-down", "-n", NAMESPACE)
        assert other.returncode == 0, other.stderr
    finally:
        restart_istiod(mesh)
    admitted = mesh.kubectl("apply", "-f", str(update))
    assert admitted.returncode == 0, admitted.stderr
    timeout = mesh.kubectl("get", "virtualservice", "myapp", "-n", NAMESPACE, "-o", "jsonpath={.spec.http[0].timeout}")
    assert timeout.stdout == "6s"


def restart_istiod(mesh: Sandbox) -> None:
    mesh.restart("istiod")
    mesh.wait("istiod", "its webhook's answer at admission", webhook_answers(mesh, mesh.folder / "istiod" / "probe.json"))


def test_while_istiod_is_down_users_are_served_by_the_last_push_and_a_flip_is_refused_before_any_change(
        mesh, private_sandbox_env, tmp_path):
    project = make_project(tmp_path / "project", private_sandbox_env)
    try:
        project.deploy_both_colors()
        url = project.env["BLUEGREEN_URL"]
        wait_for_deployment(url, "myapp-blue")
        stop_recorded(mesh.folder, only="istiod")
        try:
            assert {answered_by(url, path=path) for path in ("/", "/api", "/x") * 5} == {(200, "myapp-blue")}
            project.pulumi("config", "set", "active", "green", "-s", "routing")
            flip = project.up("routing", check=False)
            assert flip.code != 0 and 'failed calling webhook "validation.istio.io"' in flip.output, flip.output
            assert default_route(project) == "blue"
            assert answered_by(url) == (200, "myapp-blue")
        finally:
            restart_istiod(mesh)
        project.up("routing")  # the same flip again, once istiod answers: the gateway is pushed it
        wait_for_deployment(url, "myapp-green")
    finally:
        project.cleanup()
