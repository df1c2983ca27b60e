"""The routing stack: where users are (its outputs), what its config says, and the transaction that changes
`active` and `test` through the CLI and puts them back on any error."""

from __future__ import annotations

import argparse
from typing import Optional

from components.contract import RoutingOutputs

from ..cli import Failure, printable
from .outputs import read_routing_outputs
from .runner import UP, Runner, describe


def read_routing(runner: Runner, args: argparse.Namespace, required: bool = True) -> RoutingOutputs:
    with runner.step(f"read routing (stack {args.routing_stack})"):
        state = read_routing_outputs(runner, args.routing_stack)
    if required and state.active is None:
        raise Failure(f"the routing stack {args.routing_stack} has no outputs: deploy it first: pulumi config set "
                      f"active blue -s {args.routing_stack} && pulumi up -s {args.routing_stack}")
    return state


def read_routing_config(runner: Runner, stack: str) -> dict[str, Optional[str]]:
    """`active` and `test` as the routing config says: what the next `pulumi up -s routing` deploys."""
    return {key: runner.pulumi_get("config", "get", key, "-s", stack) for key in ("active", "test")}


def drift(config: dict[str, Optional[str]], deployed: RoutingOutputs, stack: str) -> list[str]:
    """Where the routing config and what is deployed (the routing stack's outputs) differ."""
    lines = []
    if config["active"] != deployed.active:
        said = printable(config["active"] or "(unset)", 40)
        lines.append(f"the routing config says active {said}, but {deployed.active or 'nothing'} is deployed: the "
                     f"next `pulumi up -s {stack}` would send users to {said}")
    if config["test"] != deployed.test:
        now = f"a test route to {deployed.test}" if deployed.test else "no test route"
        lines.append(f"the routing config says test {printable(config['test'] or '(unset)', 40)}, but {now} is "
                     "deployed")
    return lines


def users_line(deployed: RoutingOutputs, stack: str) -> str:
    """Who is routed where, from the routing stack's (checked) outputs."""
    if deployed.active is None:
        return f"nobody is routed: the routing stack {stack} has no outputs"
    testers = (f"testers with the cookie on {deployed.test} (release {deployed.test_release or '?'})"
               if deployed.test else "no test route")
    return f"users are on {deployed.active} (release {deployed.active_release or '?'}), {testers}"


class Routing:
    """The routing stack's `active` and `test`, changed through the CLI.

    Used as a context manager: any error inside (a failure, a timeout, a signal, a bug), once
    something changed, puts the routing back (users on the original color, no test route: the
    config first, then `pulumi up` if one was started) and says so in the error.
    """

    def __init__(self, runner: Runner, stack: str, state: RoutingOutputs, hold=None):
        self.runner = runner
        self.hold = hold  # the release record (hold.ReleaseHold): its phase says `restoring` before a restore
        self.stack = stack
        self.original = state.active
        self.config = {"active": state.active, "test": state.test}
        self.changed = False  # a config value was (perhaps) changed
        self.deployed = False  # a `pulumi up` was started: what is deployed may have changed
        self.restored: Optional[bool] = None  # None: not tried
        self.completed = False  # the change went to plan: its config is where users are meant to be

    def set(self, key: str, value: Optional[str]) -> None:
        self.changed = True
        self.config[key] = value  # taken as done even if the command fails or is stopped: restore undoes it anyway
        if value is None:
            self.runner.pulumi("config", "rm", key, "-s", self.stack)
        else:
            self.runner.pulumi("config", "set", key, value, "-s", self.stack)

    def up(self) -> None:
        self.deployed = True
        self.runner.pulumi(*UP, "-s", self.stack, stream=True)

    def by_hand(self) -> str:
        steps = [f"pulumi config set active {self.original} -s {self.stack}", f"pulumi config rm test -s {self.stack}",
                 f"pulumi {' '.join(UP)} -s {self.stack}"]
        if self.stack in self.runner.events.maybe_locked:
            steps.insert(0, f"pulumi cancel --yes -s {self.stack}")
        return " && ".join(steps)

    def restore(self) -> str:
        """Users back on the original color, no test route; what happened, for the error message."""
        with self.runner.signals.cleaning():
            if self.hold is not None:
                self.hold.restoring()
            try:
                with self.runner.step(f"restore routing: users on {self.original}, no test route"):
                    if self.config["active"] != self.original:
                        self.set("active", self.original)
                    if self.config["test"] is not None:
                        self.set("test", None)
                    if self.deployed:
                        self.up()
            except Exception as error:
                self.restored = False
                return (f"restoring the routing failed too ({describe(error)}); to put users back on {self.original} "
                        f"run: {self.by_hand()}")
        self.restored = True
        if self.hold is not None:
            self.hold.restored_ok = True
        return f"routing restored: users on {self.original}, no test route"

    def __enter__(self) -> "Routing":
        return self

    def went_to_plan(self) -> None:
        """The change and its checks are done: from here on an error (a signal) does not undo it."""
        self.completed = True
        self.runner.signals.settle()  # it succeeded: a signal from here on is noted, not raised
        if self.hold is not None:
            self.hold.succeeded = True

    def __exit__(self, kind, error, traceback) -> bool:
        self.completed = self.completed or error is None
        if isinstance(error, Exception) and not self.completed and (self.changed or self.deployed):
            raise Failure(f"{describe(error)}; {self.restore()}") from None
        return False
