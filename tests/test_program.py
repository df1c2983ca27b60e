"""The real program under Pulumi's mock engine: what each role declares, and every guard."""

import json
from pathlib import Path

import pulumi
import pytest

from components import program as program_module
from components.children import child_options
from components.contract import ColorOutputs, RoutingOutputs
from bluegreen_tools.secret_values import SecretValue, mask, reveal
from bluegreen_tools.stack_config import stack_file_config
from components.routes import COLOR_HEADER, color_for
from harness.stacks import (
    BLUE_STACK, DEFAULTS, GREEN_STACK, ROOT, ROUTING_STACK, assert_schema_valid, color_outputs, deployed, run_stack,
)
from bluegreen_tools.offline import run_program

COLOR_OUTPUT_NAMES = set(ColorOutputs.names())
SECRET = "s3cr3t-Pa55word-never-shown"


def blue(**config):
    return {"color": "blue", "image": "registry.example.com/myapp:v2.0.0", **config}


def routing_outputs(active="green", active_release="v1.1.0", test=None):
    return {ROUTING_STACK: RoutingOutputs(active=active, test=test, active_release=active_release).exported()}


def k8s_objects(run):
    return {(d.kind, d.k8s_name or d.name): reveal(d.inputs) for d in run.kubernetes_objects}


# --- the shipped stack files run as they are ---------------------------------------------------

def shipped(stack):
    return stack_file_config(ROOT / f"Pulumi.{stack}.yaml")


@pytest.mark.parametrize("stack", ["blue", "green"])
def test_shipped_color_stack_file_runs_as_is(stack):
    config, secret_keys = shipped(stack)
    run = run_stack(stack, config, secret_keys, outputs=routing_outputs(active="blue", active_release="v1.0.0"))
    assert run.error is None
    assert set(run.outputs) == COLOR_OUTPUT_NAMES
    assert run.outputs["color"] == stack
    assert run.outputs["deployment"] == f"myapp-{stack}"
    assert run.outputs["readyReplicas"] == run.outputs["replicas"] == 2
    assert_schema_valid(run)


def test_shipped_routing_stack_file_runs_as_is():
    config, secret_keys = shipped("routing")
    run = run_stack("routing", config, secret_keys, outputs=deployed())
    assert run.error is None
    # Pulumi leaves outputs whose value is None out of the stack's outputs: absent means null.
    assert run.outputs == {"active": "blue", "activeRelease": "v1.0.0"}
    assert sorted(k8s_objects(run)) == [("DestinationRule", "myapp-blue-green"), ("Gateway", "myapp-gateway"),
                                        ("Service", "myapp"), ("VirtualService", "myapp-blue-green")]
    assert_schema_valid(run)


def test_components_carry_the_project_type_tokens():
    run = run_stack("routing", {"active": "blue"}, outputs=deployed())
    assert {d.type for d in run.resources if not d.type.startswith("kubernetes:")} == {
        "bluegreen:gateway:IngressGateway", "bluegreen:destinations:ColorDestinations",
        "bluegreen:virtualservice:BlueGreenRoutes"}
    run = run_stack("blue", blue())
    assert "bluegreen:workload:ColorWorkload" in {d.type for d in run.resources}


