"""The real program run under Pulumi's mock engine for one stack, with the outputs of the stacks it reads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from bluegreen_tools.secret_values import reveal
from bluegreen_tools.stack_config import config_text
from components.settings import declared_defaults
from harness.schemas import schema_problems

if TYPE_CHECKING:  # the Pulumi SDK is imported where a program runs: the xdist controller never needs it
    from bluegreen_tools.offline import ProgramRun

ROOT = Path(__file__).resolve().parents[2]  # the project


BLUE_STACK = "organization/bluegreen/blue"
GREEN_STACK = "organization/bluegreen/green"
ROUTING_STACK = "organization/bluegreen/routing"
DEFAULTS = declared_defaults(ROOT / "Pulumi.yaml")  # the project's defaults, as the CLI reads them


def color_outputs(color: str, release: str, ready: int = 2, app: str = "myapp") -> dict[str, Any]:
    """What a deployed color stack exports (the design's output contract)."""
    return {"color": color, "release": release, "image": f"registry.example.com/{app}:{release}",
            "deployment": f"{app}-{color}", "replicas": max(ready, 1), "readyReplicas": ready}


def deployed(blue: Optional[str] = "v1.0.0", green: Optional[str] = "v1.1.0", blue_ready: int = 2,
             green_ready: int = 2, app: str = "myapp") -> dict[str, dict[str, Any]]:
    """Stack outputs of both colors of `app`, deployed with these releases (None: never deployed)."""
    outputs = {}
    if blue is not None:
        outputs[BLUE_STACK] = color_outputs("blue", blue, blue_ready, app)
    if green is not None:
        outputs[GREEN_STACK] = color_outputs("green", green, green_ready, app)
    return outputs


def run_stack(stack: str, config: Mapping[str, Any], secret_keys=frozenset(),
              outputs: Optional[Mapping[str, Mapping[str, Any]]] = None, ready: bool = True,
              live: Optional[Mapping[str, Mapping[str, Any]]] = None) -> ProgramRun:
    """Run the program for one stack; config values may be Python values (sent as Pulumi sends them)."""
    from bluegreen_tools.offline import run_program

    return run_program(stack, {k: config_text(v) for k, v in config.items()}, frozenset(secret_keys),
                       outputs, ready, live, DEFAULTS)


def assert_schema_valid(run: ProgramRun) -> None:
    """Every Kubernetes object the run declared passes the published schema, field for field."""
    assert run.kubernetes_objects, "the run declared no Kubernetes object"
    for declared in run.kubernetes_objects:
        problems = schema_problems(reveal(declared.inputs))
        assert not problems, f"{declared.kind} {declared.name}: {problems}"
