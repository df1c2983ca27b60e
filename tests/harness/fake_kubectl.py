"""A stand-in `kubectl` for the release record's tests: Leases kept in a JSON state file, with exactly the
subcommands scripts/bluegreen_tools/record uses, answering as the real kubectl and API server do (their
messages and exit codes; tests/e2e/test_kubectl_contract.py holds it to the real pair):

  get lease NAME -n NS -o json | create -o json -f FILE | replace -o json -f FILE | delete --raw PATH -f FILE
  (global: --request-timeout=D, --context=C)

Environment: FAKE_KUBECTL_STATE (the state file, required), FAKE_KUBECTL_NAMESPACES (comma list, default
"default"), FAKE_KUBECTL_LOG (a file: one JSON line per call, its argv and whether stdin was open),
FAKE_KUBECTL_FAULT = hang (never answers, with a child in its process group) | unreachable.
Run it as `python fake_kubectl.py ARGS`.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

LEASES = "leases.coordination.k8s.io"
CONFLICT = "the object has been modified; please apply your changes to the latest version and try again"
RAW = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"


class ServerError(Exception):
    def __init__(self, reason: str, message: str):
        self.reason, self.message = reason, message
        super().__init__(message)


def fail(reason: str, message: str) -> int:
    print(f"Error from server ({reason}): {message}", file=sys.stderr)
    return 1


def usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def load(handle) -> dict:
    handle.seek(0)
    text = handle.read()
    state = json.loads(text) if text.strip() else {}
    state.setdefault("version", 1000)
    state.setdefault("leases", {})
    return state


def save(handle, state: dict) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(state))
    handle.flush()


def namespaces() -> set[str]:
    return set(filter(None, os.environ.get("FAKE_KUBECTL_NAMESPACES", "default").split(",")))


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_body(path: str) -> dict:
    with open(path) as body:
        return json.load(body)


def create(state: dict, path: str) -> dict:
    lease = read_body(path)
    meta = lease.setdefault("metadata", {})
    name, namespace = meta["name"], meta.get("namespace", "default")
    if namespace not in namespaces():
        raise ServerError("NotFound", f'error when creating "{path}": namespaces "{namespace}" not found')
    key = f"{namespace}/{name}"
    if key in state["leases"]:
        raise ServerError("AlreadyExists", f'error when creating "{path}": {LEASES} "{name}" already exists')
    state["version"] += 1
    meta.update(namespace=namespace, uid=str(uuid.uuid4()), resourceVersion=str(state["version"]),
                creationTimestamp=stamp())
    state["leases"][key] = lease
    return lease


def replace(state: dict, path: str) -> dict:
    lease = read_body(path)
    meta = lease.setdefault("metadata", {})
    name, namespace = meta["name"], meta.get("namespace", "default")
    current = state["leases"].get(f"{namespace}/{name}")
    if current is None:
        if meta.get("uid"):  # the API server checks the body's uid as a precondition against the gone object
            raise ServerError("Conflict", f'error when replacing "{path}": Operation cannot be fulfilled on {LEASES} '
                              f'"{name}": StorageError: invalid object, Code: 4, Key: /registry/leases/{namespace}/'
                              f'{name}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in '
                              f'precondition: {meta["uid"]}, UID in object meta:')
        raise ServerError("NotFound", f'error when replacing "{path}": {LEASES} "{name}" not found')
    if meta.get("resourceVersion") not in (None, current["metadata"]["resourceVersion"]):
        raise ServerError("Conflict", f'error when replacing "{path}": Operation cannot be fulfilled on {LEASES} '
                          f'"{name}": {CONFLICT}')
    kept = {key: current["metadata"][key] for key in ("uid", "creationTimestamp", "resourceVersion", "namespace")}
    meta.update(kept)
    if lease != current:  # the API server does not bump the version of a write that changes nothing
        state["version"] += 1
        meta["resourceVersion"] = str(state["version"])
        state["leases"][f"{namespace}/{name}"] = lease
    return lease


def delete_raw(state: dict, raw: str, path: str | None) -> dict:
    parts = raw.strip("/").split("/")
    if len(parts) != 7 or parts[:4] != ["apis", "coordination.k8s.io", "v1", "namespaces"] or parts[5] != "leases":
        raise ServerError("NotFound", "the server could not find the requested resource")
    namespace, name = parts[4], parts[6]
    current = state["leases"].get(f"{namespace}/{name}")
    if current is None:
        raise ServerError("NotFound", f'{LEASES} "{name}" not found')
    wanted = (read_body(path) if path else {}).get("preconditions") or {}
    meta = current["metadata"]
    # The API server checks a delete's preconditions itself, with these words (kube-apiserver v1.36).
    for field, label, why in (("uid", "UID", "deleted and then recreated"), ("resourceVersion", "ResourceVersion",
                                                                             "modified")):
        if wanted.get(field) is not None and wanted[field] != meta[field]:
            raise ServerError("Conflict", f'Operation cannot be fulfilled on Lease.coordination.k8s.io "{name}": the '
                              f"{label} in the precondition ({wanted[field]}) does not match the {label} in record "
                              f"({meta[field]}). The object might have been {why}")
    del state["leases"][f"{namespace}/{name}"]
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": "coordination.k8s.io", "kind": "leases", "uid": meta["uid"]}}


def parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and flags (-n/--namespace, -o/--output, -f/--filename, --raw; --x=y too)."""
    words, flags = [], {}
    names = {"-n": "namespace", "--namespace": "namespace", "-o": "output", "--output": "output",
             "-f": "filename", "--filename": "filename", "--raw": "raw", "--request-timeout": "request-timeout",
             "--context": "context"}
    items = iter(argv)
    for item in items:
        flag, eq, value = item.partition("=")
        if flag in names:
            flags[names[flag]] = value if eq else next(items, "")
        elif item.startswith("-"):
            raise ValueError(f"unknown flag: {item}")
        else:
            words.append(item)
    return words, flags