# Each resource's URN as the mock engine makes it: a changed URN replaces the live object on the next update,
# unless the resource carries an alias to the old one (components/children.py: the rule for renames).
COLOR_URNS = {
    "pulumi:pulumi:Stack::bluegreen-blue",
    "pulumi:pulumi:Stack$bluegreen:workload:ColorWorkload::myapp-blue",
    "bluegreen:workload:ColorWorkload$kubernetes:apps/v1:Deployment::myapp-blue",
    "bluegreen:workload:ColorWorkload$kubernetes:policy/v1:PodDisruptionBudget::myapp-blue",
    "bluegreen:workload:ColorWorkload$kubernetes:core/v1:Secret::myapp-blue-env",
    "bluegreen:workload:ColorWorkload$kubernetes:batch/v1:Job::myapp-blue-migrate",
}
ROUTING_URNS = {
    "pulumi:pulumi:Stack::bluegreen-routing",
    "pulumi:pulumi:Stack$pulumi:pulumi:StackReference::organization/bluegreen/blue",
    "pulumi:pulumi:Stack$pulumi:pulumi:StackReference::organization/bluegreen/green",
    "pulumi:pulumi:Stack$kubernetes:apps/v1:Deployment::myapp-blue-live",
    "pulumi:pulumi:Stack$kubernetes:apps/v1:Deployment::myapp-green-live",
    "pulumi:pulumi:Stack$bluegreen:gateway:IngressGateway::myapp-gateway",
    "bluegreen:gateway:IngressGateway$kubernetes:networking.istio.io/v1:Gateway::myapp-gateway",
    "pulumi:pulumi:Stack$bluegreen:destinations:ColorDestinations::myapp",
    "bluegreen:destinations:ColorDestinations$kubernetes:core/v1:Service::myapp",
    "bluegreen:destinations:ColorDestinations$kubernetes:networking.istio.io/v1:DestinationRule::myapp-blue-green",
    "pulumi:pulumi:Stack$bluegreen:virtualservice:BlueGreenRoutes::myapp-blue-green",
    "bluegreen:virtualservice:BlueGreenRoutes$kubernetes:networking.istio.io/v1:VirtualService::myapp-blue-green",
}


def urns(run, stack):
    return {urn.removeprefix(f"urn:pulumi:{stack}::bluegreen::"): sorted(
        dependency.rpartition("::")[2] for dependency in dependencies) for urn, dependencies in run.urns.items()}


def test_urns_stay_those_of_deployed_stacks_and_children_wait_for_what_they_need():
    run = run_stack("blue", blue(replicas=2, migrateCommand="npm run migrate", secretEnv={"DB_PASSWORD": SECRET}),
                    secret_keys={"secretEnv"})
    declared = urns(run, "blue")
    assert set(declared) == COLOR_URNS
    deployment = declared["bluegreen:workload:ColorWorkload$kubernetes:apps/v1:Deployment::myapp-blue"]
    assert "myapp-blue-migrate" in deployment  # the migration runs before the pods roll out
    run = run_stack("routing", {"active": "blue", "test": "green"}, outputs=deployed())
    declared = urns(run, "routing")
    assert set(declared) == ROUTING_URNS
    # Subsets and gateway first: a route to a subset Istio does not know yet answers 503.
    assert {"myapp-blue-green", "myapp-gateway"} <= set(declared[
        "bluegreen:virtualservice:BlueGreenRoutes$kubernetes:networking.istio.io/v1:VirtualService::myapp-blue-green"])
    assert "myapp" in declared[
        "bluegreen:destinations:ColorDestinations$kubernetes:networking.istio.io/v1:DestinationRule::myapp-blue-green"]


def test_a_child_gets_its_parent_and_what_the_component_means_for_it():
    component = object()
    child = child_options(component, delete_before_replace=True)
    assert child.parent is component and child.delete_before_replace
    assert child.protect is None and child.aliases is None and child.transformations is None


def test_a_callers_options_reach_each_child_once_through_the_sdk(monkeypatch):
    # The SDK runs a component's transformations on its children and passes protect down; copying the caller's
    # options into each child ran a transformation twice and put ignore_changes meant for the component on it.
    calls = []

    def transformation(args):
        calls.append((args.type_, args.name, args.opts.ignore_changes, args.resource))

    caller = pulumi.ResourceOptions(transformations=[transformation], ignore_changes=["spec"], protect=True)
    for name in ("IngressGateway", "ColorDestinations", "BlueGreenRoutes", "ColorWorkload"):
        component = getattr(program_module, name)
        monkeypatch.setattr(program_module, name, lambda logical, args, opts=None, _component=component: _component(
            logical, args, pulumi.ResourceOptions.merge(opts, caller)))
    runs = [run_stack("routing", {"active": "blue", "test": "green"}, outputs=deployed()),
            run_stack("blue", blue(replicas=2, migrateCommand="npm run migrate", secretEnv={"DB_PASSWORD": SECRET}),
                      secret_keys={"secretEnv"})]
    assert all(run.error is None for run in runs)
    children = [(type_, name, ignored, resource) for type_, name, ignored, resource in calls
                if not type_.startswith("bluegreen:")]
    assert sorted(name for _, name, _, _ in children) == sorted(
        ["myapp-gateway", "myapp", "myapp-blue-green", "myapp-blue-green", "myapp-blue", "myapp-blue-env",
         "myapp-blue-migrate", "myapp-blue"])  # each child once: the Deployment and the PDB share a name
    assert len({(type_, name) for type_, name, _, _ in children}) == len(children)  # no child run twice
    assert all(ignored is None for _, _, ignored, _ in children)  # the component's ignore_changes stays its own
    assert all(resource._protect for _, _, _, resource in children)  # protect reaches them through the parent
    components = [ignored for type_, _, ignored, _ in calls if type_.startswith("bluegreen:")]
    assert len(components) == 4 and all(ignored == ["spec"] for ignored in components)


