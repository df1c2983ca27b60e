"""Istio's standard request metrics, as the sandbox's gateway stand-in reports them: it EMULATES Envoy's stats.

No Envoy runs in the sandbox, so the stand-in (sandbox/gateway.py) counts every request it routes the way an
Istio ingress gateway's Envoy does with Istio's stats extension: `istio_requests_total` (a counter) and
`istio_request_duration_milliseconds` (a histogram, with Istio's default buckets), each with the labels
Istio's standard metrics reference lists, `reporter="source"` (the gateway is the client-side proxy of the
request). It serves them with prometheus-client at http://127.0.0.1:PORT/metrics, which the sandbox's
Prometheus scrapes. What differs from Envoy: the figures are counted in Python; the source is always the
ingress gateway; there is no mTLS (destination_principal and connection_security_policy are "unknown").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

REQUESTS = "istio_requests_total"
DURATION = "istio_request_duration_milliseconds"
# Istio's default buckets for its duration histograms, in milliseconds
BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
           3600000)
UNKNOWN = "unknown"
CLUSTER = "Kubernetes"  # Istio's cluster ID when none is set
# The source side of every request: an ingress gateway installed as Istio's charts install it.
GATEWAY_SOURCE = {
    "source_workload": "istio-ingressgateway", "source_workload_namespace": "istio-system",
    "source_principal": "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
    "source_app": "istio-ingressgateway", "source_version": UNKNOWN,
    "source_canonical_service": "istio-ingressgateway", "source_canonical_revision": "latest",
    "source_cluster": CLUSTER,
}
LABELS = ("reporter", *GATEWAY_SOURCE, "destination_workload", "destination_workload_namespace",
          "destination_principal", "destination_app", "destination_version", "destination_service",
          "destination_service_name", "destination_service_namespace", "destination_canonical_service",
          "destination_canonical_revision", "destination_cluster", "request_protocol", "response_code",
          "grpc_response_status", "response_flags", "connection_security_policy")


@dataclass(frozen=True)
class Destination:
    """Where a request went: the Service its route named and, once an endpoint was picked, the pod's workload."""

    service: str = ""  # the Service's name; "" when no route matched
    namespace: str = ""
    workload: str = ""  # the Deployment owning the pod; "" when no pod was picked
    pod_labels: Mapping[str, str] = field(default_factory=dict)


def destination_labels(destination: Destination) -> dict[str, str]:
    """The destination_* labels: Istio reads the app and version from the pod's `app` and `version` labels, and
    the canonical service and revision from Istio's own labels, then the app.kubernetes.io ones, then those."""
    labels = destination.pod_labels
    picked = bool(destination.workload)
    service = (f"{destination.service}.{destination.namespace}.svc.cluster.local" if destination.service else UNKNOWN)

    def pod(*names: str, default: str = UNKNOWN) -> str:
        return next((labels[name] for name in names if labels.get(name)), default) if picked else UNKNOWN

    return {
        "destination_workload": destination.workload or UNKNOWN,
        "destination_workload_namespace": destination.namespace if picked else UNKNOWN,
        "destination_principal": UNKNOWN,
        "destination_app": pod("app"),
        "destination_version": pod("version"),
        "destination_service": service,
        "destination_service_name": destination.service or UNKNOWN,
        "destination_service_namespace": destination.namespace if destination.service else UNKNOWN,
        "destination_canonical_service": pod("service.istio.io/canonical-name", "app.kubernetes.io/name", "app",
                                             default=destination.workload),
        "destination_canonical_revision": pod("service.istio.io/canonical-revision", "app.kubernetes.io/version",
                                              "version", default="latest"),
        "destination_cluster": CLUSTER if picked else UNKNOWN,
    }


def request_labels(destination: Destination, status: int, flag: str = "") -> dict[str, str]:
    """Every label of one request's series; `flag` is Envoy's response flag (NR no route, UH no healthy upstream,
    UT upstream timeout, UF upstream connection failure), "" for none, which Envoy reports as "-"."""
    return {"reporter": "source", **GATEWAY_SOURCE, **destination_labels(destination), "request_protocol": "http",
            "response_code": str(status), "grpc_response_status": "", "response_flags": flag or "-",
            "connection_security_policy": UNKNOWN}


class Telemetry:
    """The two metrics in a registry of their own, and the /metrics server that exposes them."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # Envoy exposes no *_created series
        self.registry = CollectorRegistry()
        self.requests = Counter(REQUESTS, "Requests handled by the proxy (emulated).", LABELS, registry=self.registry)
        self.duration = Histogram(DURATION, "Request durations in milliseconds (emulated).", LABELS,
                                  buckets=BUCKETS, registry=self.registry)

    def record(self, destination: Destination, status: int, flag: str, milliseconds: float) -> None:
        labels = request_labels(destination, status, flag)
        self.requests.labels(**labels).inc()
        self.duration.labels(**labels).observe(milliseconds)

    def serve(self, port: int) -> None:
        """Serve /metrics on 127.0.0.1:PORT, in a daemon thread."""
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1", registry=self.registry)