def log_call(argv: list[str]) -> None:
    path = os.environ.get("FAKE_KUBECTL_LOG")
    if path:
        config = os.environ.get("KUBECONFIG", "")
        call = {"argv": argv, "stdin_devnull": os.path.samestat(os.fstat(0), os.stat(os.devnull)),
                "own_group": os.getpgid(0) == os.getpid(), "kubeconfig": config,
                "kubeconfig_text": open(config).read() if config and os.path.isfile(config) else None}
        with open(path, "a") as log:
            log.write(json.dumps(call) + "\n")


def main(argv: list[str]) -> int:
    log_call(argv)
    fault = os.environ.get("FAKE_KUBECTL_FAULT", "")
    if fault == "hang":
        subprocess.Popen(["sleep", "300"])  # a child in its group: the caller's kill must reach it too
        time.sleep(300)
    if fault == "unreachable":
        print("The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?",
              file=sys.stderr)
        return 1
    try:
        words, flags = parse(argv)
    except ValueError as error:
        return usage(str(error))
    with open(os.environ["FAKE_KUBECTL_STATE"], "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one request at a time, as etcd orders them
        state = load(handle)
        try:
            if words[:2] == ["get", "lease"] and len(words) == 3 and flags.get("output") == "json":
                namespace = flags.get("namespace", "default")
                lease = state["leases"].get(f"{namespace}/{words[2]}")
                if lease is None:
                    raise ServerError("NotFound", f'{LEASES} "{words[2]}" not found')
                print(json.dumps(lease, indent=4))
                return 0
            if words == ["create"] and "filename" in flags:
                result = create(state, flags["filename"])
            elif words == ["replace"] and "filename" in flags:
                result = replace(state, flags["filename"])
            elif words == ["delete"] and "raw" in flags:
                if "output" in flags:
                    return usage("--raw and --output are mutually exclusive")
                result = delete_raw(state, flags["raw"], flags.get("filename"))
                save(handle, state)
                sys.stdout.write(json.dumps(result))
                return 0
            else:
                return usage(f"the stand-in kubectl does not implement {' '.join(argv)!r}")
        except ServerError as error:
            return fail(error.reason, error.message)
        save(handle, state)
    print(json.dumps(result, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def stand_in(state: "os.PathLike[str]", namespaces: str = "default", **env: str):
    """A record Kubectl client that runs this stand-in on `state` (env: extra FAKE_KUBECTL_* variables)."""
    from bluegreen_tools.record import Kubectl
    variables = {**os.environ, "FAKE_KUBECTL_STATE": str(state), "FAKE_KUBECTL_NAMESPACES": namespaces, **env}
    return Kubectl(command=(sys.executable, os.path.abspath(__file__)), env=variables)


def age(state: "os.PathLike[str]", namespace: str, name: str, seconds: float) -> None:
    """Move a Lease's acquire and renew times `seconds` into the past, as if its holder stopped that long ago."""
    from datetime import timedelta
    with open(state, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        data = load(handle)
        spec = data["leases"][f"{namespace}/{name}"]["spec"]
        for key in ("acquireTime", "renewTime"):
            moment = datetime.strptime(spec[key], "%Y-%m-%dT%H:%M:%S.%fZ") - timedelta(seconds=seconds)
            spec[key] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        save(handle, data)