def test_deployment_names_labels_selector_and_probe():
    run = run_stack("blue", blue(port=8080, readinessPath="/healthz", replicas=3))
    deployment = reveal(run.one("Deployment").inputs)
    assert deployment["metadata"]["name"] == "myapp-blue"
    assert deployment["metadata"]["labels"] == {"app": "myapp", "color": "blue", "release": "v2.0.0"}
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "myapp", "color": "blue"}}
    # Istio's telemetry labels (app, version) on the pods only: its metrics then tell colors and releases apart.
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "myapp", "color": "blue",
                                                                    "release": "v2.0.0", "version": "v2.0.0"}
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/myapp:v2.0.0"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    # pulumi-kubernetes awaits the rollout unless told to skip it: nothing here tells it to.
    assert "pulumi.com/skipAwait" not in (deployment["metadata"].get("annotations") or {})
    assert_schema_valid(run)


def test_a_new_release_changes_labels_but_never_the_selector():
    old = reveal(run_stack("blue", blue()).one("Deployment").inputs)
    new = reveal(run_stack("blue", blue(image="registry.example.com/myapp:v3.0.0")).one("Deployment").inputs)
    assert old["metadata"]["name"] == new["metadata"]["name"]
    assert old["spec"]["selector"] == new["spec"]["selector"]
    assert new["spec"]["template"]["metadata"]["labels"]["release"] == "v3.0.0"
    assert new["spec"]["template"]["metadata"]["labels"]["version"] == "v3.0.0"  # Istio's destination_version
    assert "version" not in new["spec"]["selector"]["matchLabels"]


def test_plain_env_and_secret_env_reach_the_container_and_the_secret_stays_secret():
    config = blue(env={"NODE_ENV": "production", "DB_PORT": 5432},
                  secretEnv={"DB_PASSWORD": SECRET})
    run = run_stack("blue", config, secret_keys={"secretEnv"})
    assert run.error is None
    deployment = run.one("Deployment").inputs
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    secret = run.one("Secret")
    assert env[:2] == [{"name": "DB_PORT", "value": "5432"}, {"name": "NODE_ENV", "value": "production"}]
    assert env[2] == {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": reveal(secret.inputs)["metadata"].get("name") or env[2]["valueFrom"]["secretKeyRef"]["name"],
        "key": "DB_PASSWORD"}}}
    assert env[2]["valueFrom"]["secretKeyRef"]["name"].startswith("myapp-blue-env-")
    # The value is only in the Secret, and there it is a Pulumi secret.
    assert SECRET not in json.dumps(reveal(deployment))
    assert isinstance(secret.inputs["stringData"], SecretValue)
    assert reveal(secret.inputs["stringData"]) == {"DB_PASSWORD": SECRET}
    assert secret.inputs["immutable"] is True
    assert SECRET not in json.dumps(mask(run.outputs)) and SECRET not in json.dumps(
        [mask(d.inputs) for d in run.resources])
    assert_schema_valid(run)


