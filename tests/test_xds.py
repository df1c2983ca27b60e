"""The gateway stand-in's xDS client (sandbox/xds.py) and its Envoy routing decision (sandbox/envoy_routes.py).

Against an in-process ADS server (grpcio) that pushes what istiod generates for the routing stack's objects
(Gateway port 80 -> the ingress Service's targetPort 8080, VirtualService `myapp-blue-green` with the test
cookie route first, DestinationRule subsets blue and green): listener `0.0.0.0_8080` with its HTTP connection
manager on RDS `http.8080`, virtual host `*:80` for domain `*`, clusters `outbound|3000|<color>|myapp.default...`
of type EDS, and their ClusterLoadAssignments of pod IPs with istio's workload metadata. No Go, no istiod.
"""

from __future__ import annotations

import itertools
import queue
import threading
from concurrent import futures

import grpc
import pytest
from google.protobuf import wrappers_pb2

from components.routes import COLOR_HEADER
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from sandbox.envoy_match import domain_rank, header_matches, path_matches
from sandbox.envoy_routes import (CLUSTER, ENDPOINT, LISTENER, ROUTE, HeaderMutation, Request, Snapshot,
                                  apply_headers, decide)
from sandbox.xds import AdsClient, GatewayNode

from harness.istiod_config import (OVERWRITE, PROGRAM_COOKIE, SEED_COOKIE, blue_green_routes, cluster_name,
                                   istio_route, istiod_config, route_config)


