"""The Istio Gateway: where requests enter the mesh for this app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from .children import child_options
from .contract import ISTIO_NETWORKING, gateway_name
from .metadata import owned_metadata
from .domain import Tls


@dataclass(frozen=True)
class IngressGatewayArgs:
    app: str
    namespace: str
    hosts: Sequence[str]
    tls: Optional[Tls] = None  # HTTPS on 443, and HTTP redirected to it


def gateway_servers(hosts: Sequence[str], tls: Optional[Tls]) -> list[dict]:
    """The Gateway's servers: HTTP on 80; with TLS, HTTPS on 443 and HTTP answering with a redirect to it."""
    http: dict = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": list(hosts)}
    if tls is None:
        return [http]
    http["tls"] = {"httpsRedirect": True}
    https = {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": list(tls.hosts),
             "tls": {"mode": "SIMPLE", "credentialName": tls.credential_name}}
    return [http, https]


class IngressGateway(pulumi.ComponentResource):
    """Gateway `<app>-gateway` on Istio's default ingress gateway: HTTP on port 80, HTTPS on 443 with TLS."""

    gateway_name: pulumi.Output[str]  # what a VirtualService binds to; known once the Gateway is declared

    def __init__(self, name: str, args: IngressGatewayArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("bluegreen:gateway:IngressGateway", name, None, opts)
        gateway = k8s.apiextensions.CustomResource(
            name,
            api_version=ISTIO_NETWORKING,
            kind="Gateway",
            metadata=owned_metadata(gateway_name(args.app), args.namespace, {"app": args.app}),
            spec={"selector": {"istio": "ingressgateway"}, "servers": gateway_servers(args.hosts, args.tls)},
            opts=child_options(self),
        )
        self.gateway_name = gateway.metadata["name"]  # a custom resource's outputs are plain data
        self.register_outputs({"gateway_name": self.gateway_name})
