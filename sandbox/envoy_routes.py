"""Where Envoy would send one request, given the config istiod pushed: EMULATED (no Envoy runs here).

The sandbox has no Envoy, so its gateway stand-in asks `decide(snapshot, request)` for each request, over
the listeners, route configurations, clusters and endpoints that sandbox/xds.py received from istiod:
the listener bound to the port; its HTTP connection manager's route configuration (inline or by RDS
name); the virtual host by domain (sandbox/envoy_match.py); the first route whose match holds; its
action (a cluster, weighted clusters, a redirect or a direct response); the route's timeout and retry
policy; the header operations of the weighted cluster, route, virtual host and route configuration, in
Envoy's order; the cluster's healthy endpoints from EDS (or its inline load assignment).
What stays emulated: Envoy's matching, as these functions re-implement it, and its forwarding, which
the stand-in performs from the Decision (it picks an endpoint, applies the timeout, retries and header
operations). Header values are literal (Envoy's %VARIABLE% formatters are not expanded); of the
endpoints' priorities only the first with a healthy endpoint is used (no overprovisioning spill).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as route_pb, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb

from .envoy_match import route_matches, select_virtual_host

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
DEFAULT_TIMEOUT = 15.0  # Envoy's route timeout when the route sets none
# Envoy's local replies the stand-in sends itself while forwarding: (status, response flag, body).
UPSTREAM_TIMEOUT = (504, "UT", "upstream request timeout")
UPSTREAM_CONNECT_FAILURE = (503, "UF", "upstream connect error or disconnect/reset before headers. "
                                       "reset reason: connection failure")
_HEALTHY = (health_check_pb2.UNKNOWN, health_check_pb2.HEALTHY)  # Envoy counts UNKNOWN as healthy
_NOT_FOUND_CODES = {route_pb.RouteAction.SERVICE_UNAVAILABLE: 503, route_pb.RouteAction.NOT_FOUND: 404,
                    route_pb.RouteAction.INTERNAL_SERVER_ERROR: 500}
_REDIRECT_CODES = {0: 301, 1: 302, 2: 303, 3: 307, 4: 308}
_GRPC_RETRY_ON = {"cancelled": 1, "deadline-exceeded": 4, "resource-exhausted": 8, "internal": 13, "unavailable": 14}


@dataclass(frozen=True)
class Snapshot:
    """The last config accepted of each type, by resource name, with the version it was accepted at."""

    listeners: Mapping[str, listener_pb2.Listener] = field(default_factory=dict)
    routes: Mapping[str, route_pb2.RouteConfiguration] = field(default_factory=dict)
    clusters: Mapping[str, cluster_pb2.Cluster] = field(default_factory=dict)
    endpoints: Mapping[str, endpoint_pb2.ClusterLoadAssignment] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)  # type URL -> the version_info last ACKed

    def replace(self, **changes) -> "Snapshot":
        return dataclasses.replace(self, **changes)


def http_connection_manager(chain: listener_pb2.FilterChain) -> Optional[hcm_pb.HttpConnectionManager]:
    """The filter chain's HTTP connection manager, None when the chain is not HTTP (a TCP proxy, say)."""
    for network_filter in chain.filters:
        if network_filter.typed_config.type_url == HCM:
            manager = hcm_pb.HttpConnectionManager()
            network_filter.typed_config.Unpack(manager)
            return manager
    return None


def plaintext_chain(listener: listener_pb2.Listener) -> Optional[listener_pb2.FilterChain]:
    """The chain a plaintext HTTP connection lands on: the first one that asks for no TLS nor SNI."""
    for chain in list(listener.filter_chains) + [listener.default_filter_chain]:
        match = chain.filter_chain_match
        if match.transport_protocol in ("", "raw_buffer") and not match.server_names and chain.filters:
            return chain
    return None


def route_config_names(listeners: Mapping[str, listener_pb2.Listener]) -> set[str]:
    """The RDS names the listeners refer to: what an Envoy subscribes to after each LDS update."""
    names = set()
    for listener in listeners.values():
        for chain in list(listener.filter_chains) + [listener.default_filter_chain]:
            manager = http_connection_manager(chain)
            if manager is not None and manager.HasField("rds"):
                names.add(manager.rds.route_config_name)
    return names


