"""Simulate the stacks: each stack's config as the engine would pass it (from the stack files, overrides, or a git
ref), then the real program run for every stack under the mock engine, each reading the others' outputs."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Optional

from pulumi import RunError

from components.contract import ColorOutputs, RoutingOutputs
from components.settings import (COLORS, PROJECT, ColorSettings, RoutingSettings, SettingsError, declared_defaults,
                                 parse_settings)
from components.stackfile import StackFileError

from ..offline import ProgramRun, generated_name, run_program
from ..secret_values import SecretValue, mask, reveal
from ..stack_config import stack_file_config
from .config_path import PathError, is_path, parse_path, set_at_path
from .errors import InternalError, UsageError, one_line

STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # what Pulumi accepts as a stack name


def stack_name_problem(name: str) -> Optional[str]:
    if STACK_NAME.fullmatch(name) and name not in (".", ".."):
        return None
    return "a stack name is 1 to 100 letters, digits, '-', '_' and '.'"


@dataclass(frozen=True)
class StackConfig:
    """One stack's config as the engine would pass it, or why its file cannot be read."""

    stack: str
    file: str  # where it came from, for a person
    raw: Mapping[str, str] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()
    problem: Optional[str] = None


@dataclass
class StackPlan:
    config: StackConfig
    settings: Any = None  # parse_settings' result; None when the config is refused
    run: Optional[ProgramRun] = None
    releases: dict[str, Optional[str]] = field(default_factory=dict)  # color -> release it runs
    notes: list[str] = field(default_factory=list)

    @property
    def problem(self) -> Optional[str]:
        if self.config.problem:
            return self.config.problem
        error = self.run.error if self.run else None
        if error is None:
            return None
        if isinstance(error, RunError):  # the program's own refusal: a message for a person
            return one_line(str(error))
        raise InternalError(f"the program failed on stack {self.config.stack} ({type(error).__name__}: {error}): a bug "
                            f"in the program, not in the config")

    @property
    def color(self) -> Optional[str]:
        """The color a color stack deploys; for a refused config, the color it claims."""
        if isinstance(self.settings, ColorSettings):
            return self.settings.color
        return self.config.raw.get("color") if self.settings is None else None

    @property
    def outputs(self) -> dict[str, Any]:
        return self.run.outputs if self.run and not self.problem else {}

    @cached_property
    def manifests(self) -> list[dict[str, Any]]:
        """The Kubernetes objects the stack declares, as manifests: apiVersion, kind, metadata first."""
        if self.run is None or self.problem:
            return []
        result = []
        for declared in self.run.kubernetes_objects:
            body = mask(secret_only_where_needed(declared.inputs))
            metadata = body.pop("metadata", {})
            if not metadata.get("name"):
                # Pulumi names it `<logical name>-<random>` at deploy time; the mock provider's name
                # (scripts/bluegreen_tools/offline.py), which the objects that refer to it use.
                metadata["name"] = generated_name(declared.name)
            result.append({"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind"), "metadata": metadata,
                           **body})
        return sorted(result, key=object_key)  # the engine registers them concurrently: a stable order


# ---------------------------------------------------------------- reading config


def read_stack_file(stack: str, path: Path, label: str) -> StackConfig:
    problem = stack_name_problem(stack)
    if problem:
        return StackConfig(stack, label, problem=f"{label} names the stack {stack!r}, which Pulumi refuses: {problem}")
    try:
        raw, secret = stack_file_config(path)
    except StackFileError as error:
        return StackConfig(stack, label, problem=f"{label} is not a Pulumi stack file the CLI can read: {error}. Fix: "
                                                 f"correct the file (pulumi config set KEY VALUE -s {stack} writes one)")
    return StackConfig(stack, label, raw, secret)


def stack_names(names: list[str]) -> dict[str, str]:
    """Stack name -> file name, for every Pulumi.<stack>.yaml among `names`."""
    found = (re.fullmatch(r"Pulumi\.(.+)\.yaml", name) for name in names)
    return {match[1]: match[0] for match in found if match}


