"""The contract between the stacks, the scripts and CI: what each stack exports, and the names of the
objects the stacks own.

The program, the guards, scripts/release.py, scripts/plan.py and the tests (the stand-in `pulumi`
too) read these facts here, so each is spelled once. Standard library only: the stand-in runs it under
`python -IS`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, TypeVar

ISTIO_NETWORKING = "networking.istio.io/v1"  # the apiVersion of the Gateway, DestinationRule and VirtualService


def deployment_name(app: str, color: str) -> str:
    """The Deployment of one color of the app (the color stack's; the routing stack reads it)."""
    return f"{app}-{color}"


def service_name(app: str) -> str:
    """The Service over both colors' pods, and the host the routes send to."""
    return app


def gateway_name(app: str) -> str:
    return f"{app}-gateway"


def route_object_name(app: str) -> str:
    """The name the DestinationRule and the VirtualService share, as in the tutorial."""
    return f"{app}-blue-green"


def _output_name(field_name: str) -> str:
    """A field's output name: Pulumi outputs are camelCase (ready_replicas is readyReplicas)."""
    first, *rest = field_name.split("_")
    return first + "".join(word.capitalize() for word in rest)


Outputs = TypeVar("Outputs", bound="_Outputs")


class _Outputs:
    """A stack's outputs as a dataclass: one field per output, in the order the program exports them.

    Read from a stack, a field is None when the stack does not export that output: a stack never
    deployed exports none, and Pulumi leaves an output whose value is null out.
    """

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(_output_name(f.name) for f in fields(cls))

    @classmethod
    def output(cls, field_name: str) -> str:
        """The output a field is exported as; a KeyError for a field the contract does not have."""
        if field_name not in {f.name for f in fields(cls)}:
            raise KeyError(f"{cls.__name__} has no field {field_name!r}")
        return _output_name(field_name)

    @classmethod
    def read(cls: type[Outputs], outputs: Mapping[str, Any]) -> Outputs:
        """The outputs as given (not checked): see scripts/release.py for a reader that must not trust them."""
        return cls(**{f.name: outputs.get(_output_name(f.name)) for f in fields(cls)})

    def exported(self) -> dict[str, Any]:
        """The outputs, by output name: what the program returns for the stack to export."""
        return {_output_name(f.name): getattr(self, f.name) for f in fields(self)}  # not asdict: it copies Outputs


@dataclass(frozen=True)
class ColorOutputs(_Outputs):
    """A color stack's outputs: what it deploys; the program exports every one (a value may be a pulumi Output)."""

    color: Optional[str] = None
    release: Optional[str] = None
    image: Optional[str] = None
    deployment: Optional[str] = None  # the Deployment's name: deployment_name(app, color)
    replicas: Optional[int] = None  # desired pods
    ready_replicas: Optional[int] = None  # pods ready when the awaited rollout finished
    # The namespace its pods run in; None from a stack last updated before this output existed.
    namespace: Optional[str] = None


@dataclass(frozen=True)
class RoutingOutputs(_Outputs):
    """The routing stack's outputs: which color users reach and which testers reach, with their releases."""

    active: Optional[str] = None
    test: Optional[str] = None  # None: no test route
    active_release: Optional[str] = None
    test_release: Optional[str] = None
