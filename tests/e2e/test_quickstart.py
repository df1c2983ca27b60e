"""The README's sandbox quickstart, run as written with the real CLI, then what the API server stores."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest

from components.routes import COLOR_HEADER, color_for
from harness.sandbox_project import ROOT, Project, make_project

PASSWORD = "the-password"  # what the README's quickstart sets as DB_PASSWORD


def quickstart_commands() -> list[str]:
    """The README's sandbox quickstart: the lines between sourcing the sandbox and stopping it."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart without Docker.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README.md has no 'Quickstart without Docker' bash block"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    start = next(i for i, line in enumerate(lines) if line.endswith(". sandbox.env"))
    end = next(i for i, line in enumerate(lines) if "-m sandbox down" in line)
    return [line for line in lines[start + 1:end] if line]


@pytest.fixture(scope="module")
def deployed(sandbox_env, tmp_path_factory) -> Project:
    project = make_project(tmp_path_factory.mktemp("quickstart") / "project", sandbox_env, namespace="default")
    for command in quickstart_commands():
        project.run("bash", "-euo", "pipefail", "-c", command)
    yield project
    # The quickstart runs in the default namespace: leave it empty for the next run on a sandbox that
    # outlives this session (a sourced one); one this session started is thrown away whole.
    if os.environ.get("BLUEGREEN_SANDBOX"):
        for stack in ("routing", "green", "blue"):
            project.pulumi("destroy", "--yes", "-s", stack)


def test_the_quickstart_deploys_both_colors_and_routes_users_to_blue(deployed):
    assert any(cmd.startswith("pulumi up") for cmd in quickstart_commands())
    for color, release in (("blue", "v1.0.0"), ("green", "v1.1.0")):
        outputs = deployed.outputs(color)
        assert outputs == {"color": color, "release": release, "image": f"docker.io/example/myapp:{release}",
                           "deployment": f"myapp-{color}", "namespace": "default", "replicas": 2,
                           "readyReplicas": 2}
    # Pulumi leaves null outputs out: no test route, so no test or testRelease.
    assert deployed.outputs("routing") == {"active": "blue", "activeRelease": "v1.0.0"}


@pytest.mark.parametrize("color, release", [("blue", "v1.0.0"), ("green", "v1.1.0")])
def test_the_api_server_holds_each_deployment_as_the_mock_tests_assert(deployed, color, release):
    deployment = deployed.get("deployment", f"myapp-{color}")
    labels = {"app": "myapp", "color": color, "release": release}
    assert deployment["metadata"]["labels"] == labels
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "myapp", "color": color}}
    # the pods also carry Istio's telemetry label version (the release); the selector stays as it was
    assert deployment["spec"]["template"]["metadata"]["labels"] == {**labels, "version": release}
    assert deployment["spec"]["replicas"] == 2
    assert deployment["status"]["readyReplicas"] == 2  # kwok made the pods ready; pulumi-kubernetes awaited them
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"docker.io/example/myapp:{release}"
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 3000, "scheme": "HTTP"}
    env = {item["name"]: item for item in container["env"]}
    assert env["NODE_ENV"] == {"name": "NODE_ENV", "value": "production"}
    assert env["DB_SCHEMA"] == {"name": "DB_SCHEMA", "value": f"myapp_{color}"}
    secret_name = env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
    assert secret_name.startswith(f"myapp-{color}-env-")
    secret = deployed.get("secret", secret_name)
    assert secret["immutable"] is True
    assert base64.b64decode(secret["data"]["DB_PASSWORD"]).decode() == PASSWORD
    assert PASSWORD not in json.dumps(deployment)
    pods = deployed.kubectl("get", "pods", "-n", "default", "-l", f"app=myapp,color={color}", "-o", "json").json()
    assert [pod["status"]["phase"] for pod in pods["items"]] == ["Running", "Running"]
    assert all(pod["metadata"]["labels"]["release"] == release for pod in pods["items"])


