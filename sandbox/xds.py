"""An xDS client of istiod that plays the ingress gateway's Envoy, for the sandbox's gateway stand-in.

    python -m sandbox.xds --xds-address 127.0.0.1:15010 [--timeout 10]   # print what istiod pushes

It connects to istiod's plaintext gRPC port (`--grpcAddr`, 15010 by default) over the aggregated
discovery service (state of the world) as Envoy in the `istio-ingressgateway` pod would: a `router` node
in istio-system with the labels `istio: ingressgateway`, which is what makes istiod select the Gateways
for it (pilot/pkg/model/gateway.go). It subscribes to clusters and listeners (wildcard), then to the
endpoints and route configurations they name, ACKs each update it accepts and NACKs one it cannot
(undecodable, a duplicate or nameless resource, a regex that is not RE2), keeping the previous config.
Like Envoy, it keeps serving the last accepted snapshot while istiod is away and reconnects with
exponential backoff, resuming at the versions it holds. sandbox/envoy_routes.py decides on a snapshot.
Exit status of the command: 0 a snapshot with listeners arrived, 1 none in time, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import grpc
from google.protobuf import json_format, message, struct_pb2
from google.rpc import status_pb2

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from .envoy_match import UnsupportedConfig, regex_fullmatch
from .envoy_routes import (CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, eds_names, http_connection_manager,
                           route_config_names)

RESOURCE = "type.googleapis.com/envoy.service.discovery.v3.Resource"
MESSAGES = {LISTENER: listener_pb2.Listener, ROUTE: route_pb2.RouteConfiguration, CLUSTER: cluster_pb2.Cluster,
            ENDPOINT: endpoint_pb2.ClusterLoadAssignment}
SNAPSHOT_FIELD = {LISTENER: "listeners", ROUTE: "routes", CLUSTER: "clusters", ENDPOINT: "endpoints"}
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),  # a full push can pass gRPC's 4 MiB default
                   ("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000)]


@dataclass(frozen=True)
class GatewayNode:
    """Who the client says it is: the node an Istio ingress gateway pod's pilot-agent sends."""

    pod: str = "istio-ingressgateway-sandbox"
    namespace: str = "istio-system"
    ip: str = "127.0.0.1"
    cluster_id: str = "Kubernetes"  # istiod's --clusterID: its registry serves only proxies of its cluster
    istio_version: str = "1.31.0"  # istiod gates some config on the proxy's version: say istiod's own
    dns_domain: str = "cluster.local"
    labels: Mapping[str, str] = field(default_factory=lambda: {"istio": "ingressgateway",
                                                               "app": "istio-ingressgateway"})
    workload: str = "istio-ingressgateway"

    def node(self) -> base_pb2.Node:
        metadata = {
            "ISTIO_VERSION": self.istio_version, "NAME": self.pod, "NAMESPACE": self.namespace,
            "LABELS": dict(self.labels), "CLUSTER_ID": self.cluster_id, "INSTANCE_IPS": self.ip,
            "MESH_ID": self.dns_domain, "WORKLOAD_NAME": self.workload,
            "SERVICE_ACCOUNT": f"{self.workload}-service-account",
            "OWNER": f"kubernetes://apis/apps/v1/namespaces/{self.namespace}/deployments/{self.workload}",
        }
        struct = struct_pb2.Struct()
        struct.update(metadata)
        return base_pb2.Node(
            id=f"router~{self.ip}~{self.pod}.{self.namespace}~{self.namespace}.svc.{self.dns_domain}",
            cluster=f"{self.workload}.{self.namespace}", metadata=struct, user_agent_name="envoy")


class InvalidConfig(ValueError):
    """A pushed resource the client refuses: it NACKs the response with this message."""


def _check_regexes(config: route_pb2.RouteConfiguration) -> None:
    """Envoy refuses a route configuration holding a regex its engine (RE2) does not compile."""
    for virtual_host in config.virtual_hosts:
        for route in virtual_host.routes:
            match = route.match
            matchers = [match.safe_regex] if match.WhichOneof("path_specifier") == "safe_regex" else []
            for header in match.headers:
                if header.WhichOneof("header_match_specifier") == "safe_regex_match":
                    matchers.append(header.safe_regex_match)
                elif header.string_match.WhichOneof("match_pattern") == "safe_regex":
                    matchers.append(header.string_match.safe_regex)
            matchers += [q.string_match.safe_regex for q in match.query_parameters
                         if q.string_match.WhichOneof("match_pattern") == "safe_regex"]
            for matcher in matchers:
                try:
                    regex_fullmatch(matcher, "")
                except UnsupportedConfig as error:
                    raise InvalidConfig(f"route configuration {config.name!r}, route {route.name!r}: {error}") from None


