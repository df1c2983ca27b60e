"""How the gateway stand-in (`python -m sandbox.gateway`) routes a request: by what istiod pushes over xDS.

Istio's translation of the project's Gateway, VirtualService and DestinationRule into Envoy config is real
here: sandbox/xds.py connects to istiod as the ingress gateway's Envoy (a `router` node in the project's
namespace, labelled `istio: ingressgateway`; istiod runs with PILOT_SCOPE_GATEWAY_TO_NAMESPACE so that
node sees that namespace's Gateways only) and keeps the last snapshot it accepted. Each request is then
decided by sandbox/envoy_routes.py on that snapshot: the listener on port 8080 (the targetPort of the
`istio-ingressgateway` Service's port 80), its route configuration, virtual host, first matching route,
the cluster `outbound|<port>|<subset>|<host>` and that cluster's endpoints from istiod's EDS.
What stays EMULATED: Envoy's matching (envoy_routes.py) and its forwarding (this module): an endpoint
(a pod IP) is mapped to the pod with that IP, and through its ReplicaSet to its Deployment, whose app
stand-in (sandbox/apps.py) answers; timeouts, retries and header operations are applied here. Each
request is counted in Istio's standard metrics (sandbox/telemetry.py).
"""

from __future__ import annotations

import http.client
import itertools
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Mapping, Optional, Sequence

from sandbox.apps import Apps
from sandbox.envoy_routes import UPSTREAM_CONNECT_FAILURE, UPSTREAM_TIMEOUT, Decision, Endpoint, Request, \
    apply_headers, decide
from sandbox.telemetry import Destination, Telemetry
from sandbox.xds import AdsClient, GatewayNode

LISTENER_PORT = 8080  # istio-ingressgateway's targetPort for port 80 (sandbox/istiod.py's gateway_service)
HOP_BY_HOP = ("content-length", "connection", "date", "server", "transfer-encoding")


def service_of(cluster_name: str) -> tuple[str, str]:
    """The Service name and namespace an istiod cluster `outbound|80|blue|myapp.shop.svc.cluster.local` is for."""
    parts = cluster_name.split("|")
    host = parts[3] if len(parts) == 4 else ""
    labels = host.split(".")
    return (labels[0], labels[1]) if len(labels) > 1 else (host, "")


def pod_for(pods: Sequence[Mapping[str, Any]], endpoint: Endpoint) -> Optional[Mapping[str, Any]]:
    """The pod an EDS endpoint stands for: the one with its IP (in the endpoint's namespace when istiod says it)."""
    return next((pod for pod in pods if (pod.get("status") or {}).get("podIP") == endpoint.address
                 and (not endpoint.namespace or pod["metadata"]["namespace"] == endpoint.namespace)), None)


def deployment_of(pod: Mapping[str, Any]) -> str:
    """The Deployment that owns a pod, through its ReplicaSet's name (<deployment>-<hash>)."""
    owner = next((o for o in pod["metadata"].get("ownerReferences") or [] if o["kind"] == "ReplicaSet"), None)
    return owner["name"].rsplit("-", 1)[0] if owner else pod["metadata"]["name"]


def gateway_node(namespace: Optional[str]) -> GatewayNode:
    """The xDS node of the gateway for one namespace (istio-system's own without one)."""
    if not namespace:
        return GatewayNode()
    return GatewayNode(pod=f"istio-ingressgateway-{namespace}", namespace=namespace)


