"""The session's hooks: the shared sandbox's life, the GC settings, the workers' order, the fault counts.
What the tests run against (the stand-ins, the worlds, the program under the mock engine) is in harness/."""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from harness.e2e_tier import SHARED_SANDBOX_DIR, e2e_unavailable, stop_sandbox
from harness.scheduling import E2E_WORKERS, RUN_ORDER, SCHEMA_MODULES, UNIT_WORKERS
from harness.stacks import deployed, run_stack

E2E_DIR = Path(__file__).resolve().parent / "e2e"


@pytest.fixture
def routing_run():
    def run(outputs=None, **config):
        config.setdefault("active", "blue")
        outputs = deployed(app=config.get("app", "myapp")) if outputs is None else outputs
        return run_stack("routing", config, outputs=outputs)
    return run


def pytest_configure(config):
    if not hasattr(config, "workerinput") and not os.environ.get("BLUEGREEN_SANDBOX"):
        os.environ[SHARED_SANDBOX_DIR] = tempfile.mkdtemp(prefix="bluegreen-e2e-")


def pytest_unconfigure(config):
    shared = os.environ.get(SHARED_SANDBOX_DIR)
    if not hasattr(config, "workerinput") and shared:
        stop_sandbox(Path(shared) / "sandbox.env")
        shutil.rmtree(shared, ignore_errors=True)


# The heap a worker builds (pytest, Hypothesis, the Pulumi and Kubernetes SDKs, the schema models) lives until it
# exits, yet every full collection of the cyclic GC walks all of it, and the interpreter's exit walks it again:
# about a tenth of the unit tier's CPU. Frozen, the collector walks only what the tests make since.
@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """Collecting imports every test module and what they import, all of it kept: the collector is off meanwhile
    (its walks of that growing heap took half a CPU-second a worker), and the heap is frozen after."""
    gc.disable()
    try:
        return (yield)
    finally:
        gc.freeze()
        # The tests make over a million objects that die young (the SDK's outputs and messages, Hypothesis's draws):
        # a young collection every 10,000 allocations, not 700, and so a full one a tenth as often.
        gc.set_threshold(10_000, 10, 10)
        gc.enable()


@pytest.fixture(autouse=True, scope="module")
def freeze_the_imports():
    """At each module's start, what the modules before it imported (the SDKs, the models) joins the frozen heap."""
    gc.freeze()


def pytest_sessionfinish(session):
    gc.freeze()  # the exit's collections then skip the heap: about 1.5 s a worker


def pytest_xdist_auto_num_workers(config) -> int:
    """pytest.ini's `-n auto`: UNIT_WORKERS for the unit tier, E2E_WORKERS when the e2e tier runs."""
    e2e_deselected = "not e2e" in (config.option.markexpr or "")
    return UNIT_WORKERS if e2e_deselected or e2e_unavailable() else E2E_WORKERS


