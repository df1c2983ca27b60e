#!/usr/bin/env python3
"""The sandbox's ingress gateway stand-in: it EMULATES Envoy's routing and Envoy's stats; it is not Envoy.

    python -m sandbox.gateway --kubeconfig FILE --port PORT --control DIR [--namespace NS] [--metrics-port PORT]

No container runs in the sandbox (kwok marks pods ready) and no Envoy exists here, so this one
process plays both:
- the ingress gateway on 127.0.0.1:PORT. For each request it routes by what the API server holds
  now (re-read at most every 0.5 s): a Gateway selecting `istio: ingressgateway` whose server hosts
  match; the VirtualServices bound to it; Istio's rule that the first route whose match list is
  empty or has a matching entry wins (headers and uri: exact, prefix, RE2 regex matching the whole
  value); the route's destination host resolved to a Service in the VirtualService's namespace; the
  subset's labels from the DestinationRule for that host; the endpoints: Running, Ready pods that
  the Service's selector and the subset's labels both select; 503 "no healthy upstream" when there
  are none, 404 when no route matches; the route's request and response header operations; 504
  when the app answers slower than the route's timeout.
- the app stand-ins (sandbox/apps.py): one HTTP server per Deployment, playing its pods; a test tells
  one how to answer through DIR/<namespace>/<deployment>.json.
- Envoy's stats (sandbox/telemetry.py): every request it routes, or answers itself with NR or UH, is
  counted in Istio's standard metrics, `istio_requests_total` and `istio_request_duration_milliseconds`,
  with the labels an Istio ingress gateway reports (reporter="source"), at
  http://127.0.0.1:METRICS_PORT/metrics when --metrics-port is given; the sandbox's Prometheus scrapes it.
With --route-by xds (or BLUEGREEN_GATEWAY_ROUTE_BY=xds) it routes instead by the Envoy config istiod pushes
over xDS (--xds-address, default $BLUEGREEN_ISTIOD_XDS): see sandbox/xds_gateway.py.
With --namespace it sees that namespace only: one gateway per project, so that projects sharing one
sandbox (the e2e tests) do not answer for each other's hosts.
Exit status: 0 stopped by a signal, 2 bad usage.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import re2
import yaml

from sandbox.apps import Apps
from sandbox.telemetry import Destination, Telemetry

ROUTE_BY = ("api", "xds")  # what the gateway routes by: the API server's objects, or istiod's pushed Envoy config
REFRESH_SECONDS = 0.5  # how stale the gateway's view of the cluster may be
ISTIO = "networking.istio.io/v1"
KINDS = {  # what the gateway reads: each kind's API group path and its plural
    "gateways": (f"/apis/{ISTIO}", "gateways"),
    "virtualservices": (f"/apis/{ISTIO}", "virtualservices"),
    "destinationrules": (f"/apis/{ISTIO}", "destinationrules"),
    "services": ("/api/v1", "services"),
    "pods": ("/api/v1", "pods"),
    "deployments": ("/apis/apps/v1", "deployments"),
}


class Cluster:
    """What the API server holds, listed through its REST API with the sandbox's kubeconfig."""

    def __init__(self, kubeconfig: Path, namespace: Optional[str] = None):
        self.paths = {kind: f"{group}/namespaces/{namespace}/{plural}" if namespace else f"{group}/{plural}"
                      for kind, (group, plural) in KINDS.items()}
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"]
        self.context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.token = config["users"][0]["user"]["token"]
        self.objects: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        self.read_at = 0.0
        self.lock = threading.Lock()

    def _list(self, path: str) -> list[dict[str, Any]]:
        request = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5, context=self.context) as answer:
            return json.load(answer).get("items") or []

    def refresh(self) -> None:
        """Re-read everything if the last read is older than REFRESH_SECONDS."""
        with self.lock:
            if time.monotonic() - self.read_at < REFRESH_SECONDS:
                return
            self.objects = {kind: self._list(path) for kind, path in self.paths.items()}
            self.read_at = time.monotonic()


# --- Istio's matching, as Envoy applies it ---------------------------------------------------------

def string_matches(condition: Mapping[str, str], value: Optional[str]) -> bool:
    if value is None:
        return False
    if "exact" in condition:
        return value == condition["exact"]
    if "prefix" in condition:
        return value.startswith(condition["prefix"])
    if "regex" in condition:
        return re2.fullmatch(condition["regex"], value) is not None
    return False


def request_matches(match: Mapping[str, Any], headers: Mapping[str, str], path: str) -> bool:
    for name, condition in (match.get("headers") or {}).items():
        if not string_matches(condition, headers.get(name.lower())):
            return False
    return "uri" not in match or string_matches(match["uri"], path)