def working_tree_configs(root: Path) -> dict[str, StackConfig]:
    files = stack_names([p.name for p in root.iterdir()])
    return {stack: read_stack_file(stack, root / name, name) for stack, name in sorted(files.items())}


def with_overrides(config: StackConfig, config_file: Optional[Path], assignments: list[str]) -> StackConfig:
    """--config-file replaces the stack file, then each --set KEY=VALUE replaces one key, or, with a path for KEY
    (tls.credentialName, hosts[0]), one value inside it, as pulumi config set --path would (config_path.py)."""
    if config_file is not None:
        config = read_stack_file(config.stack, config_file, str(config_file))
    raw = dict(config.raw)
    for number, assignment in enumerate(assignments, 1):
        # The value may be a secret: no message shows it, nor an argument without '=' (it may be a value).
        key, sep, value = assignment.partition("=")
        # The namespace ends at the first ':' before any path ('env["A:B"]' has none).
        namespace, colon, _ = re.split(r"[.\[]", key, maxsplit=1)[0].partition(":")
        name = key[len(namespace) + 1:] if colon else key
        if not sep:
            raise UsageError(f"--set: argument {number} has no '=' (it is not shown, in case it is a value); "
                             f"expected KEY=VALUE or {PROJECT}:KEY=VALUE")
        shown = key if len(key) <= 60 and key.isprintable() else repr(key[:40]) + "..."
        if not name or (colon and namespace != PROJECT):
            raise UsageError(f"--set {shown}=...: expected KEY=VALUE, a path like KEY.FIELD=VALUE, or "
                             f"{PROJECT}:KEY=VALUE (only {PROJECT}: keys reach the program)")
        if not is_path(name):
            raw[name] = value  # as the engine passes it: text, with JSON for objects and lists
            continue
        try:  # the path form, as `pulumi config set --path` reads it
            segments = parse_path(name)
            raw[str(segments[0])] = value if len(segments) == 1 else set_at_path(raw.get(segments[0]), segments, value)
        except PathError as error:
            raise UsageError(f"--set {shown}=...: {error} (the path form of pulumi config set --path; or give the "
                             f"whole object as JSON, e.g. --set 'tls={{\"credentialName\": \"NAME\"}}')") from None
    return StackConfig(config.stack, config.file + (" with --set" if assignments else ""), raw,
                       config.secret_keys, config.problem)


class GitRef:
    """The stack files and Pulumi.yaml at a git ref, read with `git show`."""

    def __init__(self, ref: str, workdir: Path, root: Path):
        if not ref or ref.startswith("-") or not ref.isprintable() or len(ref) > 256:
            raise UsageError(f"--base {ref[:60]!r}: not a git ref (a branch, a tag or a commit, not starting with '-')")
        self.ref = ref
        self.workdir = workdir
        self.root = root
        if self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False) is None:
            raise UsageError(f"--base {ref}: no such commit in this repository (fetch it first, e.g. "
                             f"git fetch origin {ref.split('/', 1)[-1]})")
        self.prefix = self._git("rev-parse", "--show-prefix").strip()  # the project's folder in the repo

    def _run(self, *args: str, check: bool = True) -> Optional[bytes]:
        """git's output as bytes (a file at the ref may be anything); on failure, a usage error, or None."""
        try:
            done = subprocess.run(["git", *args], cwd=self.root, capture_output=True, stdin=subprocess.DEVNULL)
        except OSError as error:
            raise UsageError(f"--base needs git: {error.strerror}") from None
        if done.returncode and check:
            detail = one_line(done.stderr.decode("utf-8", "replace").strip())[:300]
            raise UsageError(f"git {' '.join(args)[:100]}: {detail}")
        return None if done.returncode else done.stdout

    def _git(self, *args: str, check: bool = True) -> Optional[str]:
        output = self._run(*args, check=check)
        return None if output is None else output.decode("utf-8", "surrogateescape")

    def file(self, name: str) -> Optional[Path]:
        """The file as it is at the ref, copied out byte for byte, or None when it does not exist there."""
        data = self._run("show", f"{self.ref}:{self.prefix}{name}", check=False)
        if data is None:
            return None
        path = self.workdir / name
        path.write_bytes(data)
        return path

    def differs(self, *paths: str) -> bool:
        """Whether these paths (relative to the project) differ between the ref and the working tree."""
        return self._git("diff", "--quiet", self.ref, "--", *paths, check=False) is None

    def configs(self) -> dict[str, StackConfig]:
        names = self._git("ls-tree", "-z", "--name-only", f"{self.ref}:{self.prefix}").split("\0")
        return {stack: read_stack_file(stack, self.file(name), f"{name} at {self.ref}")
                for stack, name in sorted(stack_names(names).items())}


