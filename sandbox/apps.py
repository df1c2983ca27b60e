"""The sandbox's app stand-ins: they EMULATE the app's pods (no container runs; kwok marks pods ready).

One real HTTP server per Deployment, on its own loopback port, started when the gateway stand-in
(sandbox/gateway.py) first routes to one of its pods: GET /ready answers {"ready": true}, other paths 200,
and every answer says which Deployment, pod and release answered (x-sandbox-deployment, x-sandbox-release).
A test changes how one behaves by writing CONTROL/<namespace>/<deployment>.json (never through a hook in
the product), read again for every request:
  {"ready": false}              /ready says not ready
  {"status": 500}               every answer has that status
  {"statusWithoutCookie": 500}  that status for requests without a cookie (healthy for testers, broken for users)
  {"errorRate": 0.05}           that share of answers, chosen at random, is a 500
  {"delay": 2.5}                seconds before answering (beside latencyMs: the two add up)
  {"latencyMs": 300}            milliseconds before answering
A control file that cannot be read or holds a bad value makes every answer a 500 naming the key and the fix
(one that does not parse is read again a few times first: a test may be writing it).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Mapping, Optional


@dataclass(frozen=True)
class Behaviour:
    ready: bool = True
    status: int = 200
    status_without_cookie: Optional[int] = None
    error_rate: float = 0.0
    wait_seconds: float = 0.0  # delay and latencyMs together


def _number(values: Mapping[str, Any], key: str, low: float, high: float) -> Optional[float]:
    if key not in values:
        return None
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{key} is {value!r}: set a number from {low:g} to {high:g}")
    return float(value)


def parse_behaviour(text: str) -> Behaviour:
    """A control file's behaviour; ValueError naming the key, the value and the fix when one is wrong."""
    try:
        values = json.loads(text)
    except ValueError as error:
        raise ValueError(f"not JSON ({error}): write an object such as {{\"errorRate\": 0.05}}") from None
    if not isinstance(values, dict):
        raise ValueError(f"holds {type(values).__name__}, not an object such as {{\"errorRate\": 0.05}}")
    status, without = _number(values, "status", 100, 599), _number(values, "statusWithoutCookie", 100, 599)
    delay, latency = _number(values, "delay", 0, 3600) or 0.0, _number(values, "latencyMs", 0, 3_600_000) or 0.0
    return Behaviour(ready=bool(values.get("ready", True)), status=int(status or 200),
                     status_without_cookie=None if without is None else int(without),
                     error_rate=_number(values, "errorRate", 0, 1) or 0.0, wait_seconds=delay + latency / 1000)


def answer_status(behaviour: Behaviour, has_cookie: bool, draw: float) -> int:
    """The status of one answer; `draw` is a uniform random number in [0, 1)."""
    if behaviour.status_without_cookie is not None and not has_cookie:
        return behaviour.status_without_cookie
    if draw < behaviour.error_rate:
        return 500
    return behaviour.status


def read_behaviour(path: Path, attempts: int = 5) -> Behaviour:
    """The control file's behaviour (the default without one). A test writes the file in place, so a read can
    catch it half written: JSON that does not parse is read again a few times, 20 ms apart, before it counts."""
    for attempt in range(attempts):
        if not path.exists():
            return Behaviour()
        text = path.read_text()
        try:
            json.loads(text)
        except ValueError:
            if attempt < attempts - 1:
                time.sleep(0.02)
                continue
        return parse_behaviour(text)
    raise AssertionError("unreachable")


class Apps:
    """One HTTP server per Deployment, started when the gateway first routes to one of its pods."""

    def __init__(self, control: Path):
        self.control = control
        self.servers: dict[tuple[str, str], ThreadingHTTPServer] = {}
        self.lock = threading.Lock()

    def port_for(self, namespace: str, deployment: str) -> int:
        with self.lock:
            key = (namespace, deployment)
            if key not in self.servers:
                server = ThreadingHTTPServer(("127.0.0.1", 0), app_handler(self.control, namespace, deployment))
                server.daemon_threads = True
                threading.Thread(target=server.serve_forever, daemon=True).start()
                self.servers[key] = server
            return self.servers[key].server_address[1]


def app_handler(control: Path, namespace: str, deployment: str):
    class App(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = control / namespace / f"{deployment}.json"
            problem = ""
            try:
                behaviour = read_behaviour(path)
            except (OSError, ValueError) as error:
                problem = f"sandbox app {namespace}/{deployment}: control file {path}: {error}"
                print(problem, file=sys.stderr, flush=True)
                behaviour = Behaviour(status=500)
            time.sleep(behaviour.wait_seconds)
            status = answer_status(behaviour, bool(self.headers.get("cookie")), random.random())
            body = {"deployment": deployment, "namespace": namespace, "pod": self.headers.get("x-sandbox-pod"),
                    "release": self.headers.get("x-sandbox-release"), "path": self.path}
            if problem:
                body["error"] = problem
            if self.path.split("?")[0] == "/ready":
                body["ready"] = behaviour.ready
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.send_header("x-sandbox-deployment", deployment)
            self.send_header("x-sandbox-release", body["release"] or "")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass
    return App
