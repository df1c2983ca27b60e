"""The checks' results for a person (one line each) and for CI (JUnit XML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Sequence

from ..cli import Failure, result_line
from .checks import CheckResult


def result_lines(results: Sequence[CheckResult]) -> list[str]:
    return [result_line(r.passed, r.name, r.seconds, r.detail) for r in results]


def failures(results: Sequence[CheckResult]) -> str:
    """The failed checks in one line, for an error message."""
    return "; ".join(f"{r.name}: {r.detail}" for r in results if not r.passed)


def write_junit(path: Path, suites: Sequence[tuple[str, Sequence[CheckResult]]],
                redact: Callable[[str], str] = lambda text: text) -> None:
    """A JUnit XML report, one testsuite per run of the checks, for CI to show; `redact`: the run's secrets out
    (a check's detail never holds its cookie already)."""
    root = ET.Element("testsuites")
    for suite_name, results in suites:
        suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(results)),
                              failures=str(sum(not r.passed for r in results)), errors="0",
                              time=f"{max((r.seconds for r in results), default=0):.3f}")
        for result in results:
            case = ET.SubElement(suite, "testcase", classname=suite_name, name=result.name,
                                 time=f"{result.seconds:.3f}")
            properties = ET.SubElement(case, "properties")
            for name, value in (("answers", result.answers), ("wrongColorAnswers", result.wrong_colors)):
                ET.SubElement(properties, "property", name=name, value=str(value))
            if not result.passed:
                ET.SubElement(case, "failure", message=redact(result.detail)).text = redact(result.detail)
            else:
                ET.SubElement(case, "system-out").text = redact(result.detail)
    try:
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as error:
        raise Failure(f"cannot write the JUnit report {path}: {error.strerror or error}") from None
