"""How the fault matrix's cases (tests/harness/fault_matrix.py) ended, and their counts. The standard library only:
pytest's controller prints the counts at the end of every run, and importing the matrix (the Pulumi SDK with it)
there cost half a second after the last test."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass
class Outcome:
    code: int
    problems: list[str]


def summary(outcomes: dict[str, Outcome]) -> list[str]:
    """The counts: how many bad inputs, how each ended, and how many broke a rule."""
    codes = Counter(outcome.code for outcome in outcomes.values())
    groups = Counter(case_id.split(":", 1)[0] for case_id in outcomes)
    failed = [case_id for case_id, outcome in outcomes.items() if outcome.problems]
    words = {0: "valid (exit 0)", 1: "refused by the program (exit 1)", 2: "bad usage (exit 2)",
             3: "internal error, all injected (exit 3)"}
    lines = [f"fault matrix: {len(outcomes)} bad inputs to scripts/plan.py: "
             + ", ".join(f"{codes[code]} {words.get(code, f'exit {code}')}" for code in sorted(codes)),
             "  by kind: " + ", ".join(f"{count} {group}" for group, count in groups.items()),
             f"  {len(failed)} broke a rule (wrong exit, a traceback, a secret shown, an error not on one line)"]
    lines += [f"    {case_id}: {'; '.join(outcomes[case_id].problems)}" for case_id in failed[:20]]
    return lines