def eds_names(clusters: Mapping[str, cluster_pb2.Cluster]) -> set[str]:
    """The EDS names the clusters refer to: what an Envoy subscribes to after each CDS update."""
    return {c.eds_cluster_config.service_name or c.name for c in clusters.values()
            if c.WhichOneof("cluster_discovery_type") == "type" and c.type == cluster_pb2.Cluster.EDS}


@dataclass(frozen=True)
class Request:
    host: str  # the Host header as sent, port included when the client sent one
    port: int  # the port the gateway's listener is bound to (the Service's targetPort, e.g. 8080)
    path: str  # the :path, query included
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names, repeated values joined by ','


@dataclass(frozen=True)
class Endpoint:
    address: str  # istiod's EDS: the pod IP from the EndpointSlice
    port: int  # the pod's target port
    weight: int = 1
    workload: str = ""  # istio's endpoint metadata: the workload (a Deployment's name) and its namespace
    namespace: str = ""


@dataclass(frozen=True)
class Retry:
    """A route's retry policy, as Envoy reads it: how many retries, on which outcomes, each with what timeout."""

    retry_on: frozenset[str]
    num_retries: int = 1
    per_try_timeout: Optional[float] = None
    retriable_status_codes: frozenset[int] = frozenset()

    def retriable(self, status: Optional[int] = None, failure: Optional[str] = None,
                  grpc_status: Optional[int] = None) -> bool:
        """Whether Envoy retries an attempt that answered `status`, or failed (`connect-failure`, `reset`,
        `refused-stream`, `timeout` for the per-try timeout), or answered gRPC status `grpc_status`."""
        on = self.retry_on
        if failure is not None:
            return bool(on & {"5xx", "reset"}) or (failure == "timeout" and "gateway-error" in on) or \
                failure in on or (failure == "connect-failure" and "reset-before-request" in on)
        if grpc_status is not None and any(_GRPC_RETRY_ON.get(name) == grpc_status for name in on):
            return True
        if status is None:
            return False
        return ("5xx" in on and status >= 500) or ("gateway-error" in on and status in (502, 503, 504)) \
            or ("retriable-4xx" in on and status == 409) \
            or ("retriable-status-codes" in on and status in self.retriable_status_codes)


def retry_of(policy: route_pb.RetryPolicy) -> Retry:
    return Retry(retry_on=frozenset(p.strip() for p in policy.retry_on.split(",") if p.strip()),
                 num_retries=policy.num_retries.value if policy.HasField("num_retries") else 1,
                 per_try_timeout=policy.per_try_timeout.ToTimedelta().total_seconds()
                 if policy.HasField("per_try_timeout") else None,
                 retriable_status_codes=frozenset(policy.retriable_status_codes))


@dataclass(frozen=True)
class HeaderMutation:
    """One level's header operations (weighted cluster, route, virtual host or route configuration)."""

    remove: tuple[str, ...] = ()
    add: tuple[tuple[str, str, int], ...] = ()  # (name, value, HeaderValueOption append action)

    @classmethod
    def of(cls, to_add: Sequence[base_pb2.HeaderValueOption], to_remove: Sequence[str]) -> "HeaderMutation":
        adds = []
        for option in to_add:
            if option.HasField("append"):  # the deprecated flag wins when set, as in Envoy
                action = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD if option.append.value \
                    else base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
            else:
                action = option.append_action
            if option.header.value or option.keep_empty_value:
                adds.append((option.header.key.lower(), option.header.value, action))
        return cls(tuple(name.lower() for name in to_remove), tuple(adds))


def apply_headers(headers: Sequence[tuple[str, str]], mutations: Sequence[HeaderMutation]) -> list[tuple[str, str]]:
    """Headers after the mutations, applied in order (each level removes, then adds), as Envoy does."""
    out = [(name.lower(), value) for name, value in headers]
    for mutation in mutations:
        out = [(n, v) for n, v in out if n not in mutation.remove]
        for name, value, action in mutation.add:
            present = any(n == name for n, _ in out)
            if action == base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD:
                out.append((name, value))
            elif action == base_pb2.HeaderValueOption.ADD_IF_ABSENT:
                out += [] if present else [(name, value)]
            elif action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD or present:
                out = [(n, v) for n, v in out if n != name] + [(name, value)]
    return out


