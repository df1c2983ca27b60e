"""The VirtualService: which color each request reaches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from .children import child_options
from .contract import ISTIO_NETWORKING, route_object_name
from .metadata import owned_metadata


@dataclass(frozen=True)
class BlueGreenRoutesArgs:
    app: str
    namespace: str
    hosts: Sequence[str]
    gateway: pulumi.Input[str]  # IngressGateway.gateway_name
    # From routes.http_routes, the one place routes are computed; a secret Output when it holds the test token.
    http: pulumi.Input[Sequence[dict[str, Any]]]
    host: pulumi.Input[str]  # ColorDestinations.host
    subsets: pulumi.Input[Sequence[str]]  # ColorDestinations.subsets


def bound_routes(http: Sequence[dict[str, Any]], host: str, subsets: Sequence[str]) -> Sequence[dict[str, Any]]:
    """The routes, each checked to send to the Service and a subset the DestinationRule declares."""
    for route in http:
        for destination in (entry["destination"] for entry in route.get("route", [])):
            if destination["host"] != host or destination["subset"] not in subsets:
                raise ValueError(f"route {route.get('name')!r} sends to {destination['host']}/{destination['subset']}, "
                                 f"not to a subset of {host} ({', '.join(subsets)})")
    return http


class BlueGreenRoutes(pulumi.ComponentResource):
    """VirtualService `<app>-blue-green`, bound to the gateway, with the routes in Istio's order.

    It takes the gateway's name and the subsets as Outputs, so it is declared after both: a route to a subset
    Istio does not know yet answers 503.
    """

    def __init__(self, name: str, args: BlueGreenRoutesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("bluegreen:virtualservice:BlueGreenRoutes", name, None, opts)
        k8s.apiextensions.CustomResource(
            name,
            api_version=ISTIO_NETWORKING,
            kind="VirtualService",
            metadata=owned_metadata(route_object_name(args.app), args.namespace, {"app": args.app}),
            spec={"hosts": list(args.hosts), "gateways": [args.gateway],
                  "http": pulumi.Output.all(args.http, args.host, args.subsets).apply(lambda a: bound_routes(*a))},
            opts=child_options(self),
        )
        self.register_outputs({})
