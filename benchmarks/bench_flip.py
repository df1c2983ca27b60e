#!/usr/bin/env python3
"""Benchmark (not a test): the cost of a flip and a rollback with the real CLI on the sandbox.

    python benchmarks/bench_flip.py [--runs N]

Uses the sandbox in the environment ($BLUEGREEN_SANDBOX, from `. sandbox.env`) or starts one. In a
throwaway copy of the project with blue live and green ready, it times, N times each, median shown:
  - a no-op `pulumi up -s routing` (nothing to change): the floor of any routing update;
  - a bare flip: `pulumi config set active green` + `pulumi up -s routing`, and the rollback back; for each,
    the time from the up returning, and from its start (what a user in an incident waits for), to the first
    answer from the new color through the gateway (routed by what istiod pushes);
  - release.py's flip step (as its progress line reports it) and a whole `release.py rollback`;
  - the seed's flip: `kubectl apply` of the same VirtualService with the other subset;
  - a whole `release.py promote`, with its steps;
  - with `bluegreen:analysis` set and green failing every user's request once the checks after the flip have
    passed: the time from the first bad answer to users back on blue, against its bound, interval x failureLimit plus one
    rollback (the no-op up's median).
Goals: a flip or a rollback costs at most 1.5 x the no-op `pulumi up -s routing`; the analysis rolls back
within its bound.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from harness.sandbox_project import Project, make_project
from sandbox import cluster
from sandbox.xds_propagation import wait_for_deployment

GOAL = 1.5
STEP = re.compile(r"^ok\s+(.*) \((\d+\.\d+)s\)$")


def timed(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def steps(stderr: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in map(STEP.match, stderr.splitlines()) if m}


def median(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def bench(project: Project, runs: int) -> float:
    up = ("up", "--yes", "--skip-preview", "-s", "routing")
    release = [sys.executable, str(project.folder / "scripts" / "release.py")]
    url = project.env["BLUEGREEN_URL"]
    figures: dict[str, list[float]] = {name: [] for name in (
        "no-op pulumi up -s routing", "bare flip (config set + up)", "bare flip: the up alone",
        "bare flip: up returned -> first answer from green", "bare flip: up started -> first answer from green",
        "bare rollback (config set + up)", "bare rollback: the up alone",
        "bare rollback: up returned -> first answer from blue", "bare rollback: up started -> first answer from blue",
        "release.py flip step", "release.py rollback (whole command)",
        "release.py promote (whole command)", "seed's flip: kubectl apply of the VirtualService")}
    promote_steps: dict[str, list[float]] = {}
    for _ in range(runs):
        figures["no-op pulumi up -s routing"].append(timed(lambda: project.pulumi(*up)))
        for color, name in (("green", "bare flip"), ("blue", "bare rollback")):
            start = time.monotonic()
            project.pulumi("config", "set", "active", color, "-s", "routing")
            up_started = time.monotonic()
            project.pulumi(*up)
            returned = time.monotonic()
            wait_for_deployment(url, f"myapp-{color}")  # users' first answer from the new color, through the gateway
            answered = time.monotonic()
            figures[f"{name} (config set + up)"].append(returned - start)
            figures[f"{name}: the up alone"].append(returned - up_started)
            figures[f"{name}: up returned -> first answer from {color}"].append(answered - returned)
            figures[f"{name}: up started -> first answer from {color}"].append(answered - up_started)
        service = project.get("virtualservice.networking.istio.io", "myapp-blue-green")
        for route in service["spec"]["http"]:
            route["route"][0]["destination"]["subset"] = "green"
        manifest = project.folder / "vs.json"
        manifest.write_text(json.dumps({key: service[key] for key in ("apiVersion", "kind", "spec")} | {
            "metadata": {"name": "myapp-blue-green", "namespace": project.namespace}}))
        figures["seed's flip: kubectl apply of the VirtualService"].append(
            timed(lambda: project.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))))
        project.pulumi("refresh", "--yes", "-s", "routing")
        project.pulumi(*up)  # users back on blue, state and cluster in step again
        promoted = project.run(*release, "promote", "green", "--settle", "1")
        for name, seconds in steps(promoted.stderr).items():
            promote_steps.setdefault(re.sub(r" \(release .*\)", "", name), []).append(seconds)
        figures["release.py promote (whole command)"].append(sum(steps(promoted.stderr).values()))
        figures["release.py flip step"].append(
            next(s for n, s in steps(promoted.stderr).items() if n.startswith("flip users to")))
        figures["release.py rollback (whole command)"].append(timed(lambda: project.run(*release, "rollback")))
    for name, values in figures.items():
        print(f"{name:<52} {median(values)}")
    print("release.py promote, by step:")
    for name, values in promote_steps.items():
        print(f"  {name:<50} {median(values)}")
    floor = statistics.median(figures["no-op pulumi up -s routing"])
    for name in ("bare flip: the up alone", "bare flip (config set + up)", "bare rollback (config set + up)",
                 "release.py flip step", "release.py rollback (whole command)"):
        ratio = statistics.median(figures[name]) / floor
        print(f"ratio {name} / no-op up: {ratio:.2f} ({'meets' if ratio <= GOAL else 'misses'} the goal <= {GOAL})")
    kubectl = statistics.median(figures["seed's flip: kubectl apply of the VirtualService"])
    print(f"ratio release.py flip step / kubectl apply: {statistics.median(figures['release.py flip step']) / kubectl:.1f}")
    return floor


def time_to_rollback(project: Project, floor: float, interval: float = 2.0) -> None:
    """Users' load through the gateway; green answers 500 from the moment users reach it; the analysis
    (interval, failureLimit 1) must send them back to blue within interval x failureLimit + one rollback."""
    from bluegreen_tools.analysis import load
    from harness.released_project import behave, default_route

    for key, value in {"interval": f"{interval:g}s", "count": "3", "failureLimit": "1", "minRequests": "3",
                       "successRate": "95"}.items():
        project.pulumi("config", "set", "--path", f"analysis.{key}", value, "-s", "routing")
    stop, moments = threading.Event(), {}

    def phase() -> str:
        lease = project.get("lease", "myapp-release") or {}
        note = (lease.get("metadata", {}).get("annotations") or {}).get("bluegreen.dev/release")
        return json.loads(note)["phase"] if note else ""

    def watch() -> None:  # the errors start once the checks after the flip passed: what only metrics can see
        while not stop.wait(0.05):
            if "bad" not in moments and phase() == "analysing-live":
                moments["bad"] = time.monotonic()
                behave(project, "myapp-green", errorRate=1.0)
            elif "bad" in moments and default_route(project) == "blue":
                moments["back"] = time.monotonic()
                return

    threads = [threading.Thread(target=watch, daemon=True),
               threading.Thread(target=load.drive, args=(project.env["BLUEGREEN_URL"], ["/"], None, 20, 900),
                                kwargs={"stop": stop}, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        project.run(sys.executable, str(project.folder / "scripts" / "release.py"), "promote", "green", "--settle",
                    "1", "--test-load", "20", "--test-load-duration", f"{interval + 1:g}s", check=False)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        behave(project, "myapp-green")
    if "back" not in moments:
        print("time to rollback: users were not sent back to blue (see the run's output)")
        return
    took, bound = moments["back"] - moments["bad"], interval * 1 + floor
    print(f"time from the first bad answer to users back on blue (interval {interval:g}s, failureLimit 1): "
          f"{took:.2f} s; "
          f"bound interval x failureLimit + one rollback = {bound:.2f} s "
          f"({'meets' if took <= bound else 'misses'} it)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="how many times to time each figure (default 3)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: give 1 or more")
    started = None
    if os.environ.get("BLUEGREEN_SANDBOX"):
        env = dict(os.environ)
    else:
        started = Path(tempfile.mkdtemp()) / "sandbox.env"
        print("starting a sandbox (python -m sandbox up)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "sandbox", "up", "--env-file", str(started)],
                       check=True, timeout=300)
        env = cluster.read_env_file(started)
    project = None
    try:
        project = make_project(Path(tempfile.mkdtemp()) / "project", env)
        print("setting up: blue live, green ready (one pod each)", file=sys.stderr)
        project.deploy_both_colors()
        floor = bench(project, args.runs)
        time_to_rollback(project, floor)
    finally:
        if project is not None:
            project.cleanup()
        if started:
            subprocess.run([sys.executable, "-m", "sandbox", "down", "--env-file", str(started)],
                           timeout=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
