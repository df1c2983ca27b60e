"""The gateway stand-in (sandbox/gateway.py, sandbox/xds_gateway.py) on a snapshot istiod would push: where a
request goes, which app stand-in answers, and how it is counted in Istio's metrics. No Go, no istiod."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

import pytest
import requests

from components.routes import COLOR_HEADER
from envoy.config.endpoint.v3 import endpoint_pb2
from harness.istiod_config import cluster_name, istiod_snapshot, route_config
from harness.loopback import serve
from sandbox import cluster as sandbox_cluster
from sandbox import gateway as sandbox_gateway
from sandbox.apps import Apps
from sandbox.telemetry import Destination, Telemetry, request_labels
from sandbox.xds_gateway import service_of, xds_handler

PODS = [{"metadata": {"name": f"{name}-5d9f7-x", "namespace": "default",
                      "labels": {"app": "myapp", "color": name[6:], "version": version},
                      "ownerReferences": [{"kind": "ReplicaSet", "name": f"{name}-5d9f7"}]},
         "status": {"podIP": ip}}
        for ip, name, version in (("10.244.0.5", "myapp-blue", "v1"), ("10.244.0.6", "myapp-green", "v2"))]


class Pushed:
    """The ADS client's side the handler reads: the last snapshot istiod pushed (a test replaces it)."""

    def __init__(self, snapshot):
        self.snapshot = snapshot


@contextmanager
def gateway(control, pushed: Pushed, telemetry: Telemetry):
    server = ThreadingHTTPServer(("127.0.0.1", 0), xds_handler(pushed, lambda: PODS, Apps(control), telemetry))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_the_gateway_forwards_to_the_pod_of_each_endpoint_and_counts_it(tmp_path):
    """The endpoint's IP names the pod, its ReplicaSet the Deployment whose app stand-in answers."""
    telemetry = Telemetry()
    with gateway(tmp_path, Pushed(istiod_snapshot()), telemetry) as url:
        user, tester = requests.get(url, timeout=10), requests.get(url, headers={"cookie": "test=true"}, timeout=10)
    assert (user.headers["x-sandbox-deployment"], user.headers[COLOR_HEADER]) == ("myapp-blue", "blue")
    assert (tester.headers["x-sandbox-deployment"], tester.headers[COLOR_HEADER]) == ("myapp-green", "green")
    green = Destination("myapp", "default", "myapp-green", PODS[1]["metadata"]["labels"])
    assert telemetry.registry.get_sample_value("istio_requests_total", request_labels(green, 200)) == 1
    assert service_of(cluster_name("green")) == ("myapp", "default")


def test_the_gateway_counts_each_request_with_the_labels_an_istio_ingress_gateway_reports(tmp_path):
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "myapp-green.json").write_text('{"errorRate": 1}')
    pushed, telemetry = Pushed(istiod_snapshot()), Telemetry()

    def value(name, **labels):
        samples = [s for metric in telemetry.registry.collect() for s in metric.samples]
        return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())
    with gateway(tmp_path, pushed, telemetry) as url:
        codes = [requests.get(url, headers={"cookie": "test=true"}, timeout=10).status_code for _ in range(3)]
        codes.append(requests.get(url, timeout=10).status_code)
        assert codes == [500, 500, 500, 200]  # Istio's default retries are for 503 and connect failures, not 500
        green = {"reporter": "source", "source_workload": "istio-ingressgateway",
                 "destination_workload": "myapp-green", "destination_workload_namespace": "default",
                 "destination_app": "myapp", "destination_version": "v2",
                 "destination_service": "myapp.default.svc.cluster.local", "destination_service_name": "myapp",
                 "destination_service_namespace": "default", "request_protocol": "http", "response_code": "500",
                 "response_flags": "-"}
        assert value("istio_requests_total", **green) == 3
        assert value("istio_request_duration_milliseconds_count", **green) == 3
        assert value("istio_request_duration_milliseconds_bucket", **green, le="+Inf") == 3
        assert value("istio_requests_total", destination_workload="myapp-blue", destination_version="v1",
                     response_code="200") == 1
        # No endpoint in the subset: Envoy's 503 UH. A host no route serves: 404 NR.
        pushed.snapshot = pushed.snapshot.replace(endpoints={
            name: endpoint_pb2.ClusterLoadAssignment(cluster_name=name) for name in pushed.snapshot.endpoints})
        assert requests.get(url, timeout=10).status_code == 503
        pushed.snapshot = pushed.snapshot.replace(routes={"http.8080": route_config([])})
        assert requests.get(url, timeout=10).status_code == 404
    assert value("istio_requests_total", response_code="503", response_flags="UH", destination_workload="unknown",
                 destination_service="myapp.default.svc.cluster.local") == 1
    assert value("istio_requests_total", response_code="404", response_flags="NR", destination_service="unknown") == 1
    names = {s.name for metric in telemetry.registry.collect() for s in metric.samples}
    assert not any(name.endswith("_created") for name in names)  # Envoy has no such series


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    sandbox_cluster.make_certificates(folder)  # RSA keys: made once for the module
    return folder


@pytest.mark.parametrize("namespace, path", [(None, "/api/v1/pods"), ("shop", "/api/v1/namespaces/shop/pods")])
def test_a_gateway_given_a_namespace_reads_that_namespaces_pods_only(tmp_path, pki, namespace, path):
    asked = []

    def api_server(asked_path, headers):
        asked.append(asked_path)
        return 200, {"content-type": "application/json"}, json.dumps({"items": PODS}).encode()

    with serve(api_server) as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({"clusters": [{"cluster": {
            "server": url, "certificate-authority": str(pki / "ca.crt")}}], "users": [{"user": {"token": "t"}}]}))
        listed = sandbox_gateway.Pods(kubeconfig, namespace).listed()
    assert asked == [path] and [pod["metadata"]["name"] for pod in listed] == ["myapp-blue-5d9f7-x",
                                                                              "myapp-green-5d9f7-x"]


def test_the_gateway_without_istiods_address_is_refused_naming_the_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BLUEGREEN_ISTIOD_XDS", raising=False)
    with pytest.raises(SystemExit) as stopped:
        sandbox_gateway.main(["--kubeconfig", str(tmp_path / "k"), "--port", "1", "--control", str(tmp_path)])
    assert stopped.value.code == 2 and "--xds-address" in capsys.readouterr().err