def xds_handler(client: AdsClient, pods_of, apps: Apps, telemetry: Optional[Telemetry] = None):
    """The request handler; `pods_of()` lists the pods the endpoints are looked up in (re-read at most every
    0.5 s by gateway.Pods)."""
    counter = itertools.count()

    class XdsGateway(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            started = time.monotonic()
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Request(headers.get("host", ""), LISTENER_PORT, self.path, "GET", headers)
            decision = decide(client.snapshot, request)
            if decision.status == 0:  # Envoy refuses the connection: nothing is counted
                self.wfile.write(self.reply(503, decision, "sandbox gateway: no listener on port "
                                            f"{LISTENER_PORT} pushed by istiod (yet)", []))
                return
            destination, status, flag, body = self.forward(decision, headers)
            if telemetry is not None:  # counted before the body goes out: a client with its answer finds it counted
                telemetry.record(destination, status, flag, (time.monotonic() - started) * 1000)
            self.wfile.write(body)

        def forward(self, decision: Decision, headers: Mapping[str, str]) -> tuple[Destination, int, str, bytes]:
            service, namespace = service_of(decision.cluster) if decision.cluster else ("", "")
            routed = Destination(service, namespace)
            if decision.status != 200:
                return routed, decision.status, decision.flag, self.reply(decision.status, decision, decision.body,
                                                                          [("location", decision.location)]
                                                                          if decision.location else [])
            try:
                pods = pods_of()
            except (OSError, ValueError) as error:
                return routed, 503, "UH", self.reply(503, decision, f"sandbox gateway: cannot read pods: {error}", [])
            endpoint = decision.endpoints[next(counter) % len(decision.endpoints)]
            pod = pod_for(pods, endpoint)
            if pod is None:  # istiod's EDS ahead of the gateway's view of the pods: as a connect failure
                status, flag, text = UPSTREAM_CONNECT_FAILURE
                return routed, status, flag, self.reply(status, decision, text, [])
            labels = pod["metadata"].get("labels") or {}
            deployment = deployment_of(pod)
            destination = Destination(service, pod["metadata"]["namespace"], deployment, labels)
            sent = apply_headers([(k, v) for k, v in self.headers.items() if k.lower() != "host"],
                                 decision.request_headers)
            sent += [("x-sandbox-pod", pod["metadata"]["name"]), ("x-sandbox-release", labels.get("release", ""))]
            target = apps.port_for(pod["metadata"]["namespace"], deployment)
            attempts = 1 + (decision.retry.num_retries if decision.retry else 0)
            for attempt in range(attempts):
                outcome = self.attempt(target, sent, decision)
                last = attempt == attempts - 1
                if isinstance(outcome, tuple) and outcome[0] == "failure":
                    kind = outcome[1]
                    if not last and decision.retry and decision.retry.retriable(failure=kind):
                        continue
                    status, flag, text = UPSTREAM_TIMEOUT if kind == "timeout" else UPSTREAM_CONNECT_FAILURE
                    return destination, status, flag, self.reply(status, decision, text, [])
                answer_status, answer_headers, body = outcome
                if not last and decision.retry and decision.retry.retriable(status=answer_status):
                    continue
                out = apply_headers([(n, v) for n, v in answer_headers if n.lower() not in HOP_BY_HOP],
                                    decision.response_headers)
                self.send_response(answer_status)
                for name, value in out:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                return destination, answer_status, "", body
            raise AssertionError("unreachable: the last attempt returns")

        def attempt(self, port: int, headers: Sequence[tuple[str, str]], decision: Decision):
            """One try: (status, headers, body), or ("failure", "timeout" | "connect-failure")."""
            timeout = decision.retry.per_try_timeout if decision.retry and decision.retry.per_try_timeout \
                else decision.timeout
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                connection.putrequest("GET", self.path, skip_host=False, skip_accept_encoding=True)
                for name, value in headers:
                    connection.putheader(name, value)
                connection.endheaders()
                answer = connection.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            except TimeoutError:
                return ("failure", "timeout")
            except OSError:
                return ("failure", "connect-failure")
            finally:
                connection.close()

        def reply(self, status: int, decision: Decision, text: str, extra: Sequence[tuple[str, str]]) -> bytes:
            """Send the status and headers of Envoy's local reply (the route's response header operations
            apply to it too): its body, to send."""
            payload = text.encode()
            self.send_response(status)
            for name, value in apply_headers([("content-type", "text/plain"), *extra], decision.response_headers):
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.send_header("x-sandbox-gateway", "xds")
            self.end_headers()
            return payload

        def log_message(self, *args) -> None:
            pass
    return XdsGateway