def refused_for(configs: Mapping[str, StackConfig], unreadable: Optional[str]) -> dict[str, StackConfig]:
    """The stacks as they are or, when Pulumi.yaml cannot be read (`unreadable` says why), each refused with why:
    the CLI runs no stack of such a project."""
    if unreadable is None:
        return dict(configs)
    return {name: replace(config, problem=config.problem or one_line(unreadable)) for name, config in configs.items()}


def defaults_at(project_file: Optional[Path], current: Mapping[str, Any], notes: list[str], ref: str) -> dict[str, Any]:
    """Pulumi.yaml's defaults as they are at `ref` (`project_file`, copied out of it), to plan the ref with.

    Keys only the working tree declares keep today's defaults (`current`), and so does every key when the
    ref's Pulumi.yaml is missing or unreadable."""
    at_ref = None
    if project_file is not None:
        try:
            at_ref = declared_defaults(project_file)
        except SettingsError:
            pass
    if at_ref is None:
        notes.append(f"Pulumi.yaml at {ref} is missing or unreadable: the plan at {ref} uses today's defaults.")
    merged = {**current, **(at_ref or {})}
    if merged != current:
        notes.append(f"Pulumi.yaml's defaults changed since {ref}: the plan at {ref} uses the defaults it had then.")
    return merged


# ---------------------------------------------------------------- planning


def _settings(config: StackConfig, defaults: Mapping[str, Any]):
    if config.problem:
        return None
    try:
        return parse_settings(config.raw, config.stack, config.secret_keys, defaults=defaults)
    except SettingsError:
        return None  # the program's run reports it, with the same message


def _local_stack(reference: str, candidates: list[str]) -> Optional[str]:
    """The local stack a StackReference name stands for: same last segment, else the only candidate."""
    short = reference.rsplit("/", 1)[-1]
    if short in candidates:
        return short
    return candidates[0] if len(candidates) == 1 else None


