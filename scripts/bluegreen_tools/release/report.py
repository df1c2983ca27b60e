"""After a run that did not go to plan, or a crash: the state users are in, read back from the routing stack
(not assumed), and the commands that finish by hand."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from components.contract import RoutingOutputs

from .hold import ReleaseHold
from .outputs import read_routing_outputs
from .routing import Routing, drift, read_routing_config, users_line
from .runner import UP, Runner, describe


@dataclass
class Run:
    """What a promote or rollback holds, for the report at its end."""

    runner: Runner
    stack: str
    hold: Optional[ReleaseHold] = None
    analysis: Optional[object] = None  # the release's analysis (analysis_steps.ReleaseAnalysis), for its JUnit suites
    routing: Optional[Routing] = None

    def needs_report(self) -> bool:
        return bool((self.routing and (self.routing.changed or self.routing.deployed))
                    or (self.hold and self.hold.state in ("left", "lost")) or self.runner.signals.received
                    or self.runner.events.stopped)


@contextmanager
def reporting(runner: Runner, args: argparse.Namespace) -> Iterator[Run]:
    """On an error, once the routing changed or a command was stopped: the report."""
    run = Run(runner, args.routing_stack)
    try:
        yield run
    except Exception:
        if run.needs_report():
            with runner.signals.cleaning():
                report(run)
        raise


def state_now(runner: Runner, deployed: RoutingOutputs, config: Optional[dict[str, Optional[str]]],
              stack: str) -> None:
    """Where users are, and where the routing config differs from it (when the config could be read)."""
    runner.log(f"state now, read back from the routing stack's outputs: {users_line(deployed, stack)}")
    for line in drift(config, deployed, stack) if config is not None else ():
        runner.log(f"  {line}")


def report(run: Run) -> None:
    runner, stack = run.runner, run.stack
    deployed: Optional[RoutingOutputs] = None
    config: Optional[dict[str, Optional[str]]] = None
    if runner.signals.abandon:
        runner.log("state now: not read back (a second signal stopped the clean-up): `python scripts/release.py "
                   "status` reads it")
    else:
        try:
            deployed = read_routing_outputs(runner, stack)
            config = read_routing_config(runner, stack)
        except Exception as error:
            runner.log(f"state now: could not be read back ({describe(error)})")
    if deployed is not None:
        state_now(runner, deployed, config, stack)
    if run.routing is not None:  # where users are meant to be: where they were, unless the change went to plan
        target = run.routing.config["active"] if run.routing.completed else run.routing.original
    else:
        target = deployed.active if deployed else None
    commands = [f"pulumi cancel --yes -s {name}   # only if no pulumi command runs on it: a killed update left "
                "its lock" for name in sorted(runner.events.maybe_locked)]
    if target:
        if config is None or config["active"] != target:
            commands.append(f"pulumi config set active {target} -s {stack}")
        if config is None or config["test"] is not None:
            commands.append(f"pulumi config rm test -s {stack}")
        if (deployed is None or deployed.active != target or deployed.test is not None
                or (run.routing is not None and run.routing.restored is False)):  # deployed may not be as it says
            commands.append(f"pulumi {' '.join(UP)} -s {stack}   # users on {target}, no test route")
    if run.hold is not None and run.hold.state == "left":
        runner.log(f"the release record stays in phase {run.hold.phase}: {run.hold.recovery()}; or by hand:")
        commands.append("python scripts/release.py unlock   # once the above ran: gives the record back")
    if run.hold is not None and run.hold.state == "lost":
        runner.log("the release record is another run's now: that run finishes or undoes this release")
        commands = []
    if not commands:
        runner.log("nothing is left to finish by hand")
        return
    runner.log("to finish by hand:")
    for command in [*commands, "python scripts/release.py status"]:
        runner.log(f"  {command}")


def advise(runner: Runner, args: argparse.Namespace) -> None:
    """After a crash: the state users are in, read back, and the commands that make config and deployment
    agree without moving users (and remove a test route a crashed promote left)."""
    stack = args.routing_stack
    with runner.step(f"read routing (stack {stack})"):
        deployed = read_routing_outputs(runner, stack)
    config = read_routing_config(runner, stack)
    state_now(runner, deployed, config, stack)
    commands = []
    if deployed.active and config["active"] != deployed.active:
        commands.append(f"pulumi config set active {deployed.active} -s {stack}   # keeps users on {deployed.active}")
    if config["test"] is not None or deployed.test:
        commands.append(f"pulumi config rm test -s {stack}")
    if deployed.test:
        commands.append(f"pulumi {' '.join(UP)} -s {stack}   # removes the test route to {deployed.test}; users stay "
                        f"on {deployed.active}")
    if not commands:
        runner.log("the routing config is as deployed: nothing to put back. If `pulumi up` says the stack is locked "
                   f"and no pulumi command runs on it: pulumi cancel --yes -s {stack}")
        return
    runner.log("to finish by hand (if `pulumi up` says the stack is locked and no pulumi command runs on it, first "
               f"pulumi cancel --yes -s {stack}):")
    for command in commands:
        runner.log(f"  {command}")