class FakeIstiod(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """A state-of-the-world ADS server: answers a stream's first request of a type and any change of its names,
    takes ACKs and NACKs without answering, and pushes a new version to every stream that asked for the type."""

    def __init__(self, resources, version: str = "1"):
        self.resources, self.versions = resources, {t: version for t in resources}
        self.requests: list[discovery_pb2.DiscoveryRequest] = []
        self.responses: list[discovery_pb2.DiscoveryResponse] = []
        self.streams: list[dict] = []
        self.nonces = itertools.count(1)
        self.changed = threading.Condition()

    def StreamAggregatedResources(self, request_iterator, context):
        stream = {"outbox": queue.Queue(), "names": {}}
        with self.changed:
            self.streams.append(stream)
        context.add_callback(lambda: stream["outbox"].put(None))

        def read():
            try:
                for request in request_iterator:
                    with self.changed:
                        self.requests.append(request)
                        self.changed.notify_all()
                    self.answer(stream, request)
            except grpc.RpcError:
                pass  # the stream ended under the reader
            stream["outbox"].put(None)
        threading.Thread(target=read, daemon=True).start()
        while (response := stream["outbox"].get()) is not None:
            yield response

    def answer(self, stream, request) -> None:
        names = set(request.resource_names)
        changed = stream["names"].get(request.type_url) != names
        stream["names"][request.type_url] = names
        if not request.error_detail.message and (not request.response_nonce or changed):
            self.send(stream, request.type_url)

    def send(self, stream, type_url: str) -> None:
        wanted = stream["names"].get(type_url, set())
        resources = [r for n, r in self.resources.get(type_url, {}).items()
                     if type_url in (LISTENER, CLUSTER) or n in wanted]
        response = discovery_pb2.DiscoveryResponse(type_url=type_url, version_info=self.versions.get(type_url, ""),
                                                   nonce=str(next(self.nonces)))
        for resource in resources:
            response.resources.add().Pack(resource)
        with self.changed:
            self.responses.append(response)
        stream["outbox"].put(response)

    def push(self, type_url: str, resources: dict, version: str) -> None:
        self.resources[type_url], self.versions[type_url] = resources, version
        for stream in list(self.streams):
            if type_url in stream["names"]:
                self.send(stream, type_url)

    def wait_request(self, predicate, timeout: float = 10.0) -> discovery_pb2.DiscoveryRequest:
        with self.changed:
            assert self.changed.wait_for(lambda: any(predicate(r) for r in self.requests), timeout), self.requests
            return next(r for r in self.requests if predicate(r))


def serve(servicer: FakeIstiod, port: int = 0):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    assert bound, f"cannot bind 127.0.0.1:{port}"
    server.start()
    return server, bound


def complete(snapshot: Snapshot) -> bool:
    return len(snapshot.listeners) == 1 and "http.8080" in snapshot.routes and len(snapshot.endpoints) == 3


@pytest.fixture
def istiod():
    servicer = FakeIstiod(istiod_config())
    server, port = serve(servicer)
    client = AdsClient(f"127.0.0.1:{port}", GatewayNode().node(), min_backoff=0.05, max_backoff=0.2).start()
    assert client.wait_for(complete, 10), client.last_error
    yield servicer, client, server, port
    client.stop()
    server.stop(None)


def ask(snapshot: Snapshot, cookie: str = "", host: str = "myapp.example.com", port: int = 8080, path: str = "/"):
    return decide(snapshot, Request(host=host, port=port, path=path, headers={"cookie": cookie} if cookie else {}))


def test_the_node_is_the_ingress_gateway_router_that_istiod_selects_gateways_for():
    node = GatewayNode(pod="istio-ingressgateway-7d4f9", cluster_id="Kubernetes").node()
    kind, ip, proxy, domain = node.id.split("~")  # istiod's ParseServiceNodeWithMetadata: four parts
    assert (kind, ip, proxy, domain) == ("router", "127.0.0.1", "istio-ingressgateway-7d4f9.istio-system",
                                         "istio-system.svc.cluster.local")
    metadata = node.metadata.fields
    assert dict(metadata["LABELS"].struct_value) == {"istio": "ingressgateway", "app": "istio-ingressgateway"}
    assert metadata["NAMESPACE"].string_value == "istio-system"
    assert metadata["CLUSTER_ID"].string_value == "Kubernetes" and metadata["ISTIO_VERSION"].string_value
    assert metadata["NAME"].string_value == "istio-ingressgateway-7d4f9"


def test_subscribes_like_envoy_and_acks_every_response(istiod):
    servicer, client, _, _ = istiod
    assert servicer.requests[0].node.id.startswith("router~") and not servicer.requests[1].HasField("node")
    wildcard = {r.type_url for r in servicer.requests if not r.response_nonce and not r.resource_names}
    assert {CLUSTER, LISTENER} <= wildcard
    servicer.wait_request(lambda r: r.type_url == ROUTE and list(r.resource_names) == ["http.8080"])
    servicer.wait_request(lambda r: r.type_url == ENDPOINT and set(r.resource_names) ==
                          {cluster_name(c) for c in ("", "blue", "green")})
    for response in servicer.responses:
        ack = servicer.wait_request(lambda r: r.response_nonce == response.nonce)
        assert (ack.type_url, ack.version_info, ack.error_detail.message) == (response.type_url, "1", "")
    assert client.nacks == 0 and client.snapshot.versions == {t: "1" for t in (LISTENER, ROUTE, CLUSTER, ENDPOINT)}


@pytest.mark.parametrize("regex", [SEED_COOKIE, PROGRAM_COOKIE])
def test_the_test_cookie_reaches_the_test_color_and_every_other_request_the_active_one(regex):
    config = istiod_config(routes=blue_green_routes(regex=regex))
    snapshot = Snapshot(listeners=config[LISTENER], routes=config[ROUTE], clusters=config[CLUSTER],
                        endpoints=config[ENDPOINT])
    for cookie in ("test=true", "a=b; test=true", "test=true;a=b"):
        tested = ask(snapshot, cookie)
        assert (tested.status, tested.flag, tested.route, tested.cluster) == (200, "", "myapp-test",
                                                                             cluster_name("green"))
        assert [(e.address, e.port, e.workload, e.namespace) for e in tested.endpoints] == \
            [("10.244.0.6", 3000, "myapp-green", "default")]
    for cookie in ("", "test=true2", "xtest=true", "test=false"):
        assert ask(snapshot, cookie).route == "myapp-default"
    used = ask(snapshot, "a=b", host="myapp.example.com:8080")  # the port is ignored in host matching, as istiod sets
    assert (used.listener, used.route_config, used.virtual_host, used.cluster) == \
        ("0.0.0.0_8080", "http.8080", "*:80", cluster_name("blue"))
    assert apply_headers([("server", "app")], used.response_headers) == [("server", "app"), (COLOR_HEADER, "blue")]
    assert used.timeout is None  # istiod's 0s: no timeout unless the VirtualService sets one
    assert used.retry.num_retries == 2 and used.retry.retriable(failure="connect-failure")
    assert not used.retry.retriable(status=503)  # istiod's default lists retriable-status-codes, with no codes


def test_a_flip_pushed_by_istiod_moves_users_and_is_acked(istiod):
    servicer, client, _, _ = istiod
    servicer.push(ROUTE, {"http.8080": blue_green_routes(test="blue", active="green")}, "2")
    flipped = client.wait_for(lambda s: s.versions.get(ROUTE) == "2", 10)
    assert flipped is not None and ask(flipped).cluster == cluster_name("green")
    assert ask(flipped, "test=true").cluster == cluster_name("blue")
    servicer.wait_request(lambda r: r.type_url == ROUTE and r.version_info == "2" and r.response_nonce)


def test_a_route_configuration_envoy_refuses_is_nacked_and_the_last_one_kept(istiod):
    servicer, client, _, _ = istiod
    servicer.push(ROUTE, {"http.8080": blue_green_routes(regex="(unclosed")}, "2")
    nack = servicer.wait_request(lambda r: r.type_url == ROUTE and r.error_detail.message)
    assert nack.version_info == "1" and "not valid RE2" in nack.error_detail.message
    assert nack.error_detail.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert client.nacks == 1 and client.snapshot.versions[ROUTE] == "1"
    assert ask(client.snapshot, "test=true").cluster == cluster_name("green")


def test_no_route_is_404_nr_and_no_healthy_upstream_503_uh():
    config = istiod_config(routes=route_config([istio_route("myapp-test", "green", PROGRAM_COOKIE)]),
                           blue_health=health_check_pb2.UNHEALTHY)
    snapshot = Snapshot(listeners=config[LISTENER], routes=config[ROUTE], clusters=config[CLUSTER],
                        endpoints=config[ENDPOINT])
    missed = ask(snapshot)
    assert (missed.status, missed.flag, missed.route, missed.response_headers) == (404, "NR", "", ())
    other = route_config([istio_route("myapp-default", "blue")], domains=("myapp.example.com",))
    assert ask(snapshot.replace(routes={"http.8080": other}), host="other.example.com").flag == "NR"
    unhealthy = ask(snapshot.replace(routes={"http.8080": other}))
    assert (unhealthy.status, unhealthy.flag, unhealthy.body) == (503, "UH", "no healthy upstream")
    assert apply_headers([], unhealthy.response_headers) == [(COLOR_HEADER, "blue")]  # Envoy's local reply gets them
    unknown = route_config([istio_route("myapp-default", "purple")])
    assert (ask(snapshot.replace(routes={"http.8080": unknown})).status,
            ask(snapshot.replace(routes={"http.8080": unknown})).flag) == (503, "NC")
    assert ask(snapshot, port=80).status == 0  # no listener on the port: Envoy refuses the connection
    assert ask(snapshot.replace(routes={})).status == 0  # the listener still waits for its routes


def test_the_last_snapshot_serves_while_istiod_is_gone_and_a_restart_resumes(istiod):
    servicer, client, server, port = istiod
    server.stop(None).wait(5)
    assert client.wait_connected(False, 10)
    assert ask(client.snapshot, "test=true").cluster == cluster_name("green")
    assert ask(client.snapshot).endpoints[0].address == "10.244.0.5"
    again = FakeIstiod(istiod_config(routes=blue_green_routes(test="blue", active="green")), version="2")
    restarted, _ = serve(again, port)
    try:
        resumed = client.wait_for(lambda s: s.versions.get(ROUTE) == "2", 10)
        assert resumed is not None and ask(resumed).cluster == cluster_name("green")
        first = again.wait_request(lambda r: r.type_url == CLUSTER)
        assert first.version_info == "1" and first.node.id.startswith("router~")  # it resumes at what it held
        assert client.connects == 2
    finally:
        restarted.stop(None)


@pytest.mark.parametrize("domain, host, rank", [
    ("myapp.example.com", "myapp.example.com", (0, 0)), ("*.example.com", "myapp.example.com", (1, -13)),
    ("*.example.com", ".example.com", None), ("myapp.*", "myapp.example.com", (2, -7)), ("*", "anything", (3, 0)),
    ("MyApp.Example.com", "myapp.example.com", (0, 0)), ("example.com", "myapp.example.com", None)])
def test_virtual_host_domains_rank_as_envoy_ranks_them(domain, host, rank):
    assert domain_rank(domain, host) == rank


def test_header_and_path_matchers_follow_envoy():
    def header(**fields):
        return rc.HeaderMatcher(name="x-color", **fields)
    regex = string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex="gre+n"))
    assert header_matches(header(string_match=regex), {"x-color": "green"})
    assert not header_matches(header(string_match=regex), {"x-color": "greenish"})  # the whole value
    assert header_matches(header(present_match=True), {"x-color": ""})
    assert header_matches(header(present_match=True, invert_match=True), {})
    assert not header_matches(header(string_match=regex, invert_match=True), {})  # absent: no inverted match
    assert header_matches(header(string_match=regex, invert_match=True, treat_missing_header_as_empty=True), {})
    suffix = string_pb2.StringMatcher(suffix="EEN", ignore_case=True)
    assert header_matches(header(string_match=suffix), {"x-color": "green"})
    assert path_matches(rc.RouteMatch(prefix="/api"), "/api/v1?x=1")
    assert not path_matches(rc.RouteMatch(prefix="/API"), "/api")
    assert path_matches(rc.RouteMatch(prefix="/API", case_sensitive=wrappers_pb2.BoolValue(value=False)), "/api")
    assert path_matches(rc.RouteMatch(path="/ready"), "/ready?probe=1")
    assert path_matches(rc.RouteMatch(safe_regex=regex_pb2.RegexMatcher(regex="/v[0-9]+")), "/v2?q")
    assert not path_matches(rc.RouteMatch(safe_regex=regex_pb2.RegexMatcher(regex="/v[0-9]+")), "/v2/x")
    assert path_matches(rc.RouteMatch(path_separated_prefix="/api"), "/api/v1")
    assert not path_matches(rc.RouteMatch(path_separated_prefix="/api"), "/apiv1")


