"""The VirtualService: which color each request reaches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from .contract import ISTIO_NETWORKING
from .metadata import owned_metadata


@dataclass(frozen=True)
class BlueGreenRoutesArgs:
    name: str
    app: str
    namespace: str
    hosts: Sequence[str]
    gateway: str
    # From routes.http_routes, the one place routes are computed; a secret Output when it holds the test token.
    http: pulumi.Input[Sequence[dict[str, Any]]]
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class BlueGreenRoutes(pulumi.ComponentResource):
    """VirtualService `<app>-blue-green`, bound to the gateway, with the routes in Istio's order."""

    def __init__(self, name: str, args: BlueGreenRoutesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("bluegreen:virtualservice:BlueGreenRoutes", name, None, opts)
        virtual_service = k8s.apiextensions.CustomResource(
            args.name,
            api_version=ISTIO_NETWORKING,
            kind="VirtualService",
            metadata=owned_metadata(args.name, args.namespace, {"app": args.app}),
            spec={"hosts": list(args.hosts), "gateways": [args.gateway], "http": args.http},
            # Subsets first: a route to a subset Istio does not know yet answers 503.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.resource = virtual_service
        self.register_outputs({})
