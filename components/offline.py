"""Run the real program offline, under Pulumi's own mock engine, and collect what it declares.

For the offline plan and the tests: no cluster, no Pulumi CLI, no credentials. The mocks stand in
for the Kubernetes provider the way it behaves after `pulumi up`: every object is created with
the inputs it was given, an awaited Deployment reports its pods ready (or not, on request), an
unnamed Secret gets a generated name, and a StackReference returns the outputs it is given.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from .contract import ColorOutputs
from .settings import PROJECT
from .stackfile import StackFileError, read_text, stack_config

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"

# How Pulumi's wire format marks a secret value.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SECRET_PLACEHOLDER = "[secret]"
# What an encrypted stack-file value becomes offline: valid wherever a secret is (a 16+ character testToken).
UNDECRYPTED = "undecrypted-secret-value"


@dataclass(frozen=True)
class SecretValue:
    """A value the program marked secret; it prints as [secret]."""

    value: Any

    def __repr__(self) -> str:
        return SECRET_PLACEHOLDER

    __str__ = __repr__


@dataclass(frozen=True)
class Declared:
    """One resource the program registered: its type token, logical name and inputs."""

    type: str
    name: str
    inputs: dict[str, Any]

    @property
    def kind(self) -> Optional[str]:
        return self.inputs.get("kind")

    @property
    def k8s_name(self) -> Optional[str]:
        return (self.inputs.get("metadata") or {}).get("name")


@dataclass
class ProgramRun:
    stack: str
    resources: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: Optional[BaseException] = None
    warnings: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)  # objects read from the cluster (never declared)
    # Every resource's URN, with the URNs it depends on: a changed URN is a replacement on the next update.
    urns: dict[str, list[str]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Declared]:
        return [r for r in self.resources if r.kind == kind]

    def one(self, kind: str) -> Declared:
        found = self.of_kind(kind)
        if len(found) != 1:
            raise LookupError(f"expected one {kind}, the program declared {len(found)}")
        return found[0]

    @property
    def kubernetes_objects(self) -> list[Declared]:
        return [r for r in self.resources if r.type.startswith("kubernetes:")]


def unwrap_secrets(value: Any) -> Any:
    """Pulumi's wire form of secrets as SecretValue, recursively."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return SecretValue(unwrap_secrets(value.get("value")))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire carries every number as a double
    return value


def reveal(value: Any) -> Any:
    """The plain data inside SecretValues (for checks that need the values themselves)."""
    if isinstance(value, SecretValue):
        return reveal(value.value)
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def mask(value: Any, secret: bool = False) -> Any:
    """The same data, keys sorted, with every leaf inside a secret as the placeholder.

    The shape stays (a Secret's keys remain visible), so a masked manifest is still a valid object.
    """
    if isinstance(value, SecretValue):
        return mask(value.value, True)
    if isinstance(value, dict):
        return {k: mask(value[k], secret) for k in sorted(value)}
    if isinstance(value, list):
        return [mask(v, secret) for v in value]
    return SECRET_PLACEHOLDER if secret else value


def generated_name(logical_name: str) -> str:
    """The name the mock provider gives an object declared without one, as pulumi-kubernetes does
    (`<logical name>-<8 characters>`; the real suffix is random)."""
    return f"{logical_name}-{hashlib.sha256(logical_name.encode()).hexdigest()[:8]}"


