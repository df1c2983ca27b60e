"""The guardrail policy pack (policy/): its checks on the objects the program really declares.

Objects come from the real program under the mock engine (run_program); a failing case is that
output with one thing broken, so each test shows which change a policy catches.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import runpy
import sys
from pathlib import Path

import pulumi_policy
import yaml
from pulumi_policy.proxy import unknown_checking_proxy

from bluegreen_tools.offline import run_program
from bluegreen_tools.secret_values import reveal

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policy"

_spec = importlib.util.spec_from_file_location("guardrails", POLICY / "guardrails.py")
guardrails = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guardrails)

COLOR = {"color": "blue", "image": "registry.example.com/shop:v1.4.0", "replicas": "2",
         "env": json.dumps({"NODE_ENV": "production", "DB_USER": "shop", "KEYCLOAK_URL": "https://id.example.com"})}
READY = {"color": "blue", "release": "v1.4.0", "readyReplicas": 2}


def color_objects(**config) -> dict[str, dict]:
    run = run_program("blue", {**COLOR, **config}, frozenset({"secretEnv"}) if "secretEnv" in config else frozenset())
    assert run.error is None, run.error
    return {o.kind: reveal(o.inputs) for o in run.kubernetes_objects}  # what the policy engine sees: plain values


def routing_objects(**config) -> list[dict]:
    outputs = {f"organization/bluegreen/{c}": {**READY, "color": c, "deployment": f"myapp-{c}"} for c in ("blue", "green")}
    run = run_program("routing", {"active": "blue", **config}, stack_outputs=outputs)
    assert run.error is None, run.error
    return [reveal(o.inputs) for o in run.kubernetes_objects]


def one(objects: list[dict], kind: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def with_limits(deployment: dict, limits: dict) -> dict:
    changed = copy.deepcopy(deployment)
    for container in changed["spec"]["template"]["spec"]["containers"]:
        container.setdefault("resources", {})["limits"] = limits
    return changed


# ---------------------------------------------------------------- Deployments


def test_readiness_probe_policy():
    deployment = color_objects()["Deployment"]
    assert guardrails.missing_readiness_probes(deployment) == []
    broken = copy.deepcopy(deployment)
    del broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    [message] = guardrails.missing_readiness_probes(broken)
    assert "Deployment myapp-blue" in message and "'myapp' has no readinessProbe" in message


def test_resource_limits_policy():
    deployment = color_objects()["Deployment"]
    assert guardrails.missing_resource_limits(with_limits(deployment, {"cpu": "500m", "memory": "256Mi"})) == []
    [message] = guardrails.missing_resource_limits(with_limits(deployment, {}))
    assert "no cpu or memory limit" in message
    [message] = guardrails.missing_resource_limits(with_limits(deployment, {"cpu": "500m"}))
    assert "no memory limit" in message
    # Only Deployments: the migration Job is not held to it.
    assert guardrails.missing_resource_limits(color_objects(migrateCommand="npm run migrate")["Job"]) == []


def test_plain_secret_env_policy():
    objects = color_objects()
    assert guardrails.plain_secret_env(objects["Deployment"]) == []  # DB_USER, KEYCLOAK_URL: not secrets
    # From a Secret (bluegreen:secretEnv): fine; as a plain value (bluegreen:env): blocked, in the Job too.
    objects = color_objects(secretEnv=json.dumps({"DB_PASSWORD": "s"}), migrateCommand="npm run migrate",
                            env=json.dumps({"API_KEY": "k", "GITHUB_TOKEN": "t", "CLIENT_SECRET": "c", "MONKEY": "m"}))
    flagged = guardrails.plain_secret_env(objects["Deployment"])
    assert [m.split(" sets ")[1].split()[0] for m in flagged] == ["API_KEY", "CLIENT_SECRET", "GITHUB_TOKEN"]
    assert len(guardrails.plain_secret_env(objects["Job"])) == 3
    assert "secretEnv.API_KEY" in flagged[0]
    objects = color_objects(env=json.dumps({"DB_PASSWORD": "p"}))
    assert len(guardrails.plain_secret_env(objects["Deployment"])) == 1


# ---------------------------------------------------------------- routes


def test_routes_to_unknown_subsets_policy():
    objects = routing_objects(test="green")
    assert guardrails.routes_to_unknown_subsets(objects) == []
    rule = one(objects, "DestinationRule")
    rule["spec"]["subsets"] = [s for s in rule["spec"]["subsets"] if s["name"] != "blue"]
    [message] = guardrails.routes_to_unknown_subsets(objects)
    assert "the default route 'myapp-default' goes to subset 'blue'" in message
    # A fully qualified host is the same service as the DestinationRule's short one.
    objects = routing_objects()
    one(objects, "VirtualService")["spec"]["http"][0]["route"][0]["destination"]["host"] = "myapp.default.svc.cluster.local"
    assert guardrails.routes_to_unknown_subsets(objects) == []
    # ... but not a service of another namespace.
    one(objects, "VirtualService")["spec"]["http"][0]["route"][0]["destination"]["host"] = "myapp.other"
    assert len(guardrails.routes_to_unknown_subsets(objects)) == 1
    # No DestinationRule in the stack at all: every subset is unknown.
    assert len(guardrails.routes_to_unknown_subsets([one(routing_objects(test="green"), "VirtualService")])) == 2


def test_catch_all_test_route_policy():
    virtual_service = one(routing_objects(test="green"), "VirtualService")
    assert guardrails.catch_all_test_routes(virtual_service) == []
    assert guardrails.catch_all_test_routes(one(routing_objects(), "VirtualService")) == []  # the default alone
    no_condition = copy.deepcopy(virtual_service)
    del no_condition["spec"]["http"][0]["match"]
    [message] = guardrails.catch_all_test_routes(no_condition)
    assert "route 'myapp-test' (to green)" in message and "takes every request" in message
    named_only = copy.deepcopy(virtual_service)
    named_only["spec"]["http"][0]["match"] = [{"name": "testers"}]
    assert len(guardrails.catch_all_test_routes(named_only)) == 1
    # The default route moved first shadows the test route: it is the catch-all before the last route.
    swapped = copy.deepcopy(virtual_service)
    swapped["spec"]["http"].reverse()
    [message] = guardrails.catch_all_test_routes(swapped)
    assert "'myapp-default'" in message


# ---------------------------------------------------------------- the pack itself


def policy(name):
    [found] = [p for p in guardrails.POLICIES if p.name == name]
    return found


def validate_resource(name, obj, resource_type):
    reported = []
    args = pulumi_policy.ResourceValidationArgs(resource_type, unknown_checking_proxy(obj), "urn:x", "x",
                                                None, None)
    policy(name).validate(args, lambda message, urn=None: reported.append(message))
    return reported


def test_policies_run_the_checks_on_the_engines_props():
    """Wired as the engine calls them: props behind pulumi_policy's proxies, resources by type token."""
    broken = copy.deepcopy(color_objects()["Deployment"])
    del broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    del broken["spec"]["template"]["spec"]["containers"][0]["resources"]  # the program sets limits
    assert len(validate_resource("deployment-readiness-probe", broken, "kubernetes:apps/v1:Deployment")) == 1
    assert len(validate_resource("deployment-resource-limits", broken, "kubernetes:apps/v1:Deployment")) == 1
    virtual_service = one(routing_objects(test="green"), "VirtualService")
    del virtual_service["spec"]["http"][0]["match"]
    assert len(validate_resource("test-route-not-catch-all", virtual_service,
                                 "kubernetes:networking.istio.io/v1:VirtualService")) == 1

    objects = routing_objects(test="green")
    one(objects, "DestinationRule")["spec"]["subsets"].pop()
    resources = [pulumi_policy.PolicyResource(f"kubernetes:networking.istio.io/v1:{o['kind']}",
                                              unknown_checking_proxy(o), "urn:x", "x", None, None, None, [], {})
                 for o in objects]
    reported = []
    policy("virtualservice-subsets-defined").validate(pulumi_policy.StackValidationArgs(resources),
                                                      lambda message, urn=None: reported.append(message))
    assert len(reported) == 1 and "'green'" in reported[0]


def test_pack_is_mandatory_and_holds_every_policy(monkeypatch):
    made = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: made.update(kwargs))  # no gRPC server
    monkeypatch.syspath_prepend(str(POLICY))
    monkeypatch.delitem(sys.modules, "guardrails", raising=False)
    runpy.run_path(str(POLICY / "__main__.py"))
    assert made["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    assert sorted(p.name for p in made["policies"]) == sorted(p.name for p in guardrails.POLICIES)
    assert len(guardrails.POLICIES) == 5
    assert yaml.safe_load((POLICY / "PulumiPolicy.yaml").read_text())["runtime"]["name"] == "python"


def test_pack_requirements_are_pinned_to_the_programs_versions():
    def pins(path):
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return dict(line.split("==") for line in lines if "==" in line)

    pack, program = pins(POLICY / "requirements.txt"), pins(ROOT / "requirements.txt")
    assert set(pack) == {"pulumi", "pulumi-policy"}
    assert pack["pulumi"] == program["pulumi"]
    assert pack["pulumi-policy"] == importlib.metadata.version("pulumi-policy")  # what these tests ran
