"""Strict validation of declared objects against the published Kubernetes and Istio schemas.

The cloudcoil models carry the schemas as pydantic models, but ignore unknown fields; so after
validating we compare what was sent with what the model kept, and report every field the schema
does not know, or any value it had to change.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

# (apiVersion, kind) -> the module and class of its model.
MODELS = {
    ("apps/v1", "Deployment"): ("cloudcoil.models.kubernetes.apps.v1", "Deployment"),
    ("v1", "Service"): ("cloudcoil.models.kubernetes.core.v1", "Service"),
    ("v1", "Secret"): ("cloudcoil.models.kubernetes.core.v1", "Secret"),
    ("v1", "ConfigMap"): ("cloudcoil.models.kubernetes.core.v1", "ConfigMap"),
    ("batch/v1", "Job"): ("cloudcoil.models.kubernetes.batch.v1", "Job"),
    ("policy/v1", "PodDisruptionBudget"): ("cloudcoil.models.kubernetes.policy.v1", "PodDisruptionBudget"),
    ("networking.istio.io/v1", "Gateway"): ("cloudcoil.models.istio.networking.v1", "Gateway"),
    ("networking.istio.io/v1", "DestinationRule"): ("cloudcoil.models.istio.networking.v1", "DestinationRule"),
    ("networking.istio.io/v1", "VirtualService"): ("cloudcoil.models.istio.networking.v1", "VirtualService"),
}


# Packages whose __init__ imports every API group or version it holds (3x the models used here, about 5 s of
# pydantic class building per process): registered without running it, so only the modules in MODELS load.
UNINITIALIZED_PACKAGES = ("cloudcoil.models.kubernetes", "cloudcoil.models.istio", "cloudcoil.models.istio.networking")


def _skip_package_inits() -> None:
    for package in UNINITIALIZED_PACKAGES:
        if package not in sys.modules:
            sys.modules[package] = importlib.util.module_from_spec(importlib.util.find_spec(package))


def model_for(api_version: str, kind: str):
    try:
        module, name = MODELS[(api_version, kind)]
    except KeyError:
        raise AssertionError(f"no published schema registered for {api_version} {kind}") from None
    _skip_package_inits()
    return getattr(importlib.import_module(module), name)


def _differences(sent: Any, kept: Any, path: str) -> list[str]:
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            return [f"{path}: the schema turned an object into {kept!r}"]
        problems = []
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key not in kept:
                problems.append(f"{where}: not a field of the schema")
            else:
                problems.extend(_differences(value, kept[key], where))
        return problems
    if isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            return [f"{path}: the schema changed the list to {kept!r}"]
        return [p for i, item in enumerate(sent) for p in _differences(item, kept[i], f"{path}[{i}]")]
    if sent != kept or type(sent) is bool and type(kept) is not bool:
        return [f"{path}: {sent!r} became {kept!r} (wrong type for the schema)"]
    return []


def schema_problems(obj: dict[str, Any]) -> list[str]:
    """Every way `obj` (a Kubernetes object as sent to the API server) departs from its schema."""
    model = model_for(obj.get("apiVersion", ""), obj.get("kind", ""))
    try:
        parsed = model.model_validate(obj)
    except Exception as error:  # pydantic's ValidationError lists every failing field
        return [str(error)]
    kept = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    return _differences(obj, kept, "")
