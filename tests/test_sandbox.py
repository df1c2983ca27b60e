"""The sandbox (sandbox/), without a build: pins, stages, env files, the run order, Prometheus's targets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sandbox import build
from sandbox import cluster as sandbox_cluster

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


def test_istiod_scopes_gateways_to_their_namespace_and_the_ingress_service_maps_80_to_8080(tmp_path):
    from sandbox import istiod

    assert istiod.environment(tmp_path / "kubeconfig")["PILOT_SCOPE_GATEWAY_TO_NAMESPACE"] == "true"
    service = istiod.gateway_service("shop")
    assert (service["metadata"]["namespace"], service["spec"]["selector"]) == ("shop", {"istio": "ingressgateway"})
    assert service["spec"]["ports"] == [{"name": "http2", "port": 80, "targetPort": 8080}]


@pytest.mark.parametrize("namespace, accepted", [("default", True), ("shop-1", True), ("a" * 63, True),
                                                 ("a" * 64, False), ("Shop", False), ("-shop", False), ("", False)])
def test_up_takes_a_gateway_namespace_only_if_kubernetes_would(namespace, accepted, capsys):
    from sandbox.__main__ import build_parser
    argv = ["up", "--env-file", "sandbox.env", f"--gateway-namespace={namespace}"]
    if accepted:
        assert build_parser().parse_args(argv).gateway_namespace == namespace
        return
    with pytest.raises(SystemExit) as exit:  # bad usage, before anything starts
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "--gateway-namespace" in err and "is not a Kubernetes namespace name" in err
