"""How long a VirtualService change takes to reach users through the gateway stand-in (routed by istiod's xDS).

`propagation_times(project, runs)`: for each run, flip the default route's subset (blue <-> green) with
`kubectl patch` and time from the API server accepting it (kubectl returning) to the first answer of the
gateway from the new color: istiod's debounce and push, the ADS client's update, the decision.
The project's VirtualService is put back to its color at the end. For benchmarks/bench_flip.py and the
e2e test (tests/e2e/test_gateway_xds.py); `project` is a tests/harness/sandbox_project.Project.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from typing import Any, Mapping, Optional

VIRTUAL_SERVICE = "virtualservice.networking.istio.io/myapp-blue-green"
DEFAULT_ROUTE = "myapp-default"
WAIT_SECONDS = 30.0  # a push slower than this is a failure, not a figure
POLL_SECONDS = 0.01


def answered_by(url: str, headers: Optional[Mapping[str, str]] = None, path: str = "/") -> tuple[int, str]:
    """The status and the Deployment (x-sandbox-deployment) of one answer; "" when the gateway answered itself."""
    request = urllib.request.Request(url + path, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers.get("x-sandbox-deployment", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-sandbox-deployment", "")


def wait_for_deployment(url: str, deployment: str, timeout: float = WAIT_SECONDS,
                        headers: Optional[Mapping[str, str]] = None, path: str = "/") -> float:
    """Seconds until an answer comes from `deployment`; AssertionError naming the last answer after `timeout`."""
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout:
        last = answered_by(url, headers, path)
        if last == (200, deployment):
            return time.monotonic() - started
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"no answer from {deployment} through {url}{path} within {timeout}s; last: {last}")


def default_route_index(virtual_service: Mapping[str, Any]) -> int:
    names = [route.get("name") for route in virtual_service["spec"]["http"]]
    if DEFAULT_ROUTE not in names:
        raise AssertionError(f"no route {DEFAULT_ROUTE!r} in the VirtualService (routes: {names})")
    return names.index(DEFAULT_ROUTE)


def set_default_color(project, index: int, color: str) -> None:
    """Point the default route at `color` (its subset and its color header) with `kubectl patch`."""
    base = f"/spec/http/{index}"
    patch = [{"op": "replace", "path": f"{base}/route/0/destination/subset", "value": color},
             {"op": "replace", "path": f"{base}/headers/response/set/x-bluegreen-color", "value": color}]
    project.kubectl("patch", VIRTUAL_SERVICE, "-n", project.namespace, "--type", "json", "-p", json.dumps(patch))


def propagation_times(project, runs: int) -> list[float]:
    """Seconds from each flip's acceptance by the API server to the project's gateway's first answer from the
    new color."""
    if runs < 1:
        raise ValueError(f"runs is {runs}: give 1 or more")
    url = project.env["BLUEGREEN_URL"]
    stored = json.loads(project.kubectl("get", VIRTUAL_SERVICE, "-n", project.namespace, "-o", "json").stdout)
    index = default_route_index(stored)
    original = stored["spec"]["http"][index]["route"][0]["destination"]["subset"]
    times = []
    color = original
    try:
        wait_for_deployment(url, f"myapp-{original}")  # the gateway has the current config before the clock runs
        for _ in range(runs):
            color = "green" if color == "blue" else "blue"
            set_default_color(project, index, color)
            accepted = time.monotonic()
            wait_for_deployment(url, f"myapp-{color}")
            times.append(time.monotonic() - accepted)
        if color != original:  # back as it was, and served so: the caller's next request sees the old color
            set_default_color(project, index, original)
            color = original
            wait_for_deployment(url, f"myapp-{original}")
    finally:
        if color != original:
            set_default_color(project, index, original)
    return times


def describe(times: list[float]) -> str:
    return (f"median {statistics.median(times):.3f}s, min {min(times):.3f}s, max {max(times):.3f}s "
            f"over {len(times)} flips")
