"""Envoy config as istiod generates it for the routing stack's objects (Gateway port 80 -> the ingress Service's
targetPort 8080, VirtualService `myapp-blue-green` with the test cookie route first, DestinationRule subsets blue
and green): listener `0.0.0.0_8080` on RDS `http.8080`, virtual host `*:80`, EDS clusters
`outbound|3000|<color>|myapp.default...` and their endpoints, for the unit tests of sandbox/xds*.py."""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2, struct_pb2, wrappers_pb2

from components.domain import Cookie
from components.routes import COLOR_HEADER, cookie_regex
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from sandbox.envoy_routes import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot

SEED_COOKIE = r"^(.*?;\s*)?(test=true)(;.*)?$"  # the tutorial's regex for the test cookie
PROGRAM_COOKIE = cookie_regex(Cookie("test", "true"))  # what the program declares
HOST = "myapp.default.svc.cluster.local"
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
ADS = config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource(),
                                     resource_api_version=config_source_pb2.V3)


def cluster_name(color: str) -> str:
    return f"outbound|3000|{color}|{HOST}"


def listener(port: int = 8080) -> listener_pb2.Listener:
    manager = hcm.HttpConnectionManager(stat_prefix=f"outbound_0.0.0.0_{port}",
                                        rds=hcm.Rds(config_source=ADS, route_config_name=f"http.{port}"))
    # istiod's telemetry filter, of a type these protos do not hold: Envoy's config, never unpacked here
    manager.http_filters.add(name="istio.stats").typed_config.CopyFrom(
        any_pb2.Any(type_url="type.googleapis.com/stats.PluginConfig", value=b""))
    manager.http_filters.add(name="envoy.filters.http.router")
    chain = lc.FilterChain()
    chain.filters.add(name="envoy.filters.network.http_connection_manager").typed_config.Pack(manager)
    address = address_pb2.Address(socket_address=address_pb2.SocketAddress(address="0.0.0.0", port_value=port))
    return listener_pb2.Listener(name=f"0.0.0.0_{port}", address=address, filter_chains=[chain])


def istio_route(name: str, color: str, cookie_regex_text: str = "", timeout: float = 0.0) -> rc.Route:
    """A route as istiod translates an HTTPRoute: prefix /, header matchers, Istio's default retries."""
    match = rc.RouteMatch(prefix="/", case_sensitive=wrappers_pb2.BoolValue(value=True))
    if cookie_regex_text:
        match.headers.add(name="cookie", string_match=string_pb2.StringMatcher(
            safe_regex=regex_pb2.RegexMatcher(regex=cookie_regex_text)))
    limit = duration_pb2.Duration()
    limit.FromNanoseconds(int(timeout * 1e9))
    action = rc.RouteAction(cluster=cluster_name(color), timeout=limit,
                            retry_policy=rc.RetryPolicy(
                                retry_on="connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                                num_retries=wrappers_pb2.UInt32Value(value=2), host_selection_retry_max_attempts=5))
    header = base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=COLOR_HEADER, value=color),
                                        append_action=OVERWRITE)
    return rc.Route(name=name, match=match, route=action, response_headers_to_add=[header],
                    decorator=rc.Decorator(operation=f"{HOST}:3000/*"))


def route_config(routes, domains=("*",)) -> route_pb2.RouteConfiguration:
    host = rc.VirtualHost(name="*:80", domains=list(domains), routes=routes)
    return route_pb2.RouteConfiguration(name="http.8080", virtual_hosts=[host],
                                        validate_clusters=wrappers_pb2.BoolValue(value=False),
                                        ignore_port_in_host_matching=True)


def blue_green_routes(test: str = "green", active: str = "blue", regex: str = PROGRAM_COOKIE):
    return route_config([istio_route("myapp-test", test, regex), istio_route("myapp-default", active)])


def eds_cluster(name: str) -> cluster_pb2.Cluster:
    eds = cluster_pb2.Cluster.EdsClusterConfig(eds_config=ADS, service_name=name)
    return cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS, eds_cluster_config=eds,
                               connect_timeout=duration_pb2.Duration(seconds=10))


def assignment(name: str, pods, health=health_check_pb2.HEALTHY) -> endpoint_pb2.ClusterLoadAssignment:
    """pods: (IP, Deployment) pairs, as istiod's EDS gives them from the EndpointSlices."""
    locality = ep.LocalityLbEndpoints(load_balancing_weight=wrappers_pb2.UInt32Value(value=len(pods) or 1))
    for ip, deployment in pods:
        endpoint = locality.lb_endpoints.add(health_status=health,
                                             load_balancing_weight=wrappers_pb2.UInt32Value(value=1))
        endpoint.endpoint.address.socket_address.address, endpoint.endpoint.address.socket_address.port_value = ip, 3000
        workload = struct_pb2.Struct()
        workload.update({"workload": f"{deployment};default;myapp;v1;Kubernetes"})
        endpoint.metadata.filter_metadata["istio"].CopyFrom(workload)
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name, endpoints=[locality])


def istiod_config(routes=None, blue_health=health_check_pb2.HEALTHY):
    clusters = [eds_cluster(cluster_name(c)) for c in ("", "blue", "green")]
    clusters.append(cluster_pb2.Cluster(name="BlackHoleCluster", type=cluster_pb2.Cluster.STATIC))
    return {
        LISTENER: {"0.0.0.0_8080": listener()},
        ROUTE: {"http.8080": routes or blue_green_routes()},
        CLUSTER: {c.name: c for c in clusters},
        ENDPOINT: {cluster_name(""): assignment(cluster_name(""), [("10.244.0.5", "myapp-blue"),
                                                                   ("10.244.0.6", "myapp-green")]),
                   cluster_name("blue"): assignment(cluster_name("blue"), [("10.244.0.5", "myapp-blue")],
                                                    blue_health),
                   cluster_name("green"): assignment(cluster_name("green"), [("10.244.0.6", "myapp-green")])},
    }


def istiod_snapshot(**config) -> Snapshot:
    """istiod_config(**config) as the snapshot the ADS client would hold once it is all pushed."""
    pushed = istiod_config(**config)
    return Snapshot(listeners=pushed[LISTENER], routes=pushed[ROUTE], clusters=pushed[CLUSTER],
                    endpoints=pushed[ENDPOINT])