def pytest_xdist_make_scheduler(config, log):
    """Two rules on top of xdist's loadfile, which gives a free worker the queue's next module.

    xdist gives a worker its next module when two of its tests are left (it must know the next test to run
    the last), so a worker whose last e2e scenario runs for minutes holds that module all that time: such a
    worker gets the quickest unit module (the queue's last), and the long ones go to free workers. And the
    schema modules go to the worker that took the first of them, as long as the others have other work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    def module(scope: str) -> str:
        return scope.split("::")[0].rsplit("/", 1)[-1]

    class PlacedWork(LoadFileScheduling):
        schema_worker = None

        def _assign_work_unit(self, node) -> None:
            queue = list(self.workqueue)
            running_e2e = any("/e2e/" in scope and not all(tests.values())
                              for scope, tests in self.assigned_work.get(node, {}).items())
            if running_e2e:  # the quickest unit module (the queue's last)
                queue = [scope for scope in queue if "/e2e/" not in scope][::-1] or queue
            schema = [scope for scope in queue if module(scope) in SCHEMA_MODULES]
            if node is self.schema_worker or (self.schema_worker is None and schema and schema[0] == queue[0]):
                self.schema_worker = node
                queue = schema or queue
            elif self.schema_worker is not None:
                queue = [scope for scope in queue if scope not in schema] or queue
            self.workqueue.move_to_end(queue[0], last=False)  # xdist takes the queue's first
            super()._assign_work_unit(node)

    return PlacedWork(config, log)


def run_order(item) -> int:
    module = item.nodeid.split("::")[0].split("/")[-1]
    return RUN_ORDER.index(module) if module in RUN_ORDER else len(RUN_ORDER)


def pytest_ignore_collect(collection_path, config):
    """Where the e2e tier cannot run, its modules are not even imported: half a second of every worker's start.
    (The reason is printed at the end: pytest_terminal_summary.)"""
    if collection_path == E2E_DIR and e2e_unavailable():
        return True
    return None


def pytest_collection_modifyitems(config, items):
    e2e = [item for item in items if "e2e" in item.nodeid.split("/")]
    for item in e2e:
        item.add_marker(pytest.mark.e2e)
    if e2e and e2e_unavailable():  # an e2e module named on the command line
        config.hook.pytest_deselected(items=e2e)
        items[:] = [item for item in items if item not in e2e]
    items.sort(key=run_order)  # stable: a module's scenarios keep their order


# --- the fault matrix (tests/test_faults_release.py): each case records what it tried and how it ended --------

_FAULTS: list[dict[str, Any]] = []


def pytest_runtest_logreport(report):
    """Collect the `fault` properties; under xdist the workers' reports arrive here too."""
    if report.when == "call":
        _FAULTS.extend({**json.loads(value), "passed": report.passed}
                       for name, value in report.user_properties if name == "fault")


def fault_table(faults: list[dict[str, Any]]) -> list[str]:
    """The counts: per target and kind of fault, how many were tried and how they ended."""
    rows: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for fault in faults:
        rows[(fault["target"], fault["kind"])][fault["ended"] if fault["passed"] else "TEST FAILED"] += 1
    endings: Counter = Counter(fault["ended"] if fault["passed"] else "TEST FAILED" for fault in faults)
    targets = Counter(fault["target"] for fault in faults)
    safe = sum(fault["passed"] for fault in faults)
    lines = [f"fault matrix: {targets['release.py']} faults injected into release.py, {targets['smoke_test.py']} bad "
             f"inputs given to smoke_test.py; {safe} of {len(faults)} ended safely"]
    width = max(len(f"{target}: {kind}") for target, kind in rows)
    for (target, kind), ended in sorted(rows.items()):
        how = "; ".join(f"{count} {what}" for what, count in ended.most_common())
        lines.append(f"  {f'{target}: {kind}':<{width}}  {sum(ended.values()):>3}  {how}")
    lines.append("  how they ended: " + "; ".join(f"{count} {what}" for what, count in endings.most_common()))
    return lines


def pytest_terminal_summary(terminalreporter):
    reason = e2e_unavailable()
    if reason:
        terminalreporter.write_line(reason)
    if _FAULTS:
        for line in fault_table(_FAULTS):
            terminalreporter.write_line(line)
    fault_matrix_summary(terminalreporter)
    failed = [report.nodeid for status in ("failed", "error") for report in terminalreporter.stats.get(status, [])
              if getattr(report, "nodeid", "")]
    for nodeid in failed:  # last, after the counts: a failing run says in its last lines which test failed
        terminalreporter.write_line(f"FAILED {nodeid}")


def fault_matrix_summary(terminalreporter) -> None:
    """The counts of tests/harness/fault_matrix.py's cases that ran: how many bad inputs, how each ended."""
    outcomes = {}
    for status in ("passed", "failed"):
        for report in terminalreporter.stats.get(status, []):
            for name, value in getattr(report, "user_properties", []):
                if name == "fault_matrix":
                    case_id, code, problems = value
                    outcomes[case_id] = (code, problems)
    if outcomes:
        from harness.fault_outcomes import Outcome, summary
        for line in summary({case_id: Outcome(code, problems) for case_id, (code, problems) in outcomes.items()}):
            terminalreporter.write_line(line)
