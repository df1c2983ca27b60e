"""The guardrails: plain functions over Kubernetes objects as dicts (their manifests: apiVersion, kind,
metadata, spec), each returning the violations it finds as messages, and the Pulumi policies that run them.

Plain functions so they can be tested on the objects the program declares, with no engine; the policies
only route each object (or the whole stack) to them. They read objects through Mapping/Sequence, so they
work on pulumi_policy's property proxies as on plain dicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

ISTIO_NETWORKING = "networking.istio.io/"

# A name says it holds a secret when one of its parts (split at '_', '-' or '.') is KEY or APIKEY, or
# ends with PASSWORD, PASSWD, TOKEN or SECRET: DB_PASSWORD, API_KEY, ACCESSTOKEN, CLIENT_SECRET, but not
# KEYCLOAK_URL or MONKEY_MODE.
_SECRET_PART = re.compile(r"^(KEY|APIKEY|.*(PASSWORD|PASSWD|TOKEN|SECRET))$")
# Match fields that narrow which requests a route takes; a match entry with none of them takes every request.
_MATCH_ALL_FIELDS = {"name", "ignoreUriCase", "statPrefix"}
_TEST_ROUTE_NAME = re.compile(r"(^|[-_.])test$")


def _name(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')}"


def _is(obj: Mapping[str, Any], kind: str, group: str = "") -> bool:
    return obj.get("kind") == kind and str(obj.get("apiVersion", "")).startswith(group)


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of a workload (Deployment, Job, StatefulSet, ...), a CronJob or a Pod; {} otherwise."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def _containers(obj: Mapping[str, Any], init: bool = True) -> Iterable[Mapping[str, Any]]:
    pod = _pod_spec(obj)
    yield from pod.get("containers") or []
    if init:
        yield from pod.get("initContainers") or []


def missing_readiness_probes(obj: Mapping[str, Any]) -> list[str]:
    """A Deployment's containers without a readiness probe: their pods take traffic before they can serve."""
    if not _is(obj, "Deployment"):
        return []
    return [f"{_name(obj)}: container {c.get('name')!r} has no readinessProbe, so its pods get requests before "
            f"they can answer, and a rollout cannot tell a broken release from a ready one. Fix: give it a "
            f"readinessProbe (the program sets one from bluegreen:readinessPath)"
            for c in _containers(obj, init=False) if not c.get("readinessProbe")]


def missing_resource_limits(obj: Mapping[str, Any]) -> list[str]:
    """A Deployment's containers without both a CPU and a memory limit."""
    if not _is(obj, "Deployment"):
        return []
    violations = []
    for container in _containers(obj):
        limits = (container.get("resources") or {}).get("limits") or {}
        missing = [resource for resource in ("cpu", "memory") if not limits.get(resource)]
        if missing:
            violations.append(
                f"{_name(obj)}: container {container.get('name')!r} has no {' or '.join(missing)} limit, so two "
                f"colors running side by side can starve each other and the node. Fix: set "
                f"resources.limits.cpu and resources.limits.memory")
    return violations


def plain_secret_env(obj: Mapping[str, Any]) -> list[str]:
    """Environment variables whose name says secret but whose value is written in the object in plain text."""
    violations = []
    for container in _containers(obj):
        for variable in container.get("env") or []:
            name = str(variable.get("name", ""))
            parts = re.split(r"[_.-]", name.upper())
            if "value" in variable and any(_SECRET_PART.match(part) for part in parts):
                violations.append(
                    f"{_name(obj)}: container {container.get('name')!r} sets {name} as a plain value, readable by "
                    f"anyone who can read the {obj.get('kind')}. Fix: move it to bluegreen:secretEnv "
                    f"(pulumi config set --secret --path 'secretEnv.{name}' <value>), which reads it from a Secret")
    return violations


def _takes_every_request(route: Mapping[str, Any]) -> bool:
    matches = route.get("match") or []
    return not matches or any(set(match) <= _MATCH_ALL_FIELDS for match in matches)


