"""The fault matrix (tests/harness/fault_matrix.py) as tests: every bad input to plan.py ends with its expected exit
status, one line of error, no traceback and no secret shown. The counts are printed at the end of the run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from harness import fault_matrix

CASES = fault_matrix.cases()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_input_ends_cleanly(case, record_property):
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as directory:  # lighter than tmp_path, 400 times
        outcome = fault_matrix.run_case(case, Path(directory))
    record_property("fault_matrix", [case.id, outcome.code, outcome.problems])
    assert not outcome.problems, f"{case.id} (plan.py {' '.join(map(repr, case.argv))}): {'; '.join(outcome.problems)}"


def test_the_matrix_is_at_the_scale_of_the_report():
    """The issue's reporter tried 174 bad inputs; the matrix tries every key with many values, and more."""
    groups = {case.group for case in CASES}
    assert len(CASES) >= 174 * 2
    assert {"key --set", "key in the stack file", "stack file", "usage", "secrets", "internal"} <= groups
    assert {code for case in CASES for code in case.expect} == {0, 1, 2, 3}


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The matrix's checks are not vacuous: a traceback, a secret shown and a wrong exit are each caught."""
    case = fault_matrix.Case("self-test", "a crash", ["--stack", "blue"], frozenset({1}))
    with fault_matrix._patched(fault_matrix.plan, "main", fault_matrix._raising(SystemError("x"))):
        problems = fault_matrix.run_case(case, tmp_path).problems
    assert "a traceback" in problems
    leak = fault_matrix.check(case, 1, f"Stack blue: REFUSED\n  {fault_matrix.MARK}. Fix: x\n", "", tmp_path)
    assert "a secret value in the output" in leak
    assert any("exit 0" in p for p in fault_matrix.check(case, 0, "", "", tmp_path))
    two_lines = fault_matrix.check(fault_matrix.Case("t", "u", [], frozenset({2})), 2, "", "plan.py: a\nplan.py: b\n", tmp_path)
    assert any("not one line" in p for p in two_lines)