@dataclass(frozen=True)
class Decision:
    """What Envoy does with the request. status 200: forward to one of `endpoints`; 0: no listener takes the
    connection (Envoy refuses it); anything else: answer `status` with `body` at once (`flag` is Envoy's
    response flag: NR no route, NC no cluster, UH no healthy upstream, DR direct response)."""

    status: int
    flag: str = ""
    body: str = ""
    listener: str = ""
    route_config: str = ""
    virtual_host: str = ""
    route: str = ""
    cluster: str = ""
    endpoints: tuple[Endpoint, ...] = ()
    timeout: Optional[float] = None  # seconds; None: no timeout (istiod sets 0s unless the route sets one)
    retry: Optional[Retry] = None
    request_headers: tuple[HeaderMutation, ...] = ()  # apply with apply_headers before forwarding
    response_headers: tuple[HeaderMutation, ...] = ()  # ... and to the answer, a local reply's included
    location: str = ""  # a redirect's Location


def endpoints_of(assignment: endpoint_pb2.ClusterLoadAssignment) -> tuple[Endpoint, ...]:
    """The healthy endpoints of the first priority that has any."""
    by_priority: dict[int, list[Endpoint]] = {}
    for locality in assignment.endpoints:
        for lb in locality.lb_endpoints:
            if lb.health_status not in _HEALTHY or not lb.endpoint.address.HasField("socket_address"):
                continue
            socket = lb.endpoint.address.socket_address
            workload = lb.metadata.filter_metadata["istio"].fields["workload"].string_value \
                if "istio" in lb.metadata.filter_metadata else ""
            name, _, rest = workload.partition(";")  # istiod: workload;namespace;canonical name;revision;cluster
            by_priority.setdefault(locality.priority, []).append(Endpoint(
                socket.address, socket.port_value, lb.load_balancing_weight.value or 1, name, rest.split(";")[0]))
    return tuple(by_priority[min(by_priority)]) if by_priority else ()


def cluster_endpoints(snapshot: Snapshot, cluster: cluster_pb2.Cluster) -> tuple[Endpoint, ...]:
    if cluster.WhichOneof("cluster_discovery_type") == "type" and cluster.type == cluster_pb2.Cluster.EDS:
        assignment = snapshot.endpoints.get(cluster.eds_cluster_config.service_name or cluster.name)
        return endpoints_of(assignment) if assignment is not None else ()  # not warmed yet: nothing to send to
    return endpoints_of(cluster.load_assignment)


def _listener_for(snapshot: Snapshot, port: int) -> Optional[listener_pb2.Listener]:
    return next((listener for _, listener in sorted(snapshot.listeners.items())
                 if listener.address.socket_address.port_value == port), None)


def _mutations(levels: Sequence, direction: str) -> tuple[HeaderMutation, ...]:
    return tuple(HeaderMutation.of(getattr(level, f"{direction}_headers_to_add"),
                                   getattr(level, f"{direction}_headers_to_remove")) for level in levels)


def _pick_weighted(clusters: Sequence[route_pb.WeightedCluster.ClusterWeight], pick: float):
    total = sum(c.weight.value for c in clusters)
    if total == 0:
        return None
    chosen, end = int(pick * total) % total, 0
    for candidate in clusters:
        end += candidate.weight.value
        if chosen < end:
            return candidate
    return None


def _redirect_location(redirect: route_pb.RedirectAction, request: Request, host: str) -> str:
    scheme = "https" if redirect.https_redirect else (redirect.scheme_redirect or "http")
    authority = redirect.host_redirect or host
    if redirect.port_redirect:
        authority = f"{authority.split(':')[0]}:{redirect.port_redirect}"
    path, _, query = request.path.partition("?")
    if redirect.WhichOneof("path_rewrite_specifier") == "path_redirect":
        path = redirect.path_redirect
    if query and not redirect.strip_query and "?" not in path:
        path = f"{path}?{query}"
    return f"{scheme}://{authority}{path}"