def test_the_api_server_holds_the_service_gateway_and_both_subsets(deployed):
    service = deployed.get("service", "myapp")
    assert service["spec"]["selector"] == {"app": "myapp"}
    gateway = deployed.get("gateway.networking.istio.io", "myapp-gateway")
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    rule = deployed.get("destinationrule.networking.istio.io", "myapp-blue-green")
    assert {s["name"]: s["labels"] for s in rule["spec"]["subsets"]} == {
        "blue": {"color": "blue"}, "green": {"color": "green"}}
    # Endpoints: the Service selects both colors' ready pods (the subsets split them).
    slices = deployed.kubectl("get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=myapp",
                              "-o", "json").json()
    addresses = [e for s in slices["items"] for e in s.get("endpoints") or []]
    assert len(addresses) == 4


def test_the_stored_virtualservice_routes_each_cookie_case_as_the_mock_tests_say(deployed):
    token = deployed.pulumi("config", "get", "testToken", "-s", "routing").stdout.strip()
    deployed.pulumi("config", "set", "test", "green", "-s", "routing")
    try:
        deployed.up("routing")
        assert deployed.outputs("routing") == {"active": "blue", "activeRelease": "v1.0.0", "test": "green",
                                               "testRelease": "v1.1.0"}
        http = deployed.get("virtualservice.networking.istio.io", "myapp-blue-green")["spec"]["http"]
        cases = {
            f"test={token}": "green",
            f"a=b; test={token}": "green",  # what a browser sends; the tutorial's regex misses it
            f"test={token}; a=b": "green",
            "test=true": "blue",  # the tutorial's cookie is not enough once a token is set
            f"xtest={token}": "blue",
            f"test={token}x": "blue",
            "": "blue",
        }
        for cookie, color in cases.items():
            headers = {"cookie": cookie} if cookie else {}
            assert color_for(http, headers) == color, cookie
        header = {r["name"]: r["headers"]["response"]["set"][COLOR_HEADER] for r in http}
        assert header == {"myapp-test": "green", "myapp-default": "blue"}
    finally:
        deployed.pulumi("config", "rm", "test", "-s", "routing")
        deployed.up("routing")


def test_secrets_stay_secret_in_state_outputs_cli_output_and_logs(deployed, sandbox_env):
    token = deployed.pulumi("config", "get", "testToken", "-s", "routing").stdout.strip()
    assert len(token) == 48
    for stack in ("blue", "green", "routing"):
        state = json.dumps(deployed.export(stack))
        assert PASSWORD not in state and token not in state, stack
        assert PASSWORD not in deployed.pulumi("stack", "output", "--json", "--show-secrets", "-s", stack).stdout
        assert "the-password" not in Path(deployed.folder / f"Pulumi.{stack}.yaml").read_text()
    for run in deployed.runs:
        if run.args[0] == "kubectl" or run.args[:3] == ["pulumi", "config", "get"]:
            continue  # asked for the value on purpose, or read the VirtualService, which must hold the token
        assert PASSWORD not in run.output and token not in run.output, run.args
    logs = Path(sandbox_env["BLUEGREEN_SANDBOX"]) / "logs"
    for log in logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert PASSWORD not in text and token not in text, log.name
    for deployment in ("myapp-blue", "myapp-green"):
        assert PASSWORD not in json.dumps(deployed.get("deployment", deployment))


def test_a_flip_previews_as_one_update_of_the_virtualservice_and_nothing_replaced(deployed):
    before = deployed.objects()
    deployed.pulumi("config", "set", "active", "green", "-s", "routing")
    try:
        preview = deployed.pulumi("preview", "--json", "-s", "routing").json()
    finally:
        deployed.pulumi("config", "set", "active", "blue", "-s", "routing")
    # "read" and "discard" steps touch no object: the program reads the routed colors' live Deployments,
    # and the engine drops from state the reads of a color no longer routed (blue, after the flip).
    changes = [(step["op"], step["urn"].split("::")[-2].split("$")[-1])
               for step in preview["steps"] if step["op"] not in ("same", "read", "discard")]
    assert changes == [("update", "kubernetes:networking.istio.io/v1:VirtualService")]
    assert preview["changeSummary"].get("update") == 1
    assert not {"replace", "create-replacement", "delete-replaced", "delete"} & set(preview["changeSummary"])
    assert deployed.objects() == before  # a preview changes nothing