def config_text(value: Any) -> str:
    """A config value as Pulumi passes it to a program: text, with JSON for objects and lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, allow_nan=False)


def _without_secure(value: Any) -> tuple[Any, bool]:
    """A config value with each `secure:` leaf (undecryptable offline) as UNDECRYPTED."""
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):  # what Pulumi takes for a secret
            return UNDECRYPTED, True
        items = {k: _without_secure(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
    if isinstance(value, list):
        items = [_without_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def stack_file_config(path: Path) -> tuple[dict[str, str], frozenset[str]]:
    """A stack file's `bluegreen:` config as the engine would pass it, and its secret keys.

    Read as the CLI reads it (components/stackfile.py): a scalar is passed as written, an object as JSON.
    Secret values cannot be decrypted without the CLI; they become UNDECRYPTED (masked as [secret]).
    Raises StackFileError, one line naming the problem, for a file the CLI could not read.
    """
    raw, secret = {}, set()
    for key, value in stack_config(read_text(path)).items():
        namespace, colon, name = key.partition(":")
        if not colon or not namespace or not name:
            raise StackFileError(f"its config key {key[:60]!r} is not of the form namespace:key (Pulumi refuses it); "
                                 f"this program's keys are {PROJECT}:<key>")
        if namespace != PROJECT:
            continue
        name = name.removeprefix("config:")  # the CLI's pre-1.0 form, <namespace>:config:<key>
        value, is_secret = _without_secure(value)
        raw[name] = config_text(value)
        if is_secret:
            secret.add(name)
    return raw, frozenset(secret)


class _KubernetesMocks:
    """Stand-ins for the Kubernetes provider and StackReference reads, recording every registration."""

    def __init__(self, stack_outputs: Mapping[str, Mapping[str, Any]], deployments_ready: bool,
                 live_deployments: Optional[Mapping[str, Mapping[str, Any]]]):
        self.stack_outputs = stack_outputs
        self.deployments_ready = deployments_ready
        self.live_deployments = live_deployments or {}
        self.declared: list[Declared] = []
        self.read: list[str] = []

    def _live_deployment(self, object_id: str) -> dict[str, Any]:
        """A Deployment read from the cluster: as `live_deployments` says, else as its color stack's
        outputs say (the state `pulumi up` left); absent from both, it does not exist."""
        name = object_id.rpartition("/")[2]
        live = self.live_deployments.get(object_id)
        if live is None:
            live = next((o for o in self.stack_outputs.values() if ColorOutputs.read(reveal(o)).deployment == name),
                        None)
        if live is None:
            raise Exception(f"resource {object_id!r} does not exist")  # what the provider's read says
        said = ColorOutputs.read(reveal(live))
        namespace = object_id.rpartition("/")[0] or "default"
        return {"metadata": {"name": name, "namespace": namespace},
                "spec": {"template": {"metadata": {"labels": {"release": said.release}}}},
                "status": {"readyReplicas": said.ready_replicas or 0}}

    def new_resource(self, args):
        if args.typ == "pulumi:pulumi:StackReference":
            name = args.inputs.get("name") or args.name
            outputs = dict(self.stack_outputs.get(name) or {})
            secret_names = [k for k, v in outputs.items() if isinstance(v, SecretValue)]
            outputs = reveal(outputs)
            return name, {"name": name, "outputs": outputs, "secretOutputNames": secret_names}
        if args.custom is None and args.typ == "kubernetes:apps/v1:Deployment":  # a read, as Deployment.get
            self.read.append(args.resource_id)
            return args.resource_id, self._live_deployment(args.resource_id)
        self.declared.append(Declared(args.typ, args.name, unwrap_secrets(args.inputs)))
        state = dict(args.inputs)
        metadata = dict(state.get("metadata") or {})
        if args.typ.startswith("kubernetes:") and not metadata.get("name"):
            # The provider names an unnamed object `<logical name>-<8 characters>`.
            metadata["name"] = generated_name(args.name)
            state["metadata"] = metadata
        if args.typ == "kubernetes:apps/v1:Deployment":
            replicas = int((state.get("spec") or {}).get("replicas", 1))
            ready = replicas if self.deployments_ready else 0
            state["status"] = {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}
        return f"{args.name}-id", state

    def call(self, args):
        return {}


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def run_program(stack: str, config: Mapping[str, str], secret_keys: frozenset[str] = frozenset(),
                stack_outputs: Optional[Mapping[str, Mapping[str, Any]]] = None,
                deployments_ready: bool = True,
                live_deployments: Optional[Mapping[str, Mapping[str, Any]]] = None) -> ProgramRun:
    """Run __main__.py for one stack under the mock engine.

    `config` holds this stack's keys without the `bluegreen:` prefix, as text the way the engine
    passes them; `stack_outputs` maps a stack name to the outputs a StackReference to it reads;
    `live_deployments` maps `namespace/name` to the `release` and `readyReplicas` the cluster has
    (by default, what the color stacks' outputs say).
    """
    import pulumi
    from pulumi.runtime import mocks, rpc, settings as runtime_settings, stack as runtime_stack

    mocks_impl = _KubernetesMocks(stack_outputs or {}, deployments_ready, live_deployments)
    run = ProgramRun(stack)

    class Monitor(mocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            run.urns[response.urn] = sorted(request.dependencies)
            return response

        def ReadResource(self, request):
            response = super().ReadResource(request)
            run.urns[response.urn] = []
            return response

        def RegisterResourceOutputs(self, request):
            if request.urn.endswith("::pulumi:pulumi:Stack::" + f"{PROJECT}-{stack}"):
                run.outputs = unwrap_secrets(rpc.deserialize_properties(request.outputs, keep_unknowns=True))
            return super().RegisterResourceOutputs(request)

    class Mocks(pulumi.runtime.Mocks):
        new_resource = staticmethod(mocks_impl.new_resource)
        call = staticmethod(mocks_impl.call)

    recorder = _Recorder()
    logger = logging.getLogger(f"{PROJECT}.offline")
    logger.propagate = False
    logger.handlers = [recorder]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        mock = Mocks()
        mocks.set_mocks(mock, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=Monitor(mock))
        runtime_settings.ROOT.set(None)  # run_in_stack makes the stack resource, as the CLI's host does
        pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in config.items()},
                                      [f"{PROJECT}:{k}" for k in secret_keys])
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        try:
            loop.run_until_complete(runtime_stack.run_in_stack(
                lambda: runpy.run_path(str(PROGRAM), run_name="__main__")))
        except Exception as error:  # noqa: BLE001 - the caller decides what a refusal means
            run.error = error
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    run.resources = mocks_impl.declared
    run.read = mocks_impl.read
    run.warnings = recorder.messages
    return run
