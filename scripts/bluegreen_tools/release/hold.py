"""The release record, as the release commands hold it: where it lives (the routing stack's app and namespace,
its kubernetes:context), taken at the start of a change by compare-and-swap, each phase written before its
step acts, renewed while the run lives, and given back at the end, finished, whatever happened."""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional

from components.contract import RoutingOutputs
from components.settings import declared_defaults
from components.stackfile import StackFileError, read_text, stack_config

from .. import ROOT
from ..cli import Failure, signal_name
from ..record import Held, HeldRecord, Kubectl, LeaseStore, LostCas, RecordError, ReleaseRecord, Routing
from ..record.lease import Lease, user_at_host
from ..record.phases import ABORTED, DONE, RESTORING, TAKEN
from .runner import Runner

PROJECT = "bluegreen"


@dataclass(frozen=True)
class Place:
    """Where a routing stack's release record lives: the Lease `<app>-release` in its namespace."""

    app: str
    namespace: str
    context: Optional[str]


def record_place(runner: Runner, stack: str) -> Place:
    """The routing stack's app, namespace and kubernetes:context, from its stack file (no CLI call), with
    Pulumi.yaml's defaults; through `pulumi config get` when the stack keeps no file here."""
    defaults = declared_defaults(ROOT / "Pulumi.yaml")
    path = ROOT / f"Pulumi.{stack}.yaml"
    if path.is_file():
        try:
            config = stack_config(read_text(path))
        except StackFileError as error:
            raise Failure(f"{path.name}: {error}") from None
        value = lambda key, default=None: config.get(key) or default  # noqa: E731 - a lookup, named once
        return Place(value(f"{PROJECT}:app", defaults.get("app")), value(f"{PROJECT}:namespace",
                     defaults.get("namespace")), value("kubernetes:context"))
    get = lambda key: runner.pulumi_get("config", "get", key, "-s", stack)  # noqa: E731
    return Place(get("app") or defaults.get("app"), get("namespace") or defaults.get("namespace"),
                 get("kubernetes:context"))


def record_store(runner: Runner, stack: str, place: Optional[Place] = None) -> LeaseStore:
    place = place or record_place(runner, stack)
    return LeaseStore(Kubectl(context=place.context), place.namespace, place.app)


def routing_of(state: RoutingOutputs) -> Routing:
    return Routing(state.active or "", state.test)


