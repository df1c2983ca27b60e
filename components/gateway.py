"""The Istio Gateway: where requests enter the mesh for this app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

ISTIO_NETWORKING = "networking.istio.io/v1"


@dataclass(frozen=True)
class IngressGatewayArgs:
    app: str
    namespace: str
    hosts: Sequence[str]


def gateway_name(app: str) -> str:
    return f"{app}-gateway"


class IngressGateway(pulumi.ComponentResource):
    """Gateway `<app>-gateway` on Istio's default ingress gateway: HTTP on port 80 for the hosts."""

    def __init__(self, name: str, args: IngressGatewayArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("bluegreen:gateway:IngressGateway", name, None, opts)
        gateway = k8s.apiextensions.CustomResource(
            gateway_name(args.app),
            api_version=ISTIO_NETWORKING,
            kind="Gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=gateway_name(args.app), namespace=args.namespace, labels={"app": args.app}),
            spec={
                "selector": {"istio": "ingressgateway"},
                "servers": [{
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": list(args.hosts),
                }],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.resource = gateway
        self.register_outputs({})