def catch_all_test_routes(obj: Mapping[str, Any]) -> list[str]:
    """A test route (named *-test, or any route before the last) that takes every request."""
    if not _is(obj, "VirtualService", ISTIO_NETWORKING):
        return []
    http = (obj.get("spec") or {}).get("http") or []
    violations = []
    for index, route in enumerate(http):
        is_test = bool(_TEST_ROUTE_NAME.search(str(route.get("name", "")))) or index < len(http) - 1
        if is_test and _takes_every_request(route):
            subsets = sorted({str((d.get("destination") or {}).get("subset")) for d in route.get("route") or []})
            violations.append(
                f"{_name(obj)}: route {route.get('name', index)!r} (to {', '.join(subsets)}) is a test route with "
                f"no condition, so it takes every request: users would reach the color under test, and the routes "
                f"after it none. Fix: match the test cookie (bluegreen:testCookie), or remove the test route "
                f"(pulumi config rm test -s <routing stack>)")
    return violations


def _fqdn(host: str, namespace: str) -> str:
    """A service host as Istio resolves a short name: relative to the object's namespace."""
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.svc.cluster.local"
    if len(parts) == 2:
        return f"{host}.svc.cluster.local"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def routes_to_unknown_subsets(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """VirtualService routes whose subset no DestinationRule of the stack defines for that host.

    Istio answers 503 to every request such a route takes; on the default route, that is every user.
    """
    subsets: dict[str, set[str]] = {}
    for obj in objects:
        if _is(obj, "DestinationRule", ISTIO_NETWORKING):
            namespace = (obj.get("metadata") or {}).get("namespace") or "default"
            spec = obj.get("spec") or {}
            known = subsets.setdefault(_fqdn(str(spec.get("host", "")), namespace), set())
            known.update(str(subset.get("name")) for subset in spec.get("subsets") or [])
    violations = []
    for obj in objects:
        if not _is(obj, "VirtualService", ISTIO_NETWORKING):
            continue
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        http = (obj.get("spec") or {}).get("http") or []
        for index, route in enumerate(http):
            which = "the default route" if index == len(http) - 1 and _takes_every_request(route) else "route"
            for destination in route.get("route") or []:
                target = destination.get("destination") or {}
                subset, host = target.get("subset"), str(target.get("host", ""))
                if subset and subset not in subsets.get(_fqdn(host, namespace), set()):
                    violations.append(
                        f"{_name(obj)}: {which} {route.get('name', index)!r} goes to subset {subset!r} of host "
                        f"{host!r}, which no DestinationRule in this stack defines, so Istio answers 503 to "
                        f"every request it takes. Fix: route to a defined subset, or add {subset!r} to the "
                        f"DestinationRule of {host!r}")
    return violations


def _resource_policy(name: str, description: str, check: Callable[[Mapping[str, Any]], list[str]]):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type.startswith("kubernetes:"):
            for message in check(args.props):
                report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def _validate_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    objects = [r.props for r in args.resources if r.resource_type.startswith("kubernetes:")]
    for message in routes_to_unknown_subsets(objects):
        report_violation(message, None)


POLICIES = [
    StackValidationPolicy(
        name="virtualservice-subsets-defined",
        description="Every VirtualService route, the default route first, goes to a subset a DestinationRule defines.",
        validate=_validate_stack),
    _resource_policy("test-route-not-catch-all",
                     "A test route matches the test cookie; it never takes every request.", catch_all_test_routes),
    _resource_policy("deployment-readiness-probe",
                     "Every container of a Deployment has a readiness probe.", missing_readiness_probes),
    _resource_policy("deployment-resource-limits",
                     "Every container of a Deployment has CPU and memory limits.", missing_resource_limits),
    _resource_policy("no-plain-secret-env",
                     "An environment variable named like a secret (PASSWORD, TOKEN, SECRET, KEY) comes from a Secret, "
                     "not a plain value.", plain_secret_env),
]