def decide(snapshot: Snapshot, request: Request, pick: float = 0.0) -> Decision:
    """Envoy's routing decision for one request; `pick` in [0, 1) chooses among weighted clusters."""
    listener = _listener_for(snapshot, request.port)
    chain = plaintext_chain(listener) if listener is not None else None
    manager = http_connection_manager(chain) if chain is not None else None
    if manager is None:
        return Decision(0, listener=listener.name if listener else "")
    if manager.HasField("rds"):
        config_name = manager.rds.route_config_name
        config = snapshot.routes.get(config_name)
        if config is None:  # the listener still warms, waiting for its routes: Envoy does not take it yet
            return Decision(0, listener=listener.name, route_config=config_name)
    else:
        config, config_name = manager.route_config, manager.route_config.name
    found = Decision(404, "NR", listener=listener.name, route_config=config_name)
    host = request.host.lower()
    if config.ignore_port_in_host_matching or manager.strip_any_host_port or \
            (manager.strip_matching_host_port and host.endswith(f":{request.port}")):
        host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if manager.strip_trailing_host_dot:
        host = host.rstrip(".")
    virtual_host = select_virtual_host(config.virtual_hosts, host)
    if virtual_host is None:
        return found
    headers = {**{k.lower(): v for k, v in request.headers.items()}, ":authority": request.host,
               ":path": request.path, ":method": request.method, ":scheme": "http"}
    route = next((r for r in virtual_host.routes if route_matches(r.match, request.path, headers)), None)
    found = dataclasses.replace(found, virtual_host=virtual_host.name)
    if route is None:
        return found
    levels = [route, virtual_host, config]
    found = dataclasses.replace(found, route=route.name, response_headers=_mutations(levels, "response"))
    action = route.WhichOneof("action")
    if action == "direct_response":
        response = route.direct_response
        body = response.body.inline_string or response.body.inline_bytes.decode(errors="replace")
        return dataclasses.replace(found, status=response.status, flag="DR", body=body)
    if action == "redirect":
        return dataclasses.replace(found, status=_REDIRECT_CODES.get(route.redirect.response_code, 301), flag="DR",
                                   location=_redirect_location(route.redirect, request, host))
    if action != "route":
        return dataclasses.replace(found, status=404, flag="NR")  # filter_action, non_forwarding: not emulated
    forward = route.route
    not_found = dataclasses.replace(found, status=_NOT_FOUND_CODES.get(forward.cluster_not_found_response_code, 503),
                                    flag="NC")
    specifier = forward.WhichOneof("cluster_specifier")
    if specifier == "cluster":
        name = forward.cluster
    elif specifier == "weighted_clusters":
        weighted = _pick_weighted(forward.weighted_clusters.clusters, pick)
        if weighted is None:
            return not_found
        name, levels = weighted.name, [weighted] + levels
    elif specifier == "cluster_header":
        name = headers.get(forward.cluster_header.lower(), "")
    else:
        return not_found  # cluster specifier plugins are extensions: not emulated
    policy = forward.retry_policy if forward.HasField("retry_policy") else \
        virtual_host.retry_policy if virtual_host.HasField("retry_policy") else None
    timeout = forward.timeout.ToTimedelta().total_seconds() if forward.HasField("timeout") else DEFAULT_TIMEOUT
    found = dataclasses.replace(found, cluster=name, timeout=timeout or None,
                                retry=retry_of(policy) if policy is not None else None,
                                request_headers=_mutations(levels, "request"),
                                response_headers=_mutations(levels, "response"))
    cluster = snapshot.clusters.get(name)
    if cluster is None:
        return dataclasses.replace(not_found, cluster=name)
    endpoints = cluster_endpoints(snapshot, cluster)
    if not endpoints:
        return dataclasses.replace(found, status=503, flag="UH", body="no healthy upstream")
    return dataclasses.replace(found, status=200, flag="", endpoints=endpoints)