def decode(type_url: str, resources: Sequence) -> dict[str, message.Message]:
    """The resources of one response by name, checked as Envoy checks them before it ACKs."""
    if type_url not in MESSAGES:
        raise InvalidConfig(f"unknown resource type {type_url}")
    out: dict[str, message.Message] = {}
    for packed in resources:
        try:
            if packed.type_url == RESOURCE:  # a resource wrapped with its name and TTL
                wrapper = discovery_pb2.Resource()
                packed.Unpack(wrapper)
                packed = wrapper.resource
            if packed.type_url != type_url:
                raise InvalidConfig(f"a {packed.type_url} in a response of {type_url}")
            resource = MESSAGES[type_url]()
            packed.Unpack(resource)
            if type_url == LISTENER:
                for chain in list(resource.filter_chains) + [resource.default_filter_chain]:
                    manager = http_connection_manager(chain)
                    if manager is not None and manager.HasField("route_config"):
                        _check_regexes(manager.route_config)
        except message.DecodeError as error:
            raise InvalidConfig(f"a {type_url} that does not decode: {error}") from None
        if type_url == ROUTE:
            _check_regexes(resource)
        name = resource.cluster_name if type_url == ENDPOINT else resource.name
        if not name:
            raise InvalidConfig(f"a {type_url.rsplit('.', 1)[-1]} without a name")
        if name in out:
            raise InvalidConfig(f"{type_url.rsplit('.', 1)[-1]} {name!r} twice in one response")
        out[name] = resource
    return out


def apply_update(snapshot: Snapshot, type_url: str, version: str, resources: Mapping[str, message.Message],
                 subscribed: Mapping[str, set]) -> Snapshot:
    """The snapshot after an accepted response: listeners and clusters are whole sets (state of the world),
    routes and endpoints are kept for the names still subscribed and replaced for those the response holds."""
    versions = {**snapshot.versions, type_url: version}
    if type_url == LISTENER:
        names = route_config_names(resources)
        return snapshot.replace(listeners=dict(resources), versions=versions,
                                routes={n: r for n, r in snapshot.routes.items() if n in names})
    if type_url == CLUSTER:
        names = eds_names(resources)
        return snapshot.replace(clusters=dict(resources), versions=versions,
                                endpoints={n: e for n, e in snapshot.endpoints.items() if n in names})
    wanted = subscribed.get(type_url, set())
    held = getattr(snapshot, SNAPSHOT_FIELD[type_url])
    merged = {**held, **{n: r for n, r in resources.items() if n in wanted}}
    return snapshot.replace(versions=versions, **{SNAPSHOT_FIELD[type_url]: {n: r for n, r in merged.items()
                                                                              if n in wanted}})


