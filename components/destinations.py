"""Where a color can be reached: the app's Service and the DestinationRule's color subsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from .children import child_options
from .contract import ISTIO_NETWORKING, route_object_name, service_name
from .metadata import owned_metadata
from .domain import COLORS

SERVICE_PORT = 3000


@dataclass(frozen=True)
class ColorDestinationsArgs:
    app: str
    namespace: str


class ColorDestinations(pulumi.ComponentResource):
    """Service `<app>` over both colors' pods, and DestinationRule subsets `blue` and `green`.

    Both subsets always exist, so a flip or a rollback changes the VirtualService and nothing else.
    """

    host: pulumi.Output[str]  # the Service the routes send to
    subsets: pulumi.Output[list[str]]  # the DestinationRule's subsets, once it is declared

    def __init__(self, name: str, args: ColorDestinationsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("bluegreen:destinations:ColorDestinations", name, None, opts)
        labels = {"app": args.app}
        service = k8s.core.v1.Service(
            name,
            metadata=owned_metadata(service_name(args.app), args.namespace, labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=labels,  # app only: both colors are endpoints; the subsets tell them apart
                # targetPort by name, so each color may listen on its own container port.
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=SERVICE_PORT, target_port="http",
                                                   protocol="TCP")],
            ),
            opts=child_options(self),
        )
        self.host = service.metadata.name
        rule = k8s.apiextensions.CustomResource(
            f"{name}-blue-green",
            api_version=ISTIO_NETWORKING,
            kind="DestinationRule",
            metadata=owned_metadata(route_object_name(args.app), args.namespace, labels),
            spec={
                "host": self.host,  # from the Service: the rule is declared after it
                "subsets": [{"name": color, "labels": {"color": color}} for color in COLORS],
            },
            opts=child_options(self),
        )
        self.subsets = rule.metadata.apply(lambda _: list(COLORS))
        self.register_outputs({"host": self.host, "subsets": self.subsets})
