"""Run the real program offline, under Pulumi's own mock engine, and collect what it declares.

For the offline plan and the tests: no cluster, no Pulumi CLI, no credentials. The mocks stand in
for the Kubernetes provider the way it behaves after `pulumi up`: every object is created with
the inputs it was given, an awaited Deployment reports its pods ready (or not, on request), an
unnamed Secret gets a generated name, and a StackReference returns the outputs it is given.

The SDK's public testing API (pulumi.runtime.Mocks, set_mocks, run_in_stack, set_all_config) does most
of it; the four imports of its internals below are the only ones, each saying why.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping, Optional

import pulumi
import pulumi.runtime
from pulumi.runtime import resource as sdk_resource  # internal: skip the stack walk of each registration
from pulumi.runtime import rpc  # internal: the wire format, to read secrets and the stack's outputs as the engine does
from pulumi.runtime.mocks import MockMonitor  # internal: subclassed to record URNs, dependencies and stack outputs
from pulumi.runtime.settings import set_root_resource  # internal: undo set_mocks' root stack; run_in_stack makes it

from components.contract import ColorOutputs
from components.settings import PROJECT, declared_defaults

from .secret_values import SecretValue, reveal
from .stack_config import with_declared_defaults


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
    if rpc.is_rpc_secret(value):
        return SecretValue(unwrap_secrets(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire carries every number as a double
    return value


def generated_name(logical_name: str) -> str:
    """The name the mock provider gives an object declared without one, as pulumi-kubernetes does
    (`<logical name>-<8 characters>`; the real suffix is random)."""
    return f"{logical_name}-{hashlib.sha256(logical_name.encode()).hexdigest()[:8]}"


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


class _EngineLoop(asyncio.SelectorEventLoop):
    """The event loop the program runs on. The SDK hands every call to the engine to run_in_executor; the mocks
    answer without blocking, so each call runs at once, on the loop's thread. A thread hop per call, and the
    wake-up through the loop's self-pipe that brings its answer back, were a third of a run's CPU."""

    def run_in_executor(self, executor, func, *args) -> asyncio.Future:
        answer = self.create_future()
        try:
            answer.set_result(func(*args))
        except Exception as error:  # noqa: BLE001 - handed to the awaiting coroutine, as the executor would
            answer.set_exception(error)
        return answer


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def keys_in_environment() -> frozenset[str]:
    """This project's keys handed to the program in PULUMI_CONFIG, the way the CLI's language host hands them
    (a test may play it); they are set on the stack as much as those given to run_program."""
    handed = json.loads(os.environ.get("PULUMI_CONFIG") or "{}")
    return frozenset(key.partition(":")[2] for key in handed if key.startswith(PROJECT + ":"))


def run_program(stack: str, config: Mapping[str, str], secret_keys: frozenset[str] = frozenset(),
                stack_outputs: Optional[Mapping[str, Mapping[str, Any]]] = None,
                deployments_ready: bool = True,
                live_deployments: Optional[Mapping[str, Mapping[str, Any]]] = None,
                defaults: Optional[Mapping[str, Any]] = None) -> ProgramRun:
    """Run the program for one stack under the mock engine, as __main__.py runs it under the CLI.

    `config` holds this stack's keys without the `bluegreen:` prefix, as text the way the engine
    passes them; `stack_outputs` maps a stack name to the outputs a StackReference to it reads;
    `live_deployments` maps `namespace/name` to the `release` and `readyReplicas` the cluster has
    (by default, what the color stacks' outputs say). `defaults` are Pulumi.yaml's (by default, the
    program's own): injected into the config as the CLI injects them, and given to the program.
    """
    from components.program import OWN_PROJECT_FILE, main  # here: plan.py's usage errors need no Kubernetes SDK

    defaults = declared_defaults(OWN_PROJECT_FILE) if defaults is None else defaults
    mocks_impl = _KubernetesMocks(stack_outputs or {}, deployments_ready, live_deployments)
    run = ProgramRun(stack)

    class Monitor(MockMonitor):
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

    def run_engine() -> None:
        loop = _EngineLoop()
        asyncio.set_event_loop(loop)
        try:
            mock = Mocks()
            pulumi.runtime.set_mocks(mock, project=PROJECT, stack=stack, preview=False, logger=logger,
                                     monitor=Monitor(mock))
            set_root_resource(None)  # run_in_stack makes the stack resource, as the CLI's host does
            # A key handed in the environment is set too: a default injected here would shadow it (the SDK reads
            # this first)
            handed = keys_in_environment()
            passed = with_declared_defaults(config, {key: value for key, value in defaults.items()
                                                     if key not in handed})
            pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in passed.items()},
                                          [f"{PROJECT}:{k}" for k in secret_keys])
            try:
                # What __main__.py does, with the defaults given: the plan at a git ref passes that ref's.
                loop.run_until_complete(pulumi.runtime.run_in_stack(lambda: pulumi.run(partial(main, defaults))))
            except Exception as error:  # noqa: BLE001 - the caller decides what a refusal means
                run.error = error
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    # In a thread of its own, as the program runs in a process of its own under the CLI: the SDK's context variables
    # (its config) start empty there. The SDK walks the stack at every registration, reading each frame's source
    # line, to tell the engine where the resource was declared: the mocks drop it, so the walk is skipped (a fifth
    # of a run's CPU).
    walk = sdk_resource._get_stack_trace
    sdk_resource._get_stack_trace = sdk_resource.source_pb2.StackTrace  # an empty one
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="offline-engine") as engine:
            engine.submit(run_engine).result()
    finally:
        sdk_resource._get_stack_trace = walk
    run.resources = mocks_impl.declared
    run.read = mocks_impl.read
    run.warnings = recorder.messages
    return run