class AdsClient:
    """One ADS stream to istiod at a time, re-opened with backoff; `snapshot` is the last accepted config."""

    def __init__(self, address: str, node: base_pb2.Node, min_backoff: float = 0.25, max_backoff: float = 10.0,
                 log: Callable[[str], None] = lambda line: None):
        self.address, self.node, self.log = address, node, log
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self._snapshot = Snapshot()
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._call: Optional[grpc.Future] = None
        self._thread: Optional[threading.Thread] = None
        self.updates = self.acks = self.nacks = self.connects = 0
        self.connected = False
        self.last_error = ""

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def start(self) -> "AdsClient":
        self._thread = threading.Thread(target=self._run, name="xds", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._call is not None:
            self._call.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_for(self, predicate: Callable[[Snapshot], bool], timeout: float) -> Optional[Snapshot]:
        """The first snapshot for which `predicate` holds, waiting up to `timeout` seconds; None if none did."""
        with self._changed:
            if self._changed.wait_for(lambda: predicate(self._snapshot), timeout=timeout):
                return self._snapshot
        return None

    def wait_connected(self, connected: bool, timeout: float) -> bool:
        """Whether the stream came to be up (or down, with connected=False) within `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.connected == connected, timeout=timeout)

    def _set_connected(self, connected: bool) -> None:
        with self._changed:
            self.connected = connected
            self._changed.notify_all()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            received = False
            try:
                received = self._stream()
            except grpc.RpcError as error:
                self.last_error = f"{error.code().name}: {error.details()}"
            except Exception as error:  # noqa: BLE001 -- a broken stream must not end the client; report it
                self.last_error = f"{type(error).__name__}: {error}"
            self._set_connected(False)
            if self._stopping.is_set():
                return
            failures = 1 if received else failures + 1
            delay = min(self.max_backoff, self.min_backoff * 2 ** (failures - 1))
            self.log(f"xds: stream to {self.address} ended ({self.last_error or 'closed'}); again in {delay:.2f}s, "
                     f"serving the last config meanwhile")
            self._stopping.wait(delay)

    def _stream(self) -> bool:
        """One stream until it ends; whether any response arrived on it."""
        outbox: "queue.Queue[Optional[discovery_pb2.DiscoveryRequest]]" = queue.Queue()
        nonces: dict[str, str] = {}
        subscribed = {ROUTE: set(self._snapshot.routes), ENDPOINT: set(self._snapshot.endpoints)}
        received = False

        def send(type_url: str, error: Optional[str] = None) -> None:
            request = discovery_pb2.DiscoveryRequest(
                type_url=type_url, version_info=self._snapshot.versions.get(type_url, ""),
                response_nonce=nonces.get(type_url, ""), resource_names=sorted(subscribed.get(type_url, ())))
            if error is not None:
                request.error_detail.CopyFrom(status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                                                message=error))
            if not sent:
                request.node.CopyFrom(self.node)  # the node goes with the stream's first request only
            sent.append(type_url)
            outbox.put(request)

        sent: list[str] = []
        with grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS) as channel:
            self._call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
                iter(outbox.get, None))
            try:
                for type_url in (CLUSTER, LISTENER, ENDPOINT, ROUTE):  # Envoy's order; resumes at held versions
                    if type_url in (CLUSTER, LISTENER) or subscribed[type_url]:
                        send(type_url)
                for response in self._call:
                    if not received:
                        received = True
                        self.connects += 1
                        self.last_error = ""
                        self._set_connected(True)
                    self._handle(response, nonces, subscribed, send)
            finally:
                outbox.put(None)
                self._call = None
        return received

    def _handle(self, response: discovery_pb2.DiscoveryResponse, nonces: dict, subscribed: dict, send) -> None:
        type_url = response.type_url
        nonces[type_url] = response.nonce
        try:
            resources = decode(type_url, response.resources)
        except InvalidConfig as error:
            self.nacks += 1
            self.log(f"xds: NACK {type_url.rsplit('.', 1)[-1]} version {response.version_info}: {error}")
            send(type_url, str(error))
            return
        with self._changed:
            self._snapshot = apply_update(self._snapshot, type_url, response.version_info, resources, subscribed)
            self.updates += 1
            self._changed.notify_all()
        self.acks += 1
        send(type_url)
        # After listeners or clusters, subscribe to the routes or endpoints they name, as Envoy does.
        for parent, child, names in ((LISTENER, ROUTE, route_config_names), (CLUSTER, ENDPOINT, eds_names)):
            if type_url == parent:
                wanted = names(self._snapshot.listeners if parent == LISTENER else self._snapshot.clusters)
                if wanted != subscribed[child]:
                    subscribed[child] = wanted
                    if wanted:
                        send(child)


def summary(snapshot: Snapshot) -> dict:
    """What a snapshot holds, by name, with the route configurations' virtual hosts and routes."""
    return {
        "versions": dict(snapshot.versions),
        "listeners": sorted(snapshot.listeners),
        "routes": {name: [{"virtualHost": vh.name, "domains": list(vh.domains),
                           "routes": [json_format.MessageToDict(r.match) | {"name": r.name} for r in vh.routes]}
                          for vh in config.virtual_hosts] for name, config in sorted(snapshot.routes.items())},
        "clusters": sorted(snapshot.clusters),
        "endpoints": {name: [f"{lb.endpoint.address.socket_address.address}:"
                             f"{lb.endpoint.address.socket_address.port_value}"
                             for locality in cla.endpoints for lb in locality.lb_endpoints]
                      for name, cla in sorted(snapshot.endpoints.items())},
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.xds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--xds-address", required=True, help="istiod's plaintext gRPC address, host:port")
    parser.add_argument("--cluster-id", default=GatewayNode.cluster_id, help="istiod's --clusterID")
    parser.add_argument("--istio-version", default=GatewayNode.istio_version)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for listeners and routes")
    args = parser.parse_args(argv)
    node = GatewayNode(cluster_id=args.cluster_id, istio_version=args.istio_version).node()
    client = AdsClient(args.xds_address, node, log=lambda line: print(line, file=sys.stderr)).start()
    try:
        snapshot = client.wait_for(lambda s: bool(s.listeners) and route_config_names(s.listeners) <= set(s.routes),
                                   args.timeout)
    finally:
        client.stop()
    print(json.dumps(summary(snapshot or client.snapshot), indent=2))
    if snapshot is None:
        print(f"python -m sandbox.xds: no listeners with their routes from {args.xds_address} in {args.timeout}s "
              f"({client.last_error or 'no error'}); check istiod's --grpcAddr and its log", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
