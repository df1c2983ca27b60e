"""The release record (scripts/bluegreen_tools/record): held by compare-and-swap in a Lease, against the
stand-in kubectl (tests/harness/fake_kubectl.py, held to the real one by tests/e2e/test_kubectl_contract.py),
and the phase model's resume and abort plans."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from bluegreen_tools.record import (ANNOTATION, Held, HeldRecord, Intent, LeaseStore, LostCas, PhaseError,
                                    RecordError, ReleaseRecord, Routing, abort_plan, resume_plan)
from bluegreen_tools.record import phases
from bluegreen_tools.record.kubectl import reason_of
from harness import fake_kubectl


def record(color: str = "green", kind: str = "promote", analysis: bool = False) -> ReleaseRecord:
    return ReleaseRecord.new(kind, "routing", color, "v1.1.0", Routing("blue"), "v1.0.0", analysis,
                             who="ci@runner-1")


@pytest.fixture
def state(tmp_path):
    return tmp_path / "leases.json"


@pytest.fixture
def store(state):
    return LeaseStore(fake_kubectl.stand_in(state), "default", "myapp")


# --- taking, changing and giving back, by compare-and-swap ------------------------------------------

def test_take_writes_the_lease_and_the_record_that_another_host_reads_back(store):
    taken = store.take(record())
    raw = taken.raw
    assert (raw["kind"], raw["metadata"]["name"], raw["metadata"]["namespace"]) == ("Lease", "myapp-release", "default")
    assert raw["spec"]["holderIdentity"].startswith("ci@runner-1 pid ")
    assert raw["spec"]["leaseDurationSeconds"] == 60 and raw["spec"]["acquireTime"] == raw["spec"]["renewTime"]
    read = store.read()
    assert read.record == taken.record and read.record.phase == "taken" and not read.expired()
    assert read.record.intent == Intent("promote", "green", Routing("blue", None))
    assert json.loads(raw["metadata"]["annotations"][ANNOTATION])["previous_release"] == "v1.0.0"


def test_a_second_take_is_refused_naming_who_holds_it_and_the_phase(store):
    store.take(record())
    with pytest.raises(Held) as refused:
        store.take(record("blue"))
    assert "a release is in progress" in str(refused.value) and "ci@runner-1" in str(refused.value)
    assert "phase taken" in str(refused.value) and store.read().record.color == "green"


def test_a_write_from_a_stale_read_loses_the_cas_and_changes_nothing(store):
    first = store.take(record())
    second = store.write(first, first.record.moved("testing"))
    with pytest.raises(LostCas, match="changed or removed by someone else"):
        store.write(first, first.record.moved("flipping"))
    assert store.read().record.phase == "testing" and store.read().resource_version == second.resource_version


def test_give_back_deletes_only_the_version_it_read(store):
    first = store.take(record())
    later = store.write(first, first.record.moved("testing"))
    with pytest.raises(LostCas):
        store.give_back(first)
    assert store.read() is not None
    store.give_back(later)
    assert store.read() is None
    with pytest.raises(LostCas, match="removed"):
        store.give_back(later)


def test_a_record_given_back_and_taken_anew_is_not_the_old_holders(store):
    """uid and resourceVersion both: a new Lease of the same name never matches an old read."""
    old = store.take(record())
    store.give_back(old)
    store.take(record("blue"))
    with pytest.raises(LostCas):
        store.write(old, old.record.moved("testing"))
    with pytest.raises(LostCas):
        store.give_back(old)
    assert store.read().record.color == "blue"


def test_two_concurrent_takers_never_both_hold_the_record(store):
    """Eight takers at once, each a kubectl process: exactly one wins, the others are told who holds it."""
    for round in range(3):
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: _try_take(store, f"runner-{i}"), range(8)))
        winners = [result for result in results if not isinstance(result, Exception)]
        assert len(winners) == 1, results
        assert all(isinstance(result, Held) for result in results if result not in winners)
        assert store.read().record.host == winners[0].record.host
        # Given back as a finished release does it: the next round takes the free Lease by replace, a CAS too.
        store.finish(winners[0], winners[0].record.moved("done"), went_live=True)


def test_a_finished_release_frees_the_lease_keeps_its_record_and_the_last_live_one(store):
    first = HeldRecord(store, store.take(record()))
    first.advance("testing"), first.advance("flipping"), first.advance("checking")
    first.release()  # done: it went live
    lease = store.read()
    assert lease.free and lease.holder is None and not lease.expired()
    assert (lease.record.phase, lease.last_live.color, lease.last_live.previous_color) == ("done", "green", "blue")
    assert lease.describe().startswith("no release in progress; the last: promote of green (release v1.1.0)")
    second = HeldRecord(store, store.take(record("blue", kind="rollback"), lease))
    assert store.read().last_live == lease.last_live  # kept while the next release runs
    second.advance("restoring"), second.advance("aborted")
    second.release("aborted")  # an aborted release did not go live: the last live one stays
    assert store.read().last_live.color == "green" and store.read().record.kind == "rollback"
    store.take(record())  # free again: the next release takes it; the one after is refused
    with pytest.raises(Held, match="a release is in progress"):
        store.take(record())


def _try_take(store: LeaseStore, host: str):
    try:
        return store.take(ReleaseRecord.new("promote", "routing", "green", "v1", Routing("blue"), "v0",
                                            who=f"ci@{host}"))
    except RecordError as error:
        return error


# --- expiry: a holder that stopped renewing is gone, visibly, and only resume/abort/unlock take over ---

def test_an_expired_lease_says_its_holder_is_gone_and_is_still_refused_to_a_new_release(store, state):
    store.take(record())
    fake_kubectl.age(state, "default", "myapp-release", 61)
    lease = store.read()
    assert lease.expired()
    assert "expired at" in lease.describe() and "its holder is gone" in lease.describe()
    assert "release.py resume" in lease.describe() and "release.py abort" in lease.describe()
    with pytest.raises(Held, match="its holder is gone"):
        store.take(record("blue"))


def test_take_over_is_refused_while_the_holder_renews_and_won_by_one_host_when_it_expired(store, state):
    live = store.take(record())
    with pytest.raises(Held):
        store.take_over(live, "ops", "laptop", 42)
    fake_kubectl.age(state, "default", "myapp-release", 61)
    expired = store.read()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: _try_take_over(store, expired, f"host-{i}"), range(4)))
    winners = [result for result in results if not isinstance(result, Exception)]
    assert len(winners) == 1 and all(isinstance(r, LostCas) for r in results if r not in winners)
    now = store.read()
    assert now.record.host == winners[0].record.host and now.record.phase == "taken" and not now.expired()
    assert now.holder == f"ops@{now.record.host} pid 42"


def _try_take_over(store, lease, host):
    try:
        return store.take_over(lease, "ops", host, 42)
    except RecordError as error:
        return error


# --- the record this run holds: forward only, renewed, a lost CAS reported -------------------------

def test_the_phase_moves_only_forward_and_a_refused_move_writes_nothing(store):
    held = HeldRecord(store, store.take(record()))
    held.advance("testing")
    version = store.read().resource_version
    with pytest.raises(PhaseError, match="only go forward"):
        held.advance("taken")
    assert store.read().resource_version == version
    held.advance("flipping")
    held.advance("restoring")
    with pytest.raises(PhaseError):
        held.advance("checking")
    held.advance("aborted")
    held.release("aborted")
    assert store.read().free and store.read().record.phase == "aborted" and store.read().last_live is None


def test_renewal_moves_the_renew_time_and_reports_a_lost_cas(store):
    held = HeldRecord(store, store.take(record()))
    first = store.read()
    lost = []
    with held.renewing(interval=0.3, on_lost=lost.append):
        deadline = time.monotonic() + 10
        while store.read().resource_version == first.resource_version and time.monotonic() < deadline:
            time.sleep(0.1)
        renewed = store.read()
        assert renewed.renewed > first.renewed and renewed.record == first.record
        for _ in range(50):  # another host, by hand: it retries when a renewal came between its read and write
            try:
                store.write(renewed, renewed.record.moved("restoring"))
                break
            except LostCas:
                renewed = store.read()
        while not lost and time.monotonic() < deadline:
            time.sleep(0.1)
    assert lost and "not this run's" in lost[0] and held.lost
    with pytest.raises(LostCas):
        held.advance("testing")
    with pytest.raises(LostCas):
        held.release()
    assert store.read().record.phase == "restoring"


def test_renewal_stops_when_the_run_ends(store):
    held = HeldRecord(store, store.take(record()))
    with held.renewing(interval=0.2):
        pass
    version = store.read().resource_version
    time.sleep(0.6)
    assert store.read().resource_version == version and threading.active_count() >= 1
    assert not [t for t in threading.enumerate() if t.name == "bluegreen-record-renewal"]


def test_the_analysis_summary_is_capped_and_the_record_fits_its_annotation(store):
    held = HeldRecord(store, store.take(record(analysis=True)))
    held.note_summary("x" * 50_000)
    assert len(store.read().record.summary) <= 2003
    with pytest.raises(RecordError, match="byte cap"):
        replace(record(), summary="y" * 20_000).encode()


def test_an_unreadable_record_names_the_lease_and_the_way_out(store, state):
    store.take(record())
    data = json.loads(state.read_text())
    data["leases"]["default/myapp-release"]["metadata"]["annotations"][ANNOTATION] = "{not json"
    state.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="Lease myapp-release in namespace default holds no readable release "
                                          "record.*release.py unlock"):
        store.read()


# --- kubectl: time limits, no stdin, its own process group, the cluster pulumi-kubernetes uses ---------

def test_every_call_has_a_request_timeout_no_stdin_and_its_own_process_group(state, tmp_path):
    log = tmp_path / "calls.jsonl"
    kubectl = fake_kubectl.stand_in(state, FAKE_KUBECTL_LOG=str(log))
    kubectl.context = "prod"
    store = LeaseStore(kubectl, "default", "myapp")
    store.give_back(store.take(record()))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["argv"][2] for c in calls] == ["get", "create", "delete"]
    for call in calls:
        assert call["argv"][:2] == ["--request-timeout=10s", "--context=prod"]
        assert call["stdin_devnull"] and call["own_group"]


def test_a_kubeconfig_given_as_text_reaches_kubectl_as_a_private_file(state, tmp_path):
    log = tmp_path / "calls.jsonl"
    text = "apiVersion: v1\nkind: Config\nclusters: []\n"
    kubectl = fake_kubectl.stand_in(state, FAKE_KUBECTL_LOG=str(log), KUBECONFIG=text)
    assert LeaseStore(kubectl, "default", "myapp").read() is None
    call = json.loads(log.read_text())
    assert call["kubeconfig_text"] == text and call["kubeconfig"] != text


def test_a_kubectl_that_never_answers_is_killed_with_its_children_at_its_limit(state):
    kubectl = fake_kubectl.stand_in(state, FAKE_KUBECTL_FAULT="hang")
    kubectl.request_timeout, kubectl.process_margin = 0.5, 0.5
    start = time.monotonic()
    with pytest.raises(RecordError, match=r"\(Timeout\): no answer within 1s .*killed it"):
        LeaseStore(kubectl, "default", "myapp").read()
    assert time.monotonic() - start < 4


def test_an_unreachable_api_server_or_a_missing_namespace_or_kubectl_is_one_clear_line(state):
    unreachable = LeaseStore(fake_kubectl.stand_in(state, FAKE_KUBECTL_FAULT="unreachable"), "default", "myapp")
    with pytest.raises(RecordError, match=r"cannot read the release record .*\(Unreachable\): The connection"):
        unreachable.take(record())
    elsewhere = LeaseStore(fake_kubectl.stand_in(state), "shop", "myapp")
    with pytest.raises(RecordError, match='namespaces "shop" not found'):
        elsewhere.take(record())
    assert elsewhere.read() is None  # as the API server answers: a namespaced get does not check the namespace
    missing = LeaseStore(replace(fake_kubectl.stand_in(state), command=("no-such-kubectl",)), "default", "myapp")
    with pytest.raises(RecordError, match="kubectl is not on PATH"):
        missing.read()


@pytest.mark.parametrize("stderr, reason", [
    ('Error from server (AlreadyExists): error when creating "x.json": leases.coordination.k8s.io "a" already exists',
     "AlreadyExists"),
    ('Error from server (Forbidden): leases.coordination.k8s.io "a" is forbidden: User "ci" cannot get resource '
     '"leases" in API group "coordination.k8s.io" in the namespace "default"', "Forbidden"),
    ("Unable to connect to the server: dial tcp 10.0.0.1:443: i/o timeout", "Unreachable"),
    ("error: context deadline exceeded", "Timeout"),
    ("", "Unknown"),
])
def test_kubectl_errors_are_read_by_their_reason(stderr, reason):
    assert reason_of(stderr)[0] == reason


def test_a_lease_duration_too_short_to_renew_is_refused(state):
    with pytest.raises(RecordError, match="3 seconds or more"):
        LeaseStore(fake_kubectl.stand_in(state), "default", "myapp", duration=2)


# --- the phase model: resume and abort plans, as pure functions ----------------------------------------

PROMOTE = Intent("promote", "green", Routing("blue"), analysis=True)


def actions(plan):
    return [(step.phase, step.action, step.routing) for step in plan.steps]


TEST_ROUTE, LIVE, BACK = Routing("blue", "green"), Routing("green"), Routing("blue")


@pytest.mark.parametrize("phase, expected", [
    ("taken", [("testing", "route", TEST_ROUTE), ("testing", "smoke-test", None), ("analysing-test", "analyse-test",
               None), ("flipping", "route", LIVE), ("checking", "smoke-live", None),
               ("analysing-live", "analyse-live", None), ("releasing", "release", None)]),
    ("analysing-test", [("analysing-test", "analyse-test", None), ("flipping", "route", LIVE),
                        ("checking", "smoke-live", None), ("analysing-live", "analyse-live", None),
                        ("releasing", "release", None)]),
    ("flipping", [("flipping", "route", LIVE), ("checking", "smoke-live", None),
                  ("analysing-live", "analyse-live", None), ("releasing", "release", None)]),
    ("checking", [("checking", "smoke-live", None), ("analysing-live", "analyse-live", None),
                  ("releasing", "release", None)]),
    ("releasing", [("releasing", "release", None)]),
    ("restoring", [("restoring", "route", BACK), ("aborted", "release", None)]),
])
def test_resume_runs_what_never_ran_from_the_phase_it_stopped_in(phase, expected):
    plan = resume_plan(PROMOTE, phase)
    assert actions(plan) == expected
    if phase != "restoring":
        assert plan.ends_with == LIVE and actions(plan.on_failure)[0] == ("restoring", "route", BACK)


def test_without_analysis_resume_skips_the_analysis_phases():
    plan = resume_plan(replace(PROMOTE, analysis=False), "testing")
    assert [step.action for step in plan.steps] == ["route", "smoke-test", "route", "smoke-live", "release"]


@pytest.mark.parametrize("phase", ["testing", "analysing-test", "flipping", "checking", "analysing-live",
                                   "releasing", "restoring"])
def test_abort_puts_users_back_where_they_were_before_the_release(phase):
    plan = abort_plan(Intent("promote", "green", Routing("blue", "blue")), phase)
    assert actions(plan) == [("restoring", "route", Routing("blue", None)), ("aborted", "release", None)]
    assert plan.commit_hint() == "commit Pulumi.routing.yaml: bluegreen:active: blue, no bluegreen:test"


def test_abort_before_anything_changed_only_releases_and_after_done_points_to_rollback():
    assert actions(abort_plan(PROMOTE, "taken")) == [("aborted", "release", None)]
    done = abort_plan(PROMOTE, "done")
    assert done.steps == () and "rollback" in done.summary


def test_a_rollback_record_resumes_by_flipping_and_releasing():
    back = Intent("rollback", "blue", Routing("green"))
    assert actions(resume_plan(back, "taken")) == [("flipping", "route", Routing("blue")),
                                                   ("releasing", "release", None)]
    assert actions(abort_plan(back, "flipping"))[0] == ("restoring", "route", Routing("green"))


def test_every_plan_writes_its_phases_forward_only():
    for intent in (PROMOTE, Intent("rollback", "blue", Routing("green"))):
        for phase in phases.PHASES:
            for plan in (resume_plan(intent, phase), abort_plan(intent, phase)):
                current = phase
                for step in plan.steps:
                    current = phases.advance(current, step.phase)


@pytest.mark.parametrize("current, new, allowed", [
    ("testing", "taken", False), ("flipping", "testing", False), ("done", "restoring", False),
    ("aborted", "testing", False), ("restoring", "flipping", False), ("checking", "checking", True),
    ("taken", "aborted", True), ("testing", "aborted", False), ("releasing", "restoring", True),
])
def test_transitions(current, new, allowed):
    assert phases.can_advance(current, new) is allowed


def test_an_unknown_phase_or_kind_is_refused_by_name():
    with pytest.raises(PhaseError, match="'flying' is not one of"):
        phases.can_advance("taken", "flying")
    with pytest.raises(PhaseError, match="'deploy' is not one of"):
        Intent("deploy", "green", Routing("blue"))