def test_migration_job_runs_the_command_with_the_image_and_is_never_a_service_endpoint():
    run = run_stack("blue", blue(migrateCommand="npm run migrate", env={"DB_HOST": "db"},
                                 secretEnv={"DB_PASSWORD": SECRET}), secret_keys={"secretEnv"})
    job = reveal(run.one("Job").inputs)
    deployment = reveal(run.one("Deployment").inputs)
    assert job["metadata"]["name"] == "myapp-blue-migrate"
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["npm", "run", "migrate"]
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["env"] == deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert pod["spec"]["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert "app" not in pod["metadata"]["labels"]  # the Service selects app=<app>
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert [d.kind for d in run.kubernetes_objects].index("Job") < [
        d.kind for d in run.kubernetes_objects].index("Deployment")
    assert_schema_valid(run)


def test_no_migration_job_without_a_command():
    assert run_stack("blue", blue()).of_kind("Job") == []


def test_ready_replicas_reports_what_the_awaited_deployment_reports():
    assert run_stack("blue", blue(replicas=2), ready=False).outputs["readyReplicas"] == 0
    assert run_stack("blue", blue(replicas=2), ready=True).outputs["readyReplicas"] == 2


# --- the routing stack ----------------------------------------------------------------------------

def test_gateway_service_and_destination_rule(routing_run):
    objects = k8s_objects(routing_run(hosts=["shop.example.com"], app="shop", namespace="prod"))
    gateway = objects[("Gateway", "shop-gateway")]
    assert gateway["apiVersion"] == "networking.istio.io/v1"
    assert gateway["metadata"]["namespace"] == "prod"
    assert gateway["spec"] == {"selector": {"istio": "ingressgateway"}, "servers": [
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["shop.example.com"]}]}
    service = objects[("Service", "shop")]
    assert service["spec"]["selector"] == {"app": "shop"}  # both colors, told apart by the subsets
    assert service["spec"]["ports"] == [{"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}]
    rule = objects[("DestinationRule", "shop-blue-green")]
    assert rule["spec"] == {"host": "shop", "subsets": [{"name": "blue", "labels": {"color": "blue"}},
                                                        {"name": "green", "labels": {"color": "green"}}]}


def test_virtual_service_binds_the_gateway_and_routes_test_then_default(routing_run):
    run = routing_run(test="green")
    vs = reveal(run.one("VirtualService").inputs)
    assert vs["metadata"]["name"] == "myapp-blue-green"
    assert vs["spec"]["gateways"] == ["myapp-gateway"] and vs["spec"]["hosts"] == ["*"]
    http = vs["spec"]["http"]
    assert [(r["name"], r["route"][0]["destination"]["subset"]) for r in http] == [
        ("myapp-test", "green"), ("myapp-default", "blue")]
    assert [r["headers"]["response"]["set"][COLOR_HEADER] for r in http] == ["green", "blue"]
    assert color_for(http, {"cookie": "session=1; test=true"}) == "green"
    assert color_for(http, {"cookie": "session=1; test=false"}) == "blue"
    assert color_for(http, {}) == "blue"
    assert run.outputs == {"active": "blue", "test": "green", "activeRelease": "v1.0.0", "testRelease": "v1.1.0"}
    assert_schema_valid(run)


def test_switching_active_changes_the_virtual_service_and_nothing_else(routing_run):
    before = k8s_objects(routing_run(active="blue"))
    after = k8s_objects(routing_run(active="green"))
    assert before.keys() == after.keys()
    changed = [key for key in before if before[key] != after[key]]
    assert changed == [("VirtualService", "myapp-blue-green")]
    old_http, new_http = (o[("VirtualService", "myapp-blue-green")]["spec"]["http"] for o in (before, after))
    assert old_http[0]["route"][0]["destination"]["subset"] == "blue"
    assert new_http[0]["route"][0]["destination"]["subset"] == "green"
    assert new_http[0]["headers"]["response"]["set"][COLOR_HEADER] == "green"


# --- guards: nothing is declared when an update is refused ---------------------------------------

def assert_refused(run, *phrases):
    assert isinstance(run.error, pulumi.RunError), run.error
    for phrase in phrases:
        assert phrase in str(run.error)
    assert run.kubernetes_objects == [], "a refused update must declare no object"


def test_routing_to_a_color_that_was_never_deployed_is_refused(routing_run):
    run = routing_run(active="green", outputs=deployed(green=None))
    assert_refused(run, "bluegreen:active is 'green'", f"stack {GREEN_STACK} has no deployed green workload",
                   f"pulumi up -s {GREEN_STACK} first")


def test_routing_users_to_a_color_with_no_ready_pods_is_refused(routing_run):
    run = routing_run(active="green", outputs=deployed(green_ready=0))
    assert_refused(run, "green (release v1.1.0", "has 0 ready pods, so users would get errors",
                   "pulumi config set active blue -s routing")


def test_routing_testers_to_a_color_with_no_ready_pods_is_refused(routing_run):
    run = routing_run(test="green", outputs=deployed(green_ready=0))
    assert_refused(run, "bluegreen:test is 'green'", "testers would get errors", "pulumi config rm test -s routing")


def test_a_color_stack_name_pointing_at_the_other_color_is_refused(routing_run):
    outputs = {BLUE_STACK: color_outputs("green", "v1.1.0")}
    run = routing_run(outputs=outputs)
    assert_refused(run, f"bluegreen:blueStack is '{BLUE_STACK}', but that stack deploys 'green'")


def test_only_the_routed_colors_are_read(routing_run):
    # green is not deployed, but nothing routes to it: the update goes ahead.
    run = routing_run(active="blue", outputs=deployed(green=None))
    assert run.error is None and run.outputs.get("testRelease") is None


def test_bad_config_is_refused_before_anything_is_declared():
    run = run_stack("blue", blue(replicas=-1))
    assert_refused(run, "bluegreen:replicas is '-1'", "Fix: pulumi config set replicas 2 -s blue")
    run = run_stack("routing", {"active": "blue", "test": "blue"}, outputs=deployed())
    assert_refused(run, "never tested in the live color")


def test_changing_the_release_of_the_live_color_is_refused():
    run = run_stack("blue", blue(routingStack=ROUTING_STACK),
                    outputs=routing_outputs(active="blue", active_release="v1.0.0"))
    assert_refused(run, "blue is the live color", "runs release 'v1.0.0'", "'v2.0.0'",
                   "deploy the new release to the idle color (green)",
                   "pulumi config set allowLiveUpdate true -s blue")


def test_scaling_the_live_color_to_zero_is_refused():
    run = run_stack("blue", blue(routingStack=ROUTING_STACK, replicas=0),
                    outputs=routing_outputs(active="blue", active_release="v2.0.0"))
    assert_refused(run, "bluegreen:replicas is 0, but blue is the live color")


@pytest.mark.parametrize("config,outputs", [
    (blue(routingStack=ROUTING_STACK), routing_outputs(active="green")),  # blue is idle
    (blue(routingStack=ROUTING_STACK, replicas=4), routing_outputs(active="blue", active_release="v2.0.0")),
    (blue(routingStack=ROUTING_STACK, allowLiveUpdate=True), routing_outputs(active="blue")),
    (blue(routingStack=ROUTING_STACK), {}),  # the routing stack exists but was never deployed
    (blue(), routing_outputs(active="blue")),  # no routingStack: no guard
])
def test_updates_that_do_not_change_the_live_release_go_ahead(config, outputs):
    run = run_stack("blue", config, outputs=outputs)
    assert run.error is None, run.error
    assert run.one("Deployment")


def test_stack_files_keep_secrets_out_of_the_repository():
    for stack in ("blue", "green", "routing"):
        text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
        assert "PASSWORD" not in text.split("config:")[1], f"Pulumi.{stack}.yaml holds a password in plain text"


def test_a_secure_value_in_a_stack_file_is_read_as_a_secret(tmp_path: Path):
    stack_file = tmp_path / "Pulumi.blue.yaml"
    stack_file.write_text("config:\n  bluegreen:color: blue\n  bluegreen:image: myapp:v1\n"
                          "  bluegreen:secretEnv:\n    DB_PASSWORD:\n      secure: v1:abc==\n")
    config, secret_keys = stack_file_config(stack_file)
    assert secret_keys == {"secretEnv"}
    run = run_stack("blue", config, secret_keys)
    assert run.error is None and run.one("Secret")


def test_config_and_secret_keys_are_read_as_the_cli_passes_them(monkeypatch):
    # The CLI's language host hands the program its config in these two variables.
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({
        "bluegreen:color": "green", "bluegreen:image": "myapp:v9", "bluegreen:replicas": "3",
        "bluegreen:secretEnv": json.dumps({"DB_PASSWORD": SECRET}), "kubernetes:context": "kind"}))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["bluegreen:secretEnv"]))
    run = run_stack("green", {})
    assert run.error is None, run.error
    assert run.outputs["replicas"] == 3 and run.outputs["release"] == "v9"
    assert reveal(run.one("Secret").inputs["stringData"]) == {"DB_PASSWORD": SECRET}