def host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_ready(pod: Mapping[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get("phase") != "Running":
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def seconds(duration: Optional[str]) -> Optional[float]:
    """An Istio duration (30s, 500ms, 1m, 1h) in seconds."""
    if not duration:
        return None
    total = 0.0
    for number, unit in re2.findall(r"([0-9.]+)(ms|h|m|s)", duration):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


class Route:
    """Where one request goes: the route chosen, the Service it names (in `namespace`), and the ready pods
    behind its destination."""

    def __init__(self, status: int, reason: str, route: Optional[Mapping[str, Any]] = None,
                 pods: Sequence[Mapping[str, Any]] = (), service: str = "", namespace: str = ""):
        self.status, self.reason, self.route, self.pods = status, reason, route, list(pods)
        self.service, self.namespace = service, namespace


def resolve(objects: Mapping[str, list], host: str, port: int, headers: Mapping[str, str], path: str) -> Route:
    gateways = [gw for gw in objects["gateways"]
                if (gw["spec"].get("selector") or {}).get("istio") == "ingressgateway"
                and any(server.get("port", {}).get("number") == port and
                        any(host_matches(h.split("/")[-1], host) for h in server.get("hosts") or [])
                        for server in gw["spec"].get("servers") or [])]
    names = {f"{gw['metadata']['namespace']}/{gw['metadata']['name']}" for gw in gateways}
    for service in objects["virtualservices"]:
        namespace = service["metadata"]["namespace"]
        bound = {g if "/" in g else f"{namespace}/{g}" for g in service["spec"].get("gateways") or []}
        if not bound & names or not any(host_matches(h, host) for h in service["spec"].get("hosts") or []):
            continue
        for route in service["spec"].get("http") or []:
            matches = route.get("match") or []
            if matches and not any(request_matches(m, headers, path) for m in matches):
                continue
            destination = (route.get("route") or [{}])[0].get("destination") or {}
            return Route(200, "routed", route, endpoints(objects, namespace, destination),
                         destination.get("host", "").split(".")[0], namespace)
        return Route(404, "no route matched (Envoy's 404 NR)")
    return Route(404, "no VirtualService bound to a Gateway for this host and port")


def endpoints(objects: Mapping[str, list], namespace: str, destination: Mapping[str, Any]) -> list:
    name = destination.get("host", "").split(".")[0]
    service = next((s for s in objects["services"]
                    if s["metadata"]["namespace"] == namespace and s["metadata"]["name"] == name), None)
    if service is None:
        return []
    selector = dict(service["spec"].get("selector") or {})
    if destination.get("subset"):
        rules = [r for r in objects["destinationrules"] if r["metadata"]["namespace"] == namespace
                 and r["spec"].get("host", "").split(".")[0] == name]
        subset = next((s for r in rules for s in r["spec"].get("subsets") or []
                       if s.get("name") == destination["subset"]), None)
        if subset is None:
            return []  # Envoy: no cluster for an unknown subset, so no healthy upstream
        selector.update(subset.get("labels") or {})
    return [pod for pod in objects["pods"] if pod["metadata"]["namespace"] == namespace
            and selects(selector, pod["metadata"].get("labels") or {}) and pod_ready(pod)]


# --- the gateway -------------------------------------------------------------------------------------

def gateway_handler(cluster: Cluster, apps: Apps, port: int, telemetry: Optional[Telemetry] = None):
    counter = itertools.count()

    class Gateway(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                cluster.refresh()
            except (OSError, ValueError) as error:  # no Envoy answers this: not counted
                self.wfile.write(self.reply(503, {}, f"sandbox gateway: cannot read the API server: {error}"))
                return
            started = time.monotonic()  # after the refresh: Envoy's config arrives apart from its requests
            destination, status, flag, body = self.route_and_forward()
            # Counted before the body goes out: a client that has its whole answer finds it counted.
            if telemetry is not None:
                telemetry.record(destination, status, flag, (time.monotonic() - started) * 1000)
            self.wfile.write(body)

        def route_and_forward(self) -> tuple[Destination, int, str, bytes]:
            """Send the answer's status and headers; where it went, the status, Envoy's response flag (for the
            stats) and the body still to send."""
            headers = {name.lower(): value for name, value in self.headers.items()}
            host = headers.get("host", "").split(":")[0]
            routed = resolve(cluster.objects, host, port, headers, self.path)
            if routed.status != 200:
                return Destination(), routed.status, "NR", self.reply(routed.status, {}, routed.reason)
            route, service = routed.route, Destination(routed.service, routed.namespace)
            operations = (route.get("headers") or {}).get("response") or {}
            if not routed.pods:
                return service, 503, "UH", self.reply(503, operations, "no healthy upstream")
            pod = routed.pods[next(counter) % len(routed.pods)]
            owner = pod["metadata"].get("labels") or {}
            deployment = self.deployment_of(pod)
            destination = Destination(routed.service, pod["metadata"]["namespace"], deployment, owner)
            request_set = ((route.get("headers") or {}).get("request") or {}).get("set") or {}
            forwarded = {**{k: v for k, v in self.headers.items() if k.lower() != "host"}, **request_set,
                         "x-sandbox-pod": pod["metadata"]["name"], "x-sandbox-release": owner.get("release", "")}
            timeout = seconds(route.get("timeout")) or 15.0
            target = apps.port_for(pod["metadata"]["namespace"], deployment)
            connection = http.client.HTTPConnection("127.0.0.1", target, timeout=timeout)
            try:
                connection.request("GET", self.path, headers=forwarded)
                answer = connection.getresponse()
                body = answer.read()
            except TimeoutError:
                return destination, 504, "UT", self.reply(504, operations, "upstream request timeout")
            except OSError as error:
                return destination, 503, "UF", self.reply(503, operations, f"upstream connect error: {error}")
            finally:
                connection.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("content-length", "connection", "date", "server"):
                    self.send_header(name, value)
            self.send_operations(operations)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            return destination, answer.status, "", body

        def deployment_of(self, pod: Mapping[str, Any]) -> str:
            """The Deployment that owns a pod, through its ReplicaSet's name (<deployment>-<hash>)."""
            owner = next((o for o in pod["metadata"].get("ownerReferences") or [] if o["kind"] == "ReplicaSet"), None)
            return owner["name"].rsplit("-", 1)[0] if owner else pod["metadata"]["name"]

        def send_operations(self, operations: Mapping[str, Any]) -> None:
            for name, value in {**(operations.get("set") or {}), **(operations.get("add") or {})}.items():
                self.send_header(name, value)

        def reply(self, status: int, operations: Mapping[str, Any], text: str) -> bytes:
            """Send the status and headers of the gateway's own answer: its body, to send."""
            payload = text.encode()
            self.send_response(status)
            self.send_operations(operations)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(payload)))
            self.send_header("x-sandbox-gateway", "emulated")
            self.end_headers()
            return payload

        def log_message(self, *args) -> None:
            pass
    return Gateway


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int, help="the gateway's port on 127.0.0.1")
    parser.add_argument("--control", required=True, type=Path, help="folder of the app stand-ins' behaviour files")
    parser.add_argument("--namespace", help="see this namespace only (default: all)")
    parser.add_argument("--metrics-port", type=int, help="serve Istio's metrics at 127.0.0.1:PORT/metrics")
    parser.add_argument("--route-by", choices=ROUTE_BY, default=os.environ.get("BLUEGREEN_GATEWAY_ROUTE_BY", "api"),
                        help="api: re-derive routes from the API server's objects (default, "
                             "$BLUEGREEN_GATEWAY_ROUTE_BY); xds: route by the Envoy config istiod pushes")
    parser.add_argument("--xds-address", default=os.environ.get("BLUEGREEN_ISTIOD_XDS"),
                        help="istiod's plaintext xDS address host:port, with --route-by xds "
                             "(default $BLUEGREEN_ISTIOD_XDS)")
    args = parser.parse_args(argv)
    if args.route_by not in ROUTE_BY:
        parser.error(f"--route-by (or $BLUEGREEN_GATEWAY_ROUTE_BY) is {args.route_by!r}: use one of "
                     f"{', '.join(ROUTE_BY)}")
    if args.route_by == "xds" and not args.xds_address:
        parser.error("--route-by xds needs istiod's address: pass --xds-address HOST:PORT or set "
                     "BLUEGREEN_ISTIOD_XDS (the sandbox's env file has it)")
    cluster = Cluster(args.kubeconfig, args.namespace)
    telemetry = Telemetry() if args.metrics_port else None
    if telemetry is not None:
        telemetry.serve(args.metrics_port)
    if args.route_by == "xds":
        from sandbox.xds import AdsClient
        from sandbox.xds_gateway import gateway_node, xds_handler

        def pods() -> list:
            cluster.refresh()
            return cluster.objects["pods"]
        client = AdsClient(args.xds_address, gateway_node(args.namespace).node(),
                           log=lambda line: print(line, file=sys.stderr, flush=True)).start()
        handler = xds_handler(client, pods, Apps(args.control), telemetry)
    else:
        handler = gateway_handler(cluster, Apps(args.control), 80, telemetry)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"sandbox gateway (routing by {args.route_by}) on http://127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
