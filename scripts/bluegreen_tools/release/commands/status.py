"""status: both colors, which is active, which under test, a release in progress, and where the routing
config differs from what is deployed; a value that is not what it should be is a problem, not a crash."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from components.contract import ColorOutputs, RoutingOutputs
from components.settings import COLORS

from ...cli import EXIT_OK, Failure, printable
from ...record import RecordError
from ...record.lease import Lease
from ..hold import describe_lease, record_store
from ..outputs import COLOR_OUTPUTS, ROUTING_OUTPUTS, STATUS_OUTPUTS, Spec, color_stack, output_problems
from ..routing import drift, read_routing_config
from ..runner import PulumiError, Runner

HELP = ("Both colors, which is active, which under test, a release in progress, and where the routing config "
        "differs from what is deployed.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def _tolerant(runner: Runner, stack: str, spec: Spec, problems: list[str]) -> dict[str, Any]:
    """A stack's outputs for `status`: a value that is not what it should be is shown as unknown, and listed."""
    try:
        values = runner.outputs(stack)
    except PulumiError:
        raise
    except Failure as failure:
        problems.append(str(failure))
        return {}
    found = output_problems(stack, values, spec)
    problems.extend(found.values())
    return {key: value for key, value in values.items() if key not in found}


def unfinished(runner: Runner, stack: str) -> list[str]:
    """The operations a stopped update of `stack` left pending (from its checkpoint): while there are
    any, its outputs may not be what the cluster holds."""
    text = runner.pulumi("stack", "export", "-s", stack)
    try:
        pending = json.loads(text)["deployment"].get("pending_operations") or []
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise Failure(f"`pulumi stack export -s {stack}` did not print a checkpoint: run it to see what it "
                      "says") from None
    return [f"{printable(str(op.get('type')), 20)} of {printable(str(op.get('resource', {}).get('urn')), 200)}"
            for op in pending if isinstance(op, dict) and isinstance(op.get("resource"), dict)]


def _unfinished_problem(runner: Runner, stack: str, problems: list[str]) -> None:
    try:
        pending = unfinished(runner, stack)
    except Failure as failure:
        problems.append(str(failure))
        return
    if pending:
        problems.append(f"stack {stack}'s last update was stopped half-way ({'; '.join(pending)} never finished), "
                        f"so what it says here may not be what the cluster holds: `pulumi refresh --yes -s {stack}` "
                        f"reads the cluster back (first `pulumi cancel --yes -s {stack}` if its lock was left too)")


def run(args: argparse.Namespace, runner: Runner) -> int:
    problems: list[str] = []
    routing = _tolerant(runner, args.routing_stack, ROUTING_OUTPUTS, problems)
    colors = {color: _tolerant(runner, color_stack(args, color), COLOR_OUTPUTS, problems) for color in COLORS}
    for stack in (args.routing_stack, *(color_stack(args, color) for color in COLORS)):
        _unfinished_problem(runner, stack, problems)
    config = read_routing_config(runner, args.routing_stack)
    lease = read_record(runner, args, problems)
    deployed = RoutingOutputs.read(routing)
    differences = drift(config, deployed, args.routing_stack)
    held = lease is not None and not lease.free
    report = {
        "active": deployed.active,
        "test": deployed.test,
        "releaseInProgress": describe_lease(lease) if held else None,
        "record": None if lease is None else record_report(lease),
        "config": config,
        "configDiffers": differences,
        "problems": problems,
        "colors": {color: {"stack": color_stack(args, color), "deployed": bool(values),
                           **{key: values.get(key) for key in STATUS_OUTPUTS}}
                   for color, values in colors.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print_table(report, deployed)
    print(f"release in progress: {describe_lease(lease)}" if held else "release in progress: none")
    if lease is not None and lease.free and lease.record is not None:
        print(f"last release: {lease.record.describe()}")
    if lease is not None and lease.record is not None and lease.record.summary:
        print(f"last analysis: {lease.record.summary}")
    if differences:
        for line in differences:
            print(f"config differs: {line}")
    else:
        print("routing config: as deployed")
    for problem in problems:
        print(f"problem: {problem}")
    return EXIT_OK


def read_record(runner: Runner, args: argparse.Namespace, problems: list[str]) -> Lease | None:
    """The release record, or None (none yet, or unreadable: then a problem says why)."""
    try:
        return record_store(runner, args.routing_stack).read()
    except RecordError as error:
        problems.append(str(error))
        return None


def record_report(lease: Lease) -> dict[str, Any]:
    record = lease.record
    return {"lease": f"{lease.namespace}/{lease.name}", "held": not lease.free, "holder": lease.holder,
            "expired": lease.expired(), "expires": None if lease.expires() is None or lease.free else
            lease.expires().isoformat(), "release": None if record is None else asdict(record),
            "lastLive": None if lease.last_live is None else asdict(lease.last_live)}


def print_table(report: dict[str, Any], deployed: RoutingOutputs) -> None:
    rows = [("COLOR", "STACK", "ROLE", "RELEASE", "READY", "IMAGE")]
    for color, values in report["colors"].items():
        role = ("active" if color == deployed.active else "test" if color == deployed.test
                else "idle" if values["deployed"] else "not deployed")
        said = ColorOutputs.read(values)
        ready = f"{said.ready_replicas}/{said.replicas}" if values["deployed"] else "-"
        rows.append((color, printable(values["stack"], 60), role, printable(str(said.release or "-"), 80),
                     printable(ready, 40), printable(str(said.image or "-"), 120)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
