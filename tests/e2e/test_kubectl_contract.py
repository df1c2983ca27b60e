"""The stand-in kubectl (tests/harness/fake_kubectl.py) holds to the real kubectl and API server: the same
scenario of the release record's calls against both gives the same answers (exit codes, the API's reasons,
its messages with names, versions and paths made neutral), and two concurrent takers never both hold the
record on the real API server either."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from bluegreen_tools.record import Held, Kubectl, LeaseStore, LostCas, RecordError, ReleaseRecord, Routing
from harness import fake_kubectl

pytestmark = pytest.mark.e2e

_NEUTRAL = [(re.compile(r'"/[^"]*/body\.json"'), '"FILE"'),
            (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "UID"),
            (re.compile(r"(ResourceVersion in (?:precondition|object meta): )\d+"), r"\1RV"),
            (re.compile(r"\(\d+\)"), "(RV)")]


def neutral(text: str) -> str:
    for pattern, replacement in _NEUTRAL:
        text = pattern.sub(replacement, text)
    return text.strip()


def lease_body(namespace: str, name: str, holder: str, meta: dict | None = None) -> str:
    metadata = {"name": name, "namespace": namespace, **(meta or {})}
    return json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                       "spec": {"holderIdentity": holder, "leaseDurationSeconds": 60,
                                "acquireTime": "2030-01-01T00:00:00.000000Z",
                                "renewTime": "2030-01-01T00:00:00.000000Z"}})


def scenario(kubectl: Kubectl, namespace: str) -> list[tuple]:
    """Each call the record makes, the ways it succeeds and fails: (exit code, neutral stderr, what it said)."""
    name = "contract-release"
    raw = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
    seen = []

    def call(*args, body=None):
        done = kubectl.run(*args, body=body)
        shown = None
        if done.code == 0 and done.out.strip():
            value = json.loads(done.out)
            shown = value.get("status") or (value.get("spec") or {}).get("holderIdentity")
        seen.append((args[0], done.code, neutral(done.err), shown))
        return json.loads(done.out) if done.code == 0 and done.out.strip() else None

    call("get", "lease", name, "-n", namespace, "-o", "json")  # NotFound
    first = call("create", "-o", "json", body=lease_body(namespace, name, "a@host pid 1"))
    call("create", "-o", "json", body=lease_body(namespace, name, "b@host pid 2"))  # AlreadyExists
    meta = {key: first["metadata"][key] for key in ("uid", "resourceVersion")}
    second = call("replace", "-o", "json", body=lease_body(namespace, name, "a@host pid 1 renewed", meta))
    call("replace", "-o", "json", body=lease_body(namespace, name, "b@host pid 2", meta))  # Conflict: stale version
    stale = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": meta}
    call("delete", "--raw", raw, body=json.dumps(stale))  # Conflict: ResourceVersion precondition
    wrong_uid = {**stale, "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}
    call("delete", "--raw", raw, body=json.dumps(wrong_uid))  # Conflict: UID precondition
    current = {"uid": second["metadata"]["uid"], "resourceVersion": second["metadata"]["resourceVersion"]}
    call("delete", "--raw", raw, body=json.dumps({**stale, "preconditions": current}))  # Success
    call("delete", "--raw", raw, body=json.dumps({**stale, "preconditions": current}))  # NotFound
    call("replace", "-o", "json", body=lease_body(namespace, name, "a@host pid 1", current))  # NotFound
    call("create", "-o", "json", body=lease_body("no-such-namespace-x", name, "a@host pid 1"))  # namespace
    return seen


def test_the_stand_in_answers_every_call_as_the_real_kubectl_and_api_server(project, tmp_path):
    real = scenario(Kubectl(env=project.env), project.namespace)
    fake = scenario(fake_kubectl.stand_in(tmp_path / "state.json", namespaces=project.namespace),
                    project.namespace)
    assert [step[1] for step in real] == [1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1]  # the scenario ran as meant
    assert fake == real


def test_two_concurrent_takers_never_both_hold_the_record_on_the_real_api_server(project):
    store = LeaseStore(Kubectl(env=project.env), project.namespace, "myapp")

    def take(i: int):
        try:
            return store.take(ReleaseRecord.new("promote", "routing", "green", "v2", Routing("blue"), "v1",
                                                who=f"ci@runner-{i}"))
        except RecordError as error:
            return error

    for _ in range(2):
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(take, range(6)))
        winners = [r for r in results if not isinstance(r, Exception)]
        assert len(winners) == 1, results
        assert all(isinstance(r, Held) for r in results if r not in winners)
        store.write(winners[0], winners[0].record.moved("testing"))
        with pytest.raises(LostCas):  # a second write from the same, now stale, read
            store.write(winners[0], winners[0].record.moved("flipping"))
        with pytest.raises(LostCas):
            store.give_back(winners[0])
        store.give_back(store.read())
        assert store.read() is None