def test_the_offline_engine_passes_pulumi_yaml_defaults_as_the_cli_does(monkeypatch):
    read = program_module.read_config
    seen = []
    monkeypatch.setattr(program_module, "read_config", lambda: seen.append(read()) or seen[-1])
    run = run_stack("blue", blue(port=8080))
    assert run.error is None, run.error
    [(raw, secret_keys)] = seen  # read once a run
    # Every declared key, a default as its text; a key the stack sets keeps its value; objects have no default.
    assert set(raw) == set(DEFAULTS) and secret_keys == frozenset()
    assert (raw["replicas"], raw["allowLiveUpdate"], raw["hosts"], raw["testCookie"], raw["port"]) == (
        "1", "false", '["*"]', "test=true", "8080")


def test_the_program_runs_with_the_defaults_it_is_given():
    # As the plan of a git ref runs it, with that ref's Pulumi.yaml: a stack at that default sets nothing.
    then = {**DEFAULTS, "testCookie": "beta=1", "replicas": 2}
    run = run_program("routing", {"active": "blue", "test": "green"}, stack_outputs=deployed(), defaults=then)
    assert run.error is None, run.error
    http = reveal(run.one("VirtualService").inputs)["spec"]["http"]
    assert color_for(http, {"cookie": "beta=1"}) == "green" and color_for(http, {"cookie": "test=true"}) == "blue"
    run = run_program("blue", blue(testCookie="beta=1"), defaults=then)
    assert run.error is None, run.error
    assert run.one("Deployment").inputs["spec"]["replicas"] == 2


