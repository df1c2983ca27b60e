"""The sandbox (sandbox/) and the gateway stand-in, without a build: pins, stages, env files, routing rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.loopback import serve
from sandbox import build
from sandbox import cluster as sandbox_cluster
from sandbox import gateway as sandbox_gateway
from sandbox.gateway import resolve

ROOT = build.ROOT


def test_the_cli_and_the_python_sdk_are_pinned_to_one_version():
    cli = build.module_version("engine", "github.com/pulumi/pulumi/pkg/v3")
    assert cli == "v" + build.python_pin("pulumi")
    assert build.module_version("engine", "github.com/pulumi/pulumi/sdk/v3") == cli
    policy = (ROOT / "policy" / "requirements.txt").read_text()
    assert f"pulumi=={build.python_pin('pulumi')}" in policy.split()


def test_a_cli_pin_that_differs_from_the_python_pin_is_refused(monkeypatch):
    monkeypatch.setattr(build, "python_pin", lambda name: "3.999.0" if name == "pulumi" else "4.25.0")
    with pytest.raises(build.Failure, match="must be one version: bump both together"):
        build.pieces()


def test_every_piece_reports_its_pinned_version():
    ldflags = {piece.module: " ".join(piece.ldflags) for piece in build.pieces()}
    assert f"version.Version=v{build.python_pin('pulumi')}" in ldflags["engine"]
    assert f"pkg/version.Version={build.python_pin('pulumi-kubernetes')}" in ldflags["provider"]
    assert "gitVersion=" + build.module_version("kube", "k8s.io/kubernetes") in ldflags["kube"]


PENDING = {"key": ".status.phase", "operator": "In", "values": ["Pending"]}


def stage(name: str, template: str = "", *selector: dict) -> str:
    """A stage file shaped like kwok's (kustomize/stage/...), with what kwok_stages reads of it."""
    return yaml.safe_dump({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name},
                           "spec": {"selector": {"matchExpressions": list(selector)}, "next": {"statusTemplate": template}}})


def test_the_sandbox_stages_fail_a_job_pod_whose_command_is_false_and_ready_a_running_pod_again(tmp_path):
    stage_dir = tmp_path / "stage"
    files = {"node/fast/node-initialize.yaml": stage("node-initialize"),
             "node/heartbeat/node-heartbeat.yaml": stage("node-heartbeat"),
             "pod/fast/pod-ready.yaml": stage("pod-ready", "phase: Running\n", PENDING),
             "pod/fast/pod-delete.yaml": stage("pod-delete"),
             "pod/fast/pod-complete.yaml": stage("pod-complete", "state:\n  terminated:\n    exitCode: 0\n"
                                                                 "    reason: Completed\nphase: Succeeded\n")}
    for path, text in files.items():
        (stage_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (stage_dir / path).write_text(text)
    stages = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(build.kwok_stages(stage_dir))}
    assert set(stages) == {"node-initialize", "node-heartbeat", "pod-ready", "pod-complete", "pod-delete", "pod-fail",
                           "pod-ready-again"}
    # A Running pod the node controller marked not ready gets kwok's ready status again; Pending ones as before.
    assert stages["pod-ready-again"]["spec"]["selector"]["matchExpressions"] == [{**PENDING, "values": ["Running"]}]
    assert yaml.safe_load(stages["pod-ready-again"]["spec"]["next"]["statusTemplate"].replace("{{ Now | Quote }}", "now")) \
        == {"conditions": [{"lastTransitionTime": "now", "message": None, "reason": None, "status": "True", "type": "Ready"}]}
    assert stages["pod-ready"]["spec"]["selector"]["matchExpressions"] == [PENDING]
    failing = {"key": ".spec.containers.[0].command.[0]", "values": ["false"]}
    assert {**failing, "operator": "In"} in stages["pod-fail"]["spec"]["selector"]["matchExpressions"]
    assert {**failing, "operator": "NotIn"} in stages["pod-complete"]["spec"]["selector"]["matchExpressions"]
    template = stages["pod-fail"]["spec"]["next"]["statusTemplate"]
    assert "phase: Failed" in template and "exitCode: 1" in template
    assert "phase: Succeeded" in stages["pod-complete"]["spec"]["next"]["statusTemplate"]
    (stage_dir / "pod/fast/pod-ready.yaml").write_text(stage("pod-ready", "phase: Running\n"))
    with pytest.raises(build.Failure, match="kwok's pod-ready stage changed"):
        build.kwok_stages(stage_dir)
    (stage_dir / "pod/fast/pod-complete.yaml").write_text(stage("pod-complete", "phase: Done\n"))
    with pytest.raises(build.Failure, match="kwok's pod-complete stage changed"):
        build.kwok_stages(stage_dir)


