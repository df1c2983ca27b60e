"""The program behind __main__.py: read settings, run the guards, declare the stack of its role.

Everything that can refuse an update runs before the first object is declared, so a refusal
asks the engine to change nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Optional, TypeVar

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import config as runtime_config

from .contract import ColorOutputs, RoutingOutputs, deployment_name, gateway_name, route_object_name
from .destinations import ColorDestinations, ColorDestinationsArgs
from .gateway import IngressGateway, IngressGatewayArgs
from .guards import (GuardError, LiveDeployment, check_live_targets, check_live_update, check_routing_targets,
                     namespace_notices)
from .routes import http_routes
from .config_keys import TEST_TOKEN_FIX
from .domain import PROJECT, ColorSettings, RoutingSettings, SettingsError
from .settings import declared_defaults, parse_settings
from .virtualservice import BlueGreenRoutes, BlueGreenRoutesArgs
from .workload import ColorWorkload, ColorWorkloadArgs

StackOutputs = TypeVar("StackOutputs", ColorOutputs, RoutingOutputs)
OWN_PROJECT_FILE = Path(__file__).resolve().parents[1] / "Pulumi.yaml"  # the project this program belongs to


# SDK internals, here only: the public pulumi.Config can neither list the keys set nor tell a value stored as secret.
def read_config() -> tuple[dict[str, str], frozenset[str]]:
    """This stack's `bluegreen:` config, as the engine passes it, and which keys are secret."""
    prefix = PROJECT + ":"
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    raw = {key[len(prefix):]: runtime_config.get_config(key) for key in keys if key.startswith(prefix)}
    secret_env = set(runtime_config.get_config_secret_keys_env())
    secret = frozenset(key for key in raw
                       if runtime_config.is_config_secret(prefix + key) or prefix + key in secret_env)
    return raw, secret


async def read_outputs(stack: str, contract: type[StackOutputs]) -> StackOutputs:
    """Another stack's outputs, awaited now, so guards can run before anything is declared."""
    reference = pulumi.StackReference(stack)
    outputs = {}
    for name in contract.names():
        details = await reference.get_output_details(name)
        value = details.value if details.value is not None else details.secret_value
        # The wire carries every number as a double; the guards count pods in whole numbers.
        outputs[name] = int(value) if isinstance(value, float) and value.is_integer() else value
    return contract.read(outputs)


async def read_live_deployment(settings: RoutingSettings, color: str) -> LiveDeployment:
    """A color's Deployment as the cluster has it now: read (never managed) by the routing stack."""
    name = deployment_name(settings.app, color)
    deployment = k8s.apps.v1.Deployment.get(f"{name}-live", f"{settings.namespace}/{name}")
    spec, status = await pulumi.Output.all(deployment.spec, deployment.status).future()
    labels = _field(spec, "template", "metadata", "labels") or {}
    return LiveDeployment(name, labels.get("release"), int(_field(status, "readyReplicas") or 0))


def _field(value: Any, *path: str) -> Any:
    """A nested field of a read object, typed (snake_case attributes) or plain (camelCase keys)."""
    for key in path:
        if value is None:
            return None
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        if type(value) is dict:
            value = value.get(key, value.get(snake))
        else:
            value = getattr(value, snake, None)
    return value


async def main(defaults: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The stack's outputs, after declaring the objects of its role.

    `defaults`: Pulumi.yaml's declared defaults, read from the program's own project file unless given (the
    offline plan of a git ref gives that ref's)."""
    raw, secret_keys = read_config()
    try:
        if defaults is None:
            defaults = declared_defaults(OWN_PROJECT_FILE)
        settings = parse_settings(raw, pulumi.get_stack(), secret_keys, defaults=defaults)
        if isinstance(settings, ColorSettings):
            return await color_stack(settings)
        return await routing_stack(settings)
    except (SettingsError, GuardError) as error:
        raise pulumi.RunError(str(error)) from None  # a message for a person, not a traceback


async def color_stack(settings: ColorSettings) -> dict[str, Any]:
    if settings.routing_stack:
        routing = await read_outputs(settings.routing_stack, RoutingOutputs)
        check_live_update(settings, routing)
    secret_env = pulumi.Config(PROJECT).get_secret_object("secretEnv") if settings.secret_env_names else None
    workload = ColorWorkload(settings.deployment_name, ColorWorkloadArgs(settings, secret_env))
    return ColorOutputs(color=settings.color, release=settings.release, image=settings.image,
                        deployment=workload.deployment_name, replicas=settings.replicas,
                        ready_replicas=workload.ready_replicas, namespace=settings.namespace).exported()


async def routing_stack(settings: RoutingSettings) -> dict[str, Any]:
    targets = {color: await read_outputs(settings.color_stacks[color], ColorOutputs)
               for color in settings.routed_colors}
    check_routing_targets(settings, targets)
    for notice in namespace_notices(settings, targets):
        pulumi.log.info(notice)  # the read below fails, with the provider's not-found error, if it runs elsewhere
    live = {color: await read_live_deployment(settings, color) for color in settings.routed_colors}
    check_live_targets(settings, targets, live)

    if settings.test and settings.test_token_set:
        # The routes hold the token: computed inside the secret, so state and the plan show the spec as [secret].
        http = pulumi.Config(PROJECT).require_secret("testToken").apply(lambda token: http_routes(settings, token))
    else:
        http = http_routes(settings)
        if settings.test:
            pulumi.log.warn(
                f"{PROJECT}:testToken is not set, so the test route is open: anyone who sends the cookie "
                f"{settings.test_cookie} reaches {settings.test}, the release under test. Fix: "
                + TEST_TOKEN_FIX.format(stack=settings.stack))
    gateway = IngressGateway(gateway_name(settings.app),
                             IngressGatewayArgs(settings.app, settings.namespace, settings.hosts, settings.tls))
    destinations = ColorDestinations(settings.app, ColorDestinationsArgs(settings.app, settings.namespace))
    BlueGreenRoutes(route_object_name(settings.app),
                    BlueGreenRoutesArgs(app=settings.app, namespace=settings.namespace, hosts=settings.hosts,
                                        gateway=gateway.gateway_name, http=http, host=destinations.host,
                                        subsets=destinations.subsets))
    return RoutingOutputs(active=settings.active, test=settings.test, active_release=targets[settings.active].release,
                          test_release=targets[settings.test].release if settings.test else None).exported()