class ReleaseHold:
    """The record held from the start to the end of a change. `state`: free, held, released (given back),
    lost (someone else took it over), left (still held: `release.py abort` or `resume` finishes it)."""

    def __init__(self, runner: Runner, store: LeaseStore, record: ReleaseRecord, lease: Optional[Lease] = None):
        self.runner, self.store, self.record, self.lease = runner, store, record, lease
        self.held: Optional[HeldRecord] = None
        self.place: Optional[Place] = None  # where the record lives: the app and its namespace
        self.state = "free"
        self.ended: Optional[str] = None  # the phase it was given back in
        self.restored_ok = False  # set by the routing transaction when its restore went through
        self.succeeded = False  # set by the routing transaction once the change and its checks went to plan
        self._renewal = ExitStack()

    @classmethod
    def new(cls, runner: Runner, args: argparse.Namespace, kind: str, color: str, release: Optional[str],
            before: RoutingOutputs, analysis: bool = False) -> "ReleaseHold":
        record = ReleaseRecord.new(kind, args.routing_stack, color, release, routing_of(before),
                                   before.active_release, analysis, who=user_at_host())
        place = record_place(runner, args.routing_stack)
        hold = cls(runner, record_store(runner, args.routing_stack, place), record)
        hold.place = place
        return hold

    @property
    def phase(self) -> str:
        return self.held.record.phase if self.held else self.record.phase

    def __enter__(self) -> "ReleaseHold":
        with self.runner.step(f"take the release record ({self.store.where})"):
            try:
                lease = self.store.take(self.record, self.lease)
            except Held as held:
                lease = held.lease
                raise Failure(f"a release is in progress ({lease.where}): {describe_lease(lease)}") from None
        self.attach(lease)
        return self

    def attach(self, lease: Lease) -> None:
        """Hold `lease` (taken, or taken over): renewed from now on."""
        self.held = HeldRecord(self.store, lease)
        self.state = "held"
        self._renewal.enter_context(self.held.renewing())  # a lost CAS shows at the next write

    def advance(self, phase: str) -> None:
        """Write `phase` before its step acts; a record lost to another run stops this one."""
        assert self.held is not None
        try:
            self.held.advance(phase)
        except LostCas as error:
            self.state = "lost"
            raise Failure(f"{error}: another run (`release.py resume` or `abort`) is in charge of this release, "
                          "so this run stops here and changes nothing more") from None

    def restoring(self) -> None:
        """Before the routing is put back: the phase says so, for a run that dies meanwhile (never blocks it)."""
        if self.held is None or self.state != "held" or self.phase == RESTORING:
            return
        try:
            self.held.advance(RESTORING)
        except LostCas:
            self.state = "lost"
        except RecordError as error:
            self.runner.log(f"note: the record's phase could not be set to restoring ({error}); the restore goes on")

    def stop_renewing(self) -> None:
        self._renewal.close()

    def release(self, phase: str) -> None:
        """Give the record back, finished in `phase`: never raised into a release that went to plan."""
        self._renewal.close()
        if self.held is None or self.state != "held":
            return
        with self.runner.signals.cleaning():  # a signal now must not turn the ending into another one
            try:
                self.held.release(phase)
                self.state, self.ended = "released", phase
            except LostCas as error:
                self.state = "lost"
                self.runner.log(f"note: {error}")
            except RecordError as error:
                self.state = "left"
                self.runner.log(f"error: the release record could not be given back ({error}); it stays in phase "
                                f"{self.phase}: {self.recovery()}")

    def recovery(self) -> str:
        return ("`python scripts/release.py resume` finishes it, `python scripts/release.py abort` undoes it "
                f"(after its lease expires, {self.store.duration}s after this run stopped renewing it, or at once "
                "from this machine)")

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None or self.succeeded:  # past the last check, it is done whatever comes
            self.release(DONE)
        elif self.held is not None and (self.phase == TAKEN or self.phase == RESTORING and self.restored_ok):
            self.release(ABORTED)
        else:
            self._renewal.close()
            if self.state == "held":
                self.state = "left"
        self._say_signal()
        return False

    def _say_signal(self) -> None:
        signals = self.runner.signals
        if signals.received and self.state == "released" and self.ended == DONE:
            names = ", ".join(signal_name(s) for s in signals.received)
            self.runner.log(f"note: a signal ({names}) came after the release had succeeded; the record was given "
                            "back all the same: the release is done")


def describe_lease(lease: Lease) -> str:
    """The Lease for a person: who holds it, and, when its run is gone, the two ways out."""
    if not lease.free and not lease.expired() and holder_gone_here(lease):
        return (f"{lease.describe()}; its run is gone from this machine: `release.py resume` finishes it, "
                "`release.py abort` undoes it")
    return lease.describe()


def holder_gone_here(lease: Lease) -> bool:
    """Its holder ran on this machine and its process is gone: its lease need not be waited out."""
    record = lease.record
    if record is None or record.host != user_at_host().partition("@")[2]:
        return False
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def unchanged(before: RoutingOutputs, now: RoutingOutputs) -> RoutingOutputs:
    """The routing read again under the record: a release that ended meanwhile means this one starts over."""
    if (before.active, before.test) != (now.active, now.test):
        raise Failure(f"the routing changed while this run took the release record ({routing_of(before).describe()} "
                      f"then {routing_of(now).describe()}): another release ended meanwhile; nothing was changed: "
                      "check `python scripts/release.py status`, then run again")
    return now
