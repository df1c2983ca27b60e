"""Diff against the base: one stack's report, with who reaches which color and, against the plan at the base ref,
whose color or release changes and which objects' fields change."""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, Mapping, Optional

from components.routes import color_for, describe_match, request_for, route_color
from components.settings import RoutingSettings

from ..secret_values import SECRET_PLACEHOLDER, mask
from .gate import analysis_entry, analysis_settings
from .simulate import StackPlan, http_routes_of, manifests, object_key


def gate_of(plan: Optional[StackPlan]) -> Optional[dict[str, Any]]:
    """The analysis that gates the routing stack's next flip, as the report holds it."""
    if plan is None or plan.problem:
        return None
    return analysis_entry(analysis_settings(plan.settings, plan.config.raw, plan.config.stack))

def match_words(route: Mapping[str, Any], plan: StackPlan) -> Optional[str]:
    """describe_match's words; a secret cookie (the test token) is named, its value is not."""
    for match in route.get("match") or []:
        if (match.get("headers") or {}).get("cookie", {}).get("regex") == SECRET_PLACEHOLDER:
            name = plan.settings.test_cookie.name if isinstance(plan.settings, RoutingSettings) else "?"
            return f"requests with cookie {name}={SECRET_PLACEHOLDER} (the secret test token)"
    return describe_match(route)


def route_table(plan: StackPlan) -> list[dict[str, Any]]:
    rows = []
    for route in http_routes_of(plan):
        color = route_color(route)
        rows.append({"match": match_words(route, plan), "color": color, "release": plan.releases.get(color)})
    return rows


def request_changes(before: Optional[StackPlan], after: Optional[StackPlan]) -> list[dict[str, Any]]:
    """Each kind of request (a route's match, and everyone else) whose color or release changes."""
    old, new = http_routes_of(before), http_routes_of(after)
    kinds: dict[Optional[str], tuple[dict[str, str], str]] = {}
    for route in old + new:
        for match in route.get("match") or []:
            sample = request_for(match)
            if sample is not None:
                kinds.setdefault(describe_match({"match": [match]}), sample)
    kinds[None] = ({}, "/")  # everyone else: no cookie, no header

    def reach(plan, http, headers, path):
        color = color_for(http, headers, path)
        return {"color": color, "release": plan.releases.get(color) if plan and color else None}

    changes = []
    for description, (headers, path) in kinds.items():
        was, will = reach(before, old, headers, path), reach(after, new, headers, path)
        if was != will:
            changes.append({"match": description, "before": was, "after": will})
    return changes


def _path(parent: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key)}]"


def _named(items: list) -> Optional[dict[str, Any]]:
    """A list of objects with distinct names, by name; None for any other list."""
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if not items or None in names or len(set(names)) != len(names):
        return None
    return dict(zip(names, items))


def field_changes(before: Any, after: Any, path: str = "") -> Iterator[dict[str, Any]]:
    """Every leaf that differs, as path, before, after (None where the field is absent)."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            yield from field_changes(before.get(key), after.get(key), _path(path, key))
    elif isinstance(before, list) and isinstance(after, list):
        by_name = _named(before), _named(after)
        if by_name[0] is not None and by_name[1] is not None:
            # Routes, containers, env vars, subsets: matched by name, as Kubernetes merges them, so a
            # route added in front of the others reads as one added route, not every route changed.
            old, new = by_name
            for name in [*old, *(n for n in new if n not in old)]:
                yield from field_changes(old.get(name), new.get(name), f"{path}[{name}]")
            return
        for index in range(max(len(before), len(after))):
            yield from field_changes(before[index] if index < len(before) else None,
                                     after[index] if index < len(after) else None, f"{path}[{index}]")
    elif before != after:
        yield {"path": path, "before": before, "after": after}


def object_changes(before: Optional[StackPlan], after: Optional[StackPlan]) -> list[dict[str, Any]]:
    old = {object_key(m): m for m in manifests(before)}
    new = {object_key(m): m for m in manifests(after)}
    changes = []
    for key in sorted(set(old) | set(new)):
        kind, namespace, name = key
        entry = {"kind": kind, "name": name, "namespace": namespace}
        if key not in old:
            changes.append({"change": "added", **entry})
        elif key not in new:
            changes.append({"change": "removed", **entry})
        else:
            fields = list(field_changes(old[key], new[key]))
            if fields:
                changes.append({"change": "changed", **entry, "fields": fields})
    return changes


def stack_report(plan: StackPlan, before: Optional[StackPlan], base: Optional[str]) -> dict[str, Any]:
    report = {
        "file": plan.config.file,
        "valid": plan.problem is None,
        "error": plan.problem,
        "routes": route_table(plan),
        "objects": manifests(plan),
        "outputs": mask(plan.outputs),
        "notes": plan.notes,
    }
    routing = isinstance(plan.settings, RoutingSettings) and plan.problem is None
    if routing:
        report["analysis"] = gate_of(plan)  # None: the smoke tests alone gate the flip
    if base is not None:
        notes = []
        if before is None:
            notes.append(f"The stack has no file at {base}: everything it declares is new.")
        elif before.problem:
            notes.append(f"At {base} the program refused this stack ({before.problem}): compared with nothing.")
        if plan.problem:
            notes.append("A refused update changes nothing: no changes are listed.")
        after = before if plan.problem else plan
        report["changes"] = {"requests": request_changes(before, after), "objects": object_changes(before, after),
                             "notes": notes}
        if routing or (before is not None and isinstance(before.settings, RoutingSettings)):
            report["changes"]["analysis"] = list(field_changes(gate_of(before) or {}, gate_of(after) or {},
                                                                  "analysis"))
    return report
