"""The domain's types: the two colors, a stack's settings and the error that refuses a config value.

Pure data, standard library only: settings.py builds these from config, routes.py and the components read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from . import contract

PROJECT = "bluegreen"
COLORS = ("blue", "green")


def other_color(color: str) -> str:
    """The other of blue and green."""
    return COLORS[1 - COLORS.index(color)]


class SettingsError(ValueError):
    """A config value the program refuses; the message names the key, the value and the fix."""


def show(value: Any, limit: int = 60) -> str:
    """A config value as it may appear in a message: quoted, escaped, and cut if long."""
    try:
        text = value if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError, RecursionError):  # nested too deep, or not data
        return f"(a {type(value).__name__} too deeply nested to show)"
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def env_value_text(item: Any) -> Any:
    """A variable's value as the container gets it: YAML numbers and booleans become text."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return str(item)
    return item


@dataclass(frozen=True)
class Cookie:
    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


@dataclass(frozen=True)
class Tls:
    """HTTPS on the gateway: the Kubernetes TLS Secret (in the ingress gateway's namespace) and its hosts."""

    credential_name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ColorSettings:
    """A color stack: the Deployment of one color and what it needs."""

    stack: str
    app: str
    namespace: str
    color: str
    image: str
    release: str
    replicas: int
    port: int
    readiness_path: str
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env_names: tuple[str, ...] = ()
    migrate_command: tuple[str, ...] = ()
    routing_stack: Optional[str] = None
    allow_live_update: bool = False
    requests: Mapping[str, str] = field(default_factory=dict)  # resource -> quantity, e.g. {"cpu": "100m"}
    limits: Mapping[str, str] = field(default_factory=dict)
    read_only_root_filesystem: bool = False

    @property
    def deployment_name(self) -> str:
        return contract.deployment_name(self.app, self.color)


@dataclass(frozen=True)
class RoutingSettings:
    """The routing stack: the gateway, the subsets and which color each route sends to."""

    stack: str
    app: str
    namespace: str
    active: str
    test: Optional[str]
    test_cookie: Cookie
    hosts: tuple[str, ...]
    color_stacks: Mapping[str, str]
    # Whether testToken is set; its value stays a Pulumi secret, read by the program, never kept here.
    test_token_set: bool = False
    tls: Optional[Tls] = None
    timeout: Optional[str] = None  # both routes' timeout, an Istio duration
    retries: Optional[Mapping[str, Any]] = None  # both routes' HTTPRetry
    # bluegreen:analysis (an analysis.AnalysisSettings), None when not set: the release tools read it, no
    # object the program declares depends on it.
    analysis: Optional[Any] = None

    @property
    def routed_colors(self) -> tuple[str, ...]:
        """The colors someone reaches: the active one, then the one under test."""
        return (self.active,) + ((self.test,) if self.test else ())


Settings = Union[ColorSettings, RoutingSettings]