# --- the cluster itself is checked before a route changes (the tutorial's label check) -------------

def test_the_routing_stack_reads_the_routed_deployments_and_declares_none(routing_run):
    run = routing_run(test="green")
    assert run.error is None
    assert run.read == ["default/myapp-blue", "default/myapp-green"]
    assert run.of_kind("Deployment") == []  # read, never managed: the color stacks own them
    assert routing_run().read == ["default/myapp-blue"]  # only the colors someone is routed to


def test_a_color_with_no_ready_pod_in_the_cluster_now_is_refused(routing_run):
    # Its stack recorded 2 ready pods at its last update; the cluster has none now.
    run = run_stack("routing", {"active": "blue", "test": "green"}, outputs=deployed(),
                    live={"default/myapp-green": {"release": "v1.1.0", "readyReplicas": 0}})
    assert_refused(run, "green (release v1.1.0) has no ready pod in the cluster now",
                   "its stack recorded 2 at its last update", "testers would get errors",
                   "kubectl rollout status deployment/myapp-green -n default", "pulumi config rm test -s routing")


def test_a_deployment_changed_outside_pulumi_is_refused(routing_run):
    run = run_stack("routing", {"active": "green"}, outputs=deployed(),
                    live={"default/myapp-green": {"release": "hotfix-by-hand", "readyReplicas": 2}})
    assert_refused(run, "the cluster's Deployment myapp-green in namespace default runs release 'hotfix-by-hand'",
                   f"stack {GREEN_STACK} deployed 'v1.1.0'", "changed outside this program",
                   f"pulumi up --refresh -s {GREEN_STACK}", "pulumi config set active blue -s routing")


def test_a_color_stack_of_another_app_is_refused():
    run = run_stack("routing", {"active": "blue", "app": "shop"}, outputs=deployed(app="myapp"))
    assert_refused(run, f"stack {BLUE_STACK} deploys myapp-blue, but this routing stack routes app 'shop'",
                   "pulumi config set blueStack")
    assert run.read == []  # refused on the outputs, before reading the cluster