def test_env_file_round_trip_and_down_without_a_sandbox_is_harmless(tmp_path):
    env = tmp_path / "sandbox.env"
    env.write_text("export PATH='/a b:/c'\nexport BLUEGREEN_SANDBOX=/nowhere\n# a comment\n")
    assert sandbox_cluster.read_env_file(env) == {"PATH": "/a b:/c", "BLUEGREEN_SANDBOX": "/nowhere"}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "sandbox", "down", "--env-file", str(env)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "no sandbox running" in done.stderr
        assert not env.exists()


def test_up_without_a_build_names_the_build_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sandbox", "up", "--env-file",
                           str(tmp_path / "e.env")], capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "BLUEGREEN_SANDBOX_CACHE": str(tmp_path / "empty")})
    assert done.returncode == 1
    assert "the sandbox is not built" in done.stderr and "python -m sandbox build" in done.stderr
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2():
    done = subprocess.run([sys.executable, "-m", "sandbox", "up"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--env-file" in done.stderr


# --- the gateway stand-in's routing --------------------------------------------------------------------

def obj(kind_namespace: str, name: str, spec=None, **extra):
    return {"metadata": {"namespace": kind_namespace, "name": name, **extra.pop("metadata", {})},
            "spec": spec or {}, **extra}


def pod(name: str, labels: dict, ready: bool = True, phase: str = "Running"):
    return obj("shop", name, metadata={"labels": labels}, status={
        "phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]})


def cluster(http, pods=(), subsets=("blue", "green"), hosts=("*",)):
    return {
        "gateways": [obj("shop", "myapp-gateway", {"selector": {"istio": "ingressgateway"},
                                                   "servers": [{"port": {"number": 80}, "hosts": list(hosts)}]})],
        "virtualservices": [obj("shop", "myapp-blue-green", {"hosts": list(hosts), "gateways": ["myapp-gateway"],
                                                             "http": http})],
        "destinationrules": [obj("shop", "myapp-blue-green", {"host": "myapp", "subsets": [
            {"name": s, "labels": {"color": s}} for s in subsets]})],
        "services": [obj("shop", "myapp", {"selector": {"app": "myapp"}})],
        "pods": list(pods),
        "deployments": [],
    }


def route(name, subset, match=None):
    return {"name": name, **({"match": match} if match else {}),
            "route": [{"destination": {"host": "myapp", "subset": subset}}]}


TEST_ROUTE = route("myapp-test", "green", [{"headers": {"cookie": {"regex": "^(.*;[ \t]*)?test=true([ \t]*;.*)?$"}}}])
PODS = [pod("b1", {"app": "myapp", "color": "blue"}), pod("g1", {"app": "myapp", "color": "green"})]


@pytest.mark.parametrize("cookie, color", [
    ("test=true", "green"), ("a=b; test=true", "green"), ("test=true2", "blue"), ("xtest=true", "blue"), (None, "blue"),
])
def test_the_gateway_applies_the_first_matching_route_with_a_whole_value_regex(cookie, color):
    objects = cluster([TEST_ROUTE, route("myapp-default", "blue")], PODS)
    routed = resolve(objects, "shop.example.com", 80, {"cookie": cookie} if cookie else {}, "/")
    assert routed.status == 200
    assert [p["metadata"]["labels"]["color"] for p in routed.pods] == [color]


def test_no_ready_pod_in_the_subset_leaves_no_upstream():
    objects = cluster([route("myapp-default", "green")], [PODS[0], pod("g2", {"app": "myapp", "color": "green"},
                                                                       ready=False)])
    assert resolve(objects, "h", 80, {}, "/").pods == []


def test_an_unknown_subset_leaves_no_upstream_and_no_route_is_a_404():
    assert resolve(cluster([route("d", "purple")], PODS), "h", 80, {}, "/").pods == []
    assert resolve(cluster([TEST_ROUTE], PODS), "h", 80, {}, "/").status == 404
    assert resolve(cluster([route("d", "blue")], PODS, hosts=("shop.example.com",)), "other.example.com", 80, {},
                   "/").status == 404


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    sandbox_cluster.make_certificates(folder)  # RSA keys: made once for the module
    return folder


@pytest.mark.parametrize("namespace, prefix", [(None, ""), ("shop", "/namespaces/shop")])
def test_a_gateway_given_a_namespace_reads_that_namespace_only(tmp_path, pki, namespace, prefix):
    asked = []

    def api_server(path, headers):
        asked.append(path)
        return 200, {"content-type": "application/json"}, b'{"items": []}'

    with serve(api_server) as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({"clusters": [{"cluster": {
            "server": url, "certificate-authority": str(pki / "ca.crt")}}], "users": [{"user": {"token": "t"}}]}))
        sandbox_gateway.Cluster(kubeconfig, namespace).refresh()
    istio = "/apis/networking.istio.io/v1"
    assert sorted(asked) == sorted([f"{istio}{prefix}/gateways", f"{istio}{prefix}/virtualservices",
                                    f"{istio}{prefix}/destinationrules", f"/api/v1{prefix}/services",
                                    f"/api/v1{prefix}/pods", f"/apis/apps/v1{prefix}/deployments"])


def test_istio_durations():
    assert sandbox_gateway.seconds("30s") == 30 and sandbox_gateway.seconds("500ms") == 0.5
    assert sandbox_gateway.seconds("1m30s") == 90 and sandbox_gateway.seconds(None) is None


def test_every_test_module_has_its_place_in_the_run_order():
    """tests/conftest.py hands the modules to the workers in a planned order; a module left out would run last."""
    from harness.scheduling import E2E_MODULE_ORDER, UNIT_MODULE_ORDER

    assert sorted(E2E_MODULE_ORDER) == sorted(path.name for path in (ROOT / "tests" / "e2e").glob("test_*.py"))
    assert sorted(UNIT_MODULE_ORDER) == sorted(path.name for path in (ROOT / "tests").glob("test_*.py"))


def test_the_modules_that_load_the_schema_models_share_a_worker():
    """tests/conftest.py places them on one worker, so that one process alone builds the models; a module missing
    from SCHEMA_MODULES would build them in another."""
    from harness.scheduling import SCHEMA_MODULES

    loading = [path.name for path in (ROOT / "tests").glob("test_*.py")
               if re.search(r"\b(assert_schema_valid|schema_problems|model_for)\(", path.read_text())]
    assert sorted(SCHEMA_MODULES) == sorted(loading)


def test_istios_crds_come_from_the_istio_api_that_istiod_is_built_with():
    assert build.module_version("assets", "istio.io/api") == build.module_version("istio", "istio.io/api")


# --- Prometheus: the pin, its config, its targets -------------------------------------------------------

@pytest.mark.parametrize("module, release", [("v0.316.0", "3.16.0"), ("v0.300.1", "3.0.1"), ("v0.413.2", "4.13.2")])
def test_a_prometheus_module_version_is_named_as_the_release_it_is(module, release):
    assert build.prometheus_release(module) == release


@pytest.mark.parametrize("module", ["v2.53.0", "v0.3.0", "v0.316", "v0.316.0-rc.1"])
def test_a_prometheus_pin_that_is_no_3x_module_version_is_refused_naming_the_fix(module):
    with pytest.raises(build.Failure, match=rf"requires github.com/prometheus/prometheus {re.escape(module)}.*v0.316.0"):
        build.prometheus_release(module)


def test_the_prometheus_piece_reports_the_release_its_pin_is():
    pin = build.module_version("prometheus", "github.com/prometheus/prometheus")
    piece = next(piece for piece in build.pieces() if piece.module == "prometheus")
    assert piece.ldflags == (f"-X github.com/prometheus/common/version.Version={build.prometheus_release(pin)}",)


def test_prometheus_scrapes_every_second_the_targets_the_gateways_list(tmp_path):
    from sandbox import prometheus_server

    config = prometheus_server.prometheus_config(tmp_path)
    assert config["global"]["scrape_interval"] == "1s" and config["global"]["scrape_timeout"] == "1s"
    [job] = config["scrape_configs"]
    assert job["file_sd_configs"] == [{"files": [str(tmp_path / "prometheus" / "targets" / "*.json")],
                                       "refresh_interval": "1s"}]
    argv = prometheus_server.prometheus_argv(tmp_path, 9999)
    assert "--web.listen-address=127.0.0.1:9999" in argv
    assert f"--storage.tsdb.path={tmp_path / 'prometheus' / 'data'}" in argv  # in the folder `down` removes
    prometheus_server.add_scrape_target(tmp_path, "gateway-shop", 4242)
    listed = list((tmp_path / "prometheus" / "targets").iterdir())
    assert [path.name for path in listed] == ["gateway-shop.json"]  # no temp file left for the glob to catch
    assert json.loads(listed[0].read_text())[0]["targets"] == ["127.0.0.1:4242"]


def test_stopping_a_recorded_gateway_removes_its_scrape_target(tmp_path):
    from sandbox import prometheus_server

    sandbox = sandbox_cluster.Sandbox(tmp_path, tmp_path / "bin")
    started = sandbox.start("gateway-shop", [sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)])
    # stop_recorded stops only a process whose command line names the folder: wait until the new one shows it
    deadline = time.monotonic() + 10
    while str(tmp_path).encode() not in Path(f"/proc/{started.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    prometheus_server.add_scrape_target(tmp_path, "gateway-shop", 4242)
    prometheus_server.add_scrape_target(tmp_path, "gateway-other", 4343)
    assert sandbox_cluster.stop_recorded(tmp_path, only="gateway-shop") == ["gateway-shop"]
    assert sandbox.processes["gateway-shop"].wait(timeout=15) is not None
    assert sorted(p.name for p in (tmp_path / "prometheus" / "targets").iterdir()) == ["gateway-other.json"]


# --- the gateway's Istio metrics and the app stand-ins' behaviours --------------------------------------

def test_the_app_stand_ins_read_error_rate_and_latency_beside_delay():
    from sandbox.apps import Behaviour, answer_status, parse_behaviour

    behaviour = parse_behaviour('{"errorRate": 0.2, "latencyMs": 300, "delay": 0.5}')
    assert behaviour.error_rate == 0.2 and behaviour.wait_seconds == pytest.approx(0.8)
    assert [answer_status(behaviour, False, draw) for draw in (0.0, 0.19, 0.2, 0.99)] == [500, 500, 200, 200]
    assert answer_status(Behaviour(), False, 0.0) == 200
    assert answer_status(parse_behaviour('{"statusWithoutCookie": 502}'), False, 0.5) == 502


@pytest.mark.parametrize("text, named", [('{"errorRate": 1.5}', "errorRate is 1.5: set a number from 0 to 1"),
                                         ('{"latencyMs": "300"}', "latencyMs is '300'"), ("[1]", "not an object"),
                                         ("{", "not JSON")])
def test_a_bad_control_file_is_refused_naming_the_key_and_the_fix(text, named):
    from sandbox.apps import parse_behaviour

    with pytest.raises(ValueError, match=re.escape(named)):
        parse_behaviour(text)


class StillCluster:
    """The gateway's view of the cluster, fixed."""

    def __init__(self, objects):
        self.objects = objects

    def refresh(self) -> None:
        pass


@pytest.fixture
def metered_gateway(tmp_path):
    """A gateway on loopback routing shop's test cookie to green and the rest to blue, its Istio metrics kept."""
    from http.server import ThreadingHTTPServer
    import threading

    from sandbox.apps import Apps
    from sandbox.telemetry import Telemetry

    owner = {"ownerReferences": [{"kind": "ReplicaSet", "name": "myapp-green-5d9f7"}]}
    pods = [pod("b1", {"app": "myapp", "color": "blue", "version": "v1"}),
            obj("shop", "g1", metadata={"labels": {"app": "myapp", "color": "green", "version": "v2"}, **owner},
                status={"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})]
    objects = cluster([TEST_ROUTE, route("myapp-default", "blue")], pods)
    telemetry = Telemetry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), sandbox_gateway.gateway_handler(
        StillCluster(objects), Apps(tmp_path), 80, telemetry))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path, objects, telemetry
    finally:
        server.shutdown()
        server.server_close()


def test_the_gateway_counts_each_request_with_the_labels_an_istio_ingress_gateway_reports(metered_gateway):
    import requests

    url, control, objects, telemetry = metered_gateway
    (control / "shop").mkdir()
    (control / "shop" / "myapp-green.json").write_text('{"errorRate": 1}')
    codes = [requests.get(url, headers={"cookie": "test=true"}, timeout=10).status_code for _ in range(3)]
    codes.append(requests.get(url, timeout=10).status_code)
    assert codes == [500, 500, 500, 200]
    green = {"reporter": "source", "source_workload": "istio-ingressgateway", "destination_workload": "myapp-green",
             "destination_workload_namespace": "shop", "destination_app": "myapp", "destination_version": "v2",
             "destination_service": "myapp.shop.svc.cluster.local", "destination_service_name": "myapp",
             "destination_service_namespace": "shop", "request_protocol": "http", "response_code": "500",
             "response_flags": "-"}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for metric in telemetry.registry.collect() for s in metric.samples}

    def value(name, **labels):
        found = [v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()]
        return sum(found)
    assert value("istio_requests_total", **green) == 3
    assert value("istio_request_duration_milliseconds_count", **green) == 3
    assert value("istio_request_duration_milliseconds_bucket", **green, le="+Inf") == 3
    assert value("istio_requests_total", destination_workload="b1", destination_version="v1", response_code="200") == 1
    objects["pods"][:] = []  # no pod ready: Envoy's 503 UH; a host no route serves: 404 NR
    assert requests.get(url, timeout=10).status_code == 503
    objects["virtualservices"][:] = []
    assert requests.get(url, timeout=10).status_code == 404
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for metric in telemetry.registry.collect() for s in metric.samples}
    assert value("istio_requests_total", response_code="503", response_flags="UH", destination_workload="unknown",
                 destination_service="myapp.shop.svc.cluster.local") == 1
    assert value("istio_requests_total", response_code="404", response_flags="NR", destination_service="unknown") == 1
    assert not any(name.endswith("_created") for name, _ in samples)  # Envoy has no such series


@pytest.mark.parametrize("argv, named", [
    (["--route-by", "envoy"], "--route-by"),
    (["--route-by", "xds"], "--xds-address"),
])
def test_the_gateway_refuses_a_routing_mode_it_cannot_run_naming_the_flag(tmp_path, monkeypatch, capsys, argv, named):
    monkeypatch.delenv("BLUEGREEN_ISTIOD_XDS", raising=False)
    with pytest.raises(SystemExit) as stopped:
        sandbox_gateway.main(["--kubeconfig", str(tmp_path / "k"), "--port", "1", "--control", str(tmp_path), *argv])
    assert stopped.value.code == 2 and named in capsys.readouterr().err


def test_istiod_scopes_gateways_to_their_namespace_and_the_ingress_service_maps_80_to_8080(tmp_path):
    from sandbox import istiod

    assert istiod.environment(tmp_path / "kubeconfig")["PILOT_SCOPE_GATEWAY_TO_NAMESPACE"] == "true"
    service = istiod.gateway_service("shop")
    assert (service["metadata"]["namespace"], service["spec"]["selector"]) == ("shop", {"istio": "ingressgateway"})
    assert service["spec"]["ports"] == [{"name": "http2", "port": 80, "targetPort": 8080}]
