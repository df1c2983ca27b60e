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
    gateway: str
    # From routes.http_routes, the one place routes are computed; a secret Output when it holds the test token.
    http: pulumi.Input[Sequence[dict[str, Any]]]


class BlueGreenRoutes(pulumi.ComponentResource):
    """VirtualService `<app>-blue-green`, bound to the gateway, with the routes in Istio's order.

    Give it `depends_on` the gateway and the subsets: a route to a subset Istio does not know yet answers 503.
    """

    def __init__(self, name: str, args: BlueGreenRoutesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("bluegreen:virtualservice:BlueGreenRoutes", name, None, opts)
        k8s.apiextensions.CustomResource(
            name,
            api_version=ISTIO_NETWORKING,
            kind="VirtualService",
            metadata=owned_metadata(route_object_name(args.app), args.namespace, {"app": args.app}),
            spec={"hosts": list(args.hosts), "gateways": [args.gateway], "http": args.http},
            opts=child_options(self, opts),
        )
        self.register_outputs({})
