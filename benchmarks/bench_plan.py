"""Benchmark (not a test): how long `scripts/plan.py` takes, against importing what the program needs.

    python benchmarks/bench_plan.py [--runs N]

Times, each in a fresh subprocess, N times, and prints the median (and the spread):
  - the bare import of the pulumi and pulumi_kubernetes modules the program uses;
  - `plan.py --stack NAME` for each stack (each such run plans every stack, since stacks read each
    other, and shows one), and `plan.py` for all stacks in one process.
Then the ratio plan / import, against the goal: a plan costs at most 2 x the import.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from bluegreen_tools import ROOT
from bluegreen_tools.plan import stack_names

GOAL = 2.0
# What components/ import and touch: the SDK, its runtime (the mock engine), and the Kubernetes
# resource modules (pulumi_kubernetes loads each on first attribute access).
IMPORT = ("import pulumi, pulumi.runtime, pulumi_kubernetes as k8s; "
          "k8s.apps.v1.Deployment; k8s.core.v1.Service; k8s.core.v1.Secret; k8s.meta.v1.ObjectMetaArgs; "
          "k8s.batch.v1.Job; k8s.apiextensions.CustomResource")


def timed(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Each command `runs` times, in turns (so a slow moment of the machine hits all of them alike)."""
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
            times[label].append(time.perf_counter() - start)
            if done.returncode not in (0, 1):  # 1: a refused config still plans
                sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return times


def show(label: str, times: list[float]) -> tuple[float, float]:
    median = statistics.median(times)
    print(f"{label:<44} median {median:6.3f} s  min {min(times):.3f}  max {max(times):.3f}")
    return median, min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    python = sys.executable
    stacks = sorted(stack_names([path.name for path in ROOT.iterdir()]))

    print(f"Python {sys.version.split()[0]}, {runs} runs each, every run a fresh subprocess")
    plan = [python, "scripts/plan.py"]
    commands = {"import pulumi + pulumi_kubernetes modules": [python, "-c", IMPORT]}
    commands.update({f"plan.py --stack {stack}": plan + ["--stack", stack] for stack in stacks})
    commands["plan.py (all stacks, one process)"] = plan
    commands["plan.py --base HEAD (all stacks, twice)"] = plan + ["--base", "HEAD"]
    medians = {label: show(label, times) for label, times in timed(commands, runs).items()}
    base_median, base_min = medians.pop("import pulumi + pulumi_kubernetes modules")
    print(f"\nratio plan / import (goal <= {GOAL}), by median and by fastest run:")
    for label, (median, fastest) in medians.items():
        ratios = median / base_median, fastest / base_min
        verdict = "met" if max(ratios) <= GOAL else "MISSED"
        print(f"  {label:<40} {ratios[0]:5.2f}  {ratios[1]:5.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