def plan_stacks(configs: Mapping[str, StackConfig], defaults: Mapping[str, Any],
                live: Optional[Mapping[str, StackPlan]] = None, live_label: str = "") -> dict[str, StackPlan]:
    """Plan every stack: color stacks first, as the release cycle deploys them, then the routing stack.

    `defaults`: Pulumi.yaml's, as the CLI would inject them (components/settings.declared_defaults).
    `live`: the plan at the base ref, standing for what is deployed before the change. A color stack
    reads the routing stack from it (the live color); without it, from the routing stack's file. The
    routing stack reads each color stack as planned here, or, when that color's proposed config is
    refused, as it is in `live` (a refused update changes nothing).
    """
    plans = {name: StackPlan(config, _settings(config, defaults)) for name, config in configs.items()}
    color_stacks: dict[str, str] = {}  # color -> the local stack of that color (the one named after it first)
    for name, plan in sorted(plans.items(), key=lambda item: item[0] != item[1].color):
        if plan.color in COLORS:
            color_stacks.setdefault(plan.color, name)

    def release_of(color: Optional[str]) -> Optional[str]:
        settings = plans[color_stacks[color]].settings if color in color_stacks else None
        return settings.release if settings else None

    def routing_outputs(reference: str, notes: list[str]) -> dict[str, Any]:
        source = plans if live is None else live
        local = _local_stack(reference, [n for n, p in source.items() if isinstance(p.settings, RoutingSettings)])
        if local is None:
            where = f"at {live_label}" if live is not None else "file here"
            notes.append(f"{reference} has no stack {where}: read as a stack with no outputs (no live color).")
            return {}
        if live is not None:
            outputs = live[local].outputs
            notes.append(f"{reference} is read offline from stack {local} as it is at {live_label} (what is "
                         f"live before this change): "
                         + (f"active {RoutingOutputs.read(outputs).active}." if outputs else "no outputs."))
            return outputs
        routing = plans[local].settings
        notes.append(f"{reference} is read offline from {plans[local].config.file}: active {routing.active}"
                     + (f", test {routing.test}." if routing.test else "."))
        return RoutingOutputs(active=routing.active, test=routing.test, active_release=release_of(routing.active),
                              test_release=release_of(routing.test)).exported()

    def color_outputs(reference: str, color: str, notes: list[str]) -> dict[str, Any]:
        local = color_stacks.get(color)
        if local is not None and plans[local].outputs:
            outputs, where = plans[local].outputs, f"as planned here from {plans[local].config.file}"
        elif live is not None and local in live and live[local].outputs:
            outputs, where = live[local].outputs, f"as it is at {live_label}, since its proposed config is refused"
        else:
            why = f"no local stack file is the {color} stack" if local is None else f"stack {local} is refused"
            notes.append(f"{reference}: {why}, so it reads as not deployed.")
            return {}
        said = ColorOutputs.read(outputs)
        notes.append(f"{reference} is read offline from stack {local}, {where}: release {said.release} in "
                     f"namespace {said.namespace}; "
                     f"its pods' readiness cannot be known offline, so readyReplicas is assumed to equal replicas "
                     f"({said.ready_replicas}).")
        return outputs

    for name in sorted(plans, key=lambda n: not isinstance(plans[n].settings, ColorSettings)):
        plan = plans[name]
        references: dict[str, dict[str, Any]] = {}
        if isinstance(plan.settings, ColorSettings) and plan.settings.routing_stack:
            references[plan.settings.routing_stack] = routing_outputs(plan.settings.routing_stack, plan.notes)
        if isinstance(plan.settings, RoutingSettings):
            for color in plan.settings.routed_colors:
                reference = plan.settings.color_stacks[color]
                references[reference] = color_outputs(reference, color, plan.notes)
                plan.releases[color] = ColorOutputs.read(references[reference]).release
        if not plan.config.problem:
            plan.run = run_program(name, plan.config.raw, plan.config.secret_keys, references, deployments_ready=True,
                                   defaults=defaults)
            plan.notes.extend(f"The program warned: {warning}" for warning in plan.run.warnings)
    return plans


# ---------------------------------------------------------------- what a plan declares


def manifests(plan: Optional[StackPlan]) -> list[dict[str, Any]]:
    return plan.manifests if plan else []


def object_key(manifest: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = manifest["metadata"]
    return manifest["kind"], metadata.get("namespace", ""), metadata["name"]


def http_routes_of(plan: Optional[StackPlan]) -> list[dict[str, Any]]:
    """The VirtualService routes the stack declares, in Istio's order (the program declares one)."""
    return [route for manifest in manifests(plan) if manifest["kind"] == "VirtualService"
            for route in manifest.get("spec", {}).get("http", [])]


def secret_only_where_needed(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """A VirtualService whose routes hold the test token is secret as a whole (Pulumi marks the whole
    `spec`); here only the cookie regexes stay secret, so the plan still shows who reaches which color."""
    spec = inputs.get("spec")
    if inputs.get("kind") != "VirtualService" or not isinstance(spec, SecretValue):
        return inputs
    spec = reveal(spec)
    for route in spec.get("http", []):
        for match in route.get("match") or []:
            cookie = (match.get("headers") or {}).get("cookie") or {}
            if "regex" in cookie:
                cookie["regex"] = SecretValue(cookie["regex"])
    return {**inputs, "spec": spec}