def test_header_operations_apply_in_envoys_order():
    def level(*adds, remove=()):
        return HeaderMutation(tuple(remove), tuple(adds))
    route = level(("x-a", "route", OVERWRITE), ("x-b", "one", base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD),
                  remove=("x-drop",))
    virtual_host = level(("x-a", "vhost", base_pb2.HeaderValueOption.ADD_IF_ABSENT))
    assert apply_headers([("X-Drop", "1"), ("x-b", "zero")], [route, virtual_host]) == \
        [("x-b", "zero"), ("x-a", "route"), ("x-b", "one")]


def test_weighted_clusters_timeout_and_weighted_headers():
    config = istiod_config()
    split = istio_route("myapp-default", "blue", timeout=2.5)
    split.route.ClearField("cluster")
    for color, weight in (("blue", 90), ("green", 10)):
        weighted = split.route.weighted_clusters.clusters.add(name=cluster_name(color),
                                                              weight=wrappers_pb2.UInt32Value(value=weight))
        weighted.request_headers_to_add.add(header=base_pb2.HeaderValue(key="x-weighted", value=color))
    snapshot = Snapshot(listeners=config[LISTENER], routes={"http.8080": route_config([split])},
                        clusters=config[CLUSTER], endpoints=config[ENDPOINT])
    blue, green = decide(snapshot, Request("h", 8080, "/"), pick=0.5), decide(snapshot, Request("h", 8080, "/"), 0.95)
    assert (blue.cluster, green.cluster, blue.timeout) == (cluster_name("blue"), cluster_name("green"), 2.5)
    assert apply_headers([], green.request_headers) == [("x-weighted", "green")]
