"""The release record, held by compare-and-swap in a coordination.k8s.io/v1 Lease named `<app>-release` in the
app's namespace, as Kubernetes' own leader election holds one: the Lease stays; a holder is named in its spec.
Taking it is a create (AlreadyExists: someone was first) or, when it is free, a replace with the resourceVersion
read (Conflict: someone else changed it first); giving it back is such a replace that clears the holder and
keeps the finished record, and the last release that went live, for `status` and `rollback`. A delete with uid
+ resourceVersion preconditions removes it (`unlock --delete`). The record is JSON in one annotation.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from ..cli import Failure, printable
from .kubectl import Kubectl, KubectlError
from .phases import TAKEN, Intent, Routing, advance, check_phase

ANNOTATION = "bluegreen.dev/release"
LAST_LIVE = "bluegreen.dev/last-live"  # the last release that went live: what `rollback` goes back from
RECORD_LIMIT = 16384  # bytes of the record's JSON: far under the API's 256 KiB for all annotations
SUMMARY_LIMIT = 2000  # characters of the last analysis summary
DURATION = 60  # seconds a holder that stopped renewing keeps the lease: then it is visibly expired
MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"  # the API's MicroTime


class RecordError(Failure):
    """The record cannot be read, taken or changed; the message says why and what to do."""


class Held(RecordError):
    """Someone holds the record: `lease` is what it says."""

    def __init__(self, lease: "Lease", message: str):
        self.lease = lease
        super().__init__(message)


class LostCas(RecordError):
    """Someone else changed or removed the record since this run read it: it is no longer this run's."""


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def micro(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(MICRO)


def parse_micro(text: Any) -> Optional[datetime]:
    if not isinstance(text, str):
        return None
    for shape in (MICRO, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, shape).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def user_at_host() -> str:
    """user@host, as release.py's lock spells it (no spaces)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return "_".join(f"{user}@{socket.gethostname()}".split())


def holder_identity(who: str, host: str, pid: int) -> str:
    return f"{who}@{host} pid {pid}"


@dataclass(frozen=True)
class ReleaseRecord:
    """What a release is doing, for any host to resume or abort it."""

    id: str
    kind: str  # promote or rollback
    who: str
    host: str
    pid: int
    started: str  # MicroTime, UTC
    stack: str  # the routing stack
    color: str  # the color the release sends users to
    release: Optional[str]
    previous_color: str  # where users were before it started, and that color's release
    previous_release: Optional[str]
    previous_test: Optional[str]  # the test route before it started
    phase: str = TAKEN
    analysis: bool = False
    summary: Optional[str] = None  # the last analysis summary

    @classmethod
    def new(cls, kind: str, stack: str, color: str, release: Optional[str], before: Routing,
            previous_release: Optional[str], analysis: bool = False, who: Optional[str] = None) -> "ReleaseRecord":
        user, _, host = (who or user_at_host()).partition("@")
        record = cls(secrets.token_hex(6), kind, user, host or socket.gethostname(), os.getpid(), micro(now_utc()),
                     stack, color, release, before.active, previous_release, before.test, TAKEN, analysis)
        record.intent  # refuses an unknown kind here, not at resume time
        return record

    @property
    def intent(self) -> Intent:
        return Intent(self.kind, self.color, Routing(self.previous_color, self.previous_test), self.analysis)

    @property
    def holder(self) -> str:
        return holder_identity(self.who, self.host, self.pid)

    def moved(self, phase: str) -> "ReleaseRecord":
        return replace(self, phase=advance(self.phase, phase))

    def with_summary(self, summary: str) -> "ReleaseRecord":
        return replace(self, summary=printable(summary, SUMMARY_LIMIT))

    def taken_over(self, who: str, host: str, pid: int) -> "ReleaseRecord":
        return replace(self, who=who, host=host, pid=pid)

    def describe(self) -> str:
        # Read from the cluster, written by anyone who may update the Lease: shown escaped.
        release = f" (release {printable(self.release, 80)})" if self.release else ""
        before = f"{printable(self.previous_color, 20)} (release {printable(self.previous_release or '?', 80)})"
        return (f"{printable(self.kind, 20)} of {printable(self.color, 20)}{release} by "
                f"{printable(f'{self.who}@{self.host}', 120)} pid {self.pid}, started {printable(self.started, 40)}, "
                f"from {before}: phase {self.phase}")

    def encode(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        if len(text.encode()) > RECORD_LIMIT:
            raise RecordError(f"the release record is {len(text.encode())} bytes, over its {RECORD_LIMIT}-byte cap")
        return text

    @classmethod
    def decode(cls, text: str, where: str) -> "ReleaseRecord":
        try:
            values = json.loads(text)
            record = cls(**{key: values[key] for key in cls.__dataclass_fields__ if key in values})
            check_phase(record.phase)
            record.intent
        except (ValueError, TypeError, KeyError) as error:
            raise RecordError(f"{where} holds no readable release record ({printable(str(error), 120)}): "
                              "`release.py status` shows it; `release.py unlock` clears it") from None
        return record


@dataclass(frozen=True)
class Lease:
    """A Lease as read back: its identity for compare-and-swap, who holds it until when, and the record."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    holder: Optional[str]
    duration: int
    acquired: Optional[datetime]
    renewed: Optional[datetime]
    record: Optional[ReleaseRecord]
    raw: dict = field(repr=False, compare=False, default_factory=dict)
    last_live: Optional[ReleaseRecord] = None

    @property
    def where(self) -> str:
        return f"Lease {self.name} in namespace {self.namespace}"

    @property
    def free(self) -> bool:
        """No holder: the last release ended (its record stays, finished) and the next may take it."""
        return not self.holder

    def expires(self) -> Optional[datetime]:
        seen = self.renewed or self.acquired
        return None if seen is None else seen + timedelta(seconds=self.duration)

    def expired(self, now: Optional[datetime] = None) -> bool:
        """renewTime + leaseDurationSeconds is past: its holder stopped renewing, so it is gone."""
        ends = self.expires()
        return ends is not None and (now or now_utc()) > ends

    def describe(self, now: Optional[datetime] = None) -> str:
        if self.free:
            return "no release in progress" + (f"; the last: {self.record.describe()}" if self.record else "")
        what = self.record.describe() if self.record else "no release record"
        held = f"held by {printable(self.holder or '?', 80)}"
        if self.expired(now):
            return (f"{what}; {held}, expired at {micro(self.expires())}: its holder is gone. "
                    "`release.py resume` finishes it, `release.py abort` undoes it")
        return f"{what}; {held}, renewed until {micro(self.expires())}" if self.expires() else f"{what}; {held}"

    @classmethod
    def parse(cls, text: str, where: str) -> "Lease":
        try:
            raw = json.loads(text)
            meta, spec = raw["metadata"], raw.get("spec") or {}
            notes = meta.get("annotations") or {}
            note, live = notes.get(ANNOTATION), notes.get(LAST_LIVE)
            return cls(meta["namespace"], meta["name"], meta["uid"], meta["resourceVersion"],
                       spec.get("holderIdentity") or None, int(spec.get("leaseDurationSeconds") or DURATION),
                       parse_micro(spec.get("acquireTime")), parse_micro(spec.get("renewTime")),
                       ReleaseRecord.decode(note, where) if note is not None else None, raw,
                       ReleaseRecord.decode(live, where) if live is not None else None)
        except (ValueError, TypeError, KeyError) as error:
            raise RecordError(f"kubectl answered no readable Lease for {where} ({printable(str(error), 120)})") \
                from None


class LeaseStore:
    """The release record of one app, in its namespace, through kubectl."""

    def __init__(self, kubectl: Kubectl, namespace: str, app: str, duration: int = DURATION):
        if duration < 3:
            raise RecordError(f"a lease duration of {duration}s is too short to renew: use 3 seconds or more")
        self.kubectl, self.namespace, self.name, self.duration = kubectl, namespace, f"{app}-release", duration

    @property
    def where(self) -> str:
        return f"Lease {self.name} in namespace {self.namespace}"

    def _manifest(self, record: ReleaseRecord, acquired: Optional[datetime], renewed: Optional[datetime],
                  base: Optional[Lease] = None, last_live: Optional[ReleaseRecord] = None) -> str:
        """The Lease holding `record`: held by its holder from `acquired`, or free when `acquired` is None."""
        annotations = {ANNOTATION: record.encode()}
        live = last_live or (base.last_live if base is not None else None)
        if live is not None:
            annotations[LAST_LIVE] = live.encode()
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace,
                                    "labels": {"app.kubernetes.io/managed-by": "bluegreen"},
                                    "annotations": annotations}
        if base is not None:  # the compare in compare-and-swap: the server refuses any other version
            metadata.update(uid=base.uid, resourceVersion=base.resource_version)
        spec: dict[str, Any] = {"leaseDurationSeconds": self.duration}
        if acquired is not None:
            spec.update(holderIdentity=record.holder, acquireTime=micro(acquired), renewTime=micro(renewed or acquired))
        return json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                           "spec": spec})

    def _held(self, lease: Lease) -> Held:
        return Held(lease, f"a release is in progress ({lease.where}): {lease.describe()}")

    def read(self) -> Optional[Lease]:
        try:
            text = self.kubectl.call("get", "lease", self.name, "-n", self.namespace, "-o", "json")
        except KubectlError as error:
            if error.reason == "NotFound" and "namespaces" not in error.detail:
                return None
            raise RecordError(f"cannot read the release record ({self.where}): {error}") from None
        return Lease.parse(text, self.where)

    def take(self, record: ReleaseRecord, lease: Optional[Lease] = None) -> Lease:
        """Hold the record: create the Lease, or take it over from its last release if it is free (`lease`:
        as read just now, to save a read). Held if someone holds it, expired or not, or was first."""
        current = lease if lease is not None else self.read()
        if current is not None and not current.free:
            raise self._held(current)
        moment = now_utc()
        try:
            if current is None:
                text = self.kubectl.call("create", "-o", "json", body=self._manifest(record, moment, moment))
            else:
                text = self.kubectl.call("replace", "-o", "json",
                                         body=self._manifest(record, moment, moment, current))
        except KubectlError as error:
            lost_race = ("AlreadyExists",) if current is None else ("Conflict", "NotFound")
            if error.reason in lost_race:
                held = self.read()
                if held is None or held.free:  # given back between the two calls: a take would race again
                    raise RecordError(f"the release record ({self.where}) changed while this run took it, and is "
                                      "free now: run again") from None
                raise self._held(held) from None
            raise RecordError(f"cannot take the release record ({self.where}): {error}") from None
        return Lease.parse(text, self.where)

    def _replace(self, body: str, what: str, lost: str) -> Lease:
        """Replace the Lease with `body` (which carries the resourceVersion read): LostCas on a Conflict."""
        try:
            text = self.kubectl.call("replace", "-o", "json", body=body)
        except KubectlError as error:
            if error.reason in ("Conflict", "NotFound"):
                raise LostCas(f"the release record ({self.where}) was changed or removed by someone else since "
                              f"this run read it ({error.detail}): {lost}") from None
            raise RecordError(f"cannot {what} the release record ({self.where}): {error}") from None
        return Lease.parse(text, self.where)

    def write(self, lease: Lease, record: ReleaseRecord, renew: bool = True) -> Lease:
        """Replace the Lease, if it is still the version `lease` read: LostCas if anyone changed it since."""
        renewed = now_utc() if renew else (lease.renewed or now_utc())
        return self._replace(self._manifest(record, lease.acquired or renewed, renewed, lease), "write",
                             "it is not this run's any more")

    def finish(self, lease: Lease, record: ReleaseRecord, went_live: bool) -> Lease:
        """Give the record back, if it is still the version `lease` read: the Lease free, the finished record
        kept; `went_live`: it is also the last release that went live. LostCas if anyone changed it since."""
        return self._replace(self._manifest(record, None, None, lease, record if went_live else None), "give back",
                             "left as it is")

    def take_over(self, lease: Lease, who: str, host: str, pid: int, holder_gone: bool = False) -> Lease:
        """For resume, abort and unlock only: make an expired holder's record this run's (a CAS, so two
        hosts resuming at once cannot both win). A live holder's is refused, unless the caller saw it gone
        (`holder_gone`: its process, on this machine, no longer runs)."""
        if lease.record is None:
            raise RecordError(f"{lease.where} holds no release record to take over")
        if lease.free or not (lease.expired() or holder_gone):
            raise self._held(lease)
        moment = now_utc()
        record = lease.record.taken_over(who, host, pid)
        return self.write(replace(lease, acquired=moment), record)

    def give_back(self, lease: Lease) -> None:
        """Delete the Lease if it is still exactly the version `lease` read (uid and resourceVersion)."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"
        body = json.dumps({"kind": "DeleteOptions", "apiVersion": "v1",
                           "preconditions": {"uid": lease.uid, "resourceVersion": lease.resource_version}})
        try:
            self.kubectl.call("delete", "--raw", path, body=body)
        except KubectlError as error:
            if error.reason in ("Conflict", "NotFound"):
                raise LostCas(f"the release record ({self.where}) was changed or removed by someone else: left "
                              f"as it is ({error.detail})") from None
            raise RecordError(f"cannot release the record ({self.where}): {error}") from None
