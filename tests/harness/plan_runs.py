"""scripts/plan.py run in-process against a scratch project: its own git repository and stack files, the real
Pulumi.yaml and program (tests/test_plan.py, tests/test_plan_inputs.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from bluegreen_tools import plan

ROOT = Path(__file__).resolve().parents[2]


def write_stack(directory: Path, stack: str, config: dict) -> None:
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


def git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=directory,
                   check=True, capture_output=True, timeout=30)


def commit(directory: Path, message: str = "base") -> None:
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", message)


def scratch_project(directory: Path, monkeypatch, stacks: dict[str, dict]) -> Path:
    """`directory` made a project (a git repository, this Pulumi.yaml, `stacks`' files) that plan.py reads."""
    git(directory, "init", "-q")
    (directory / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    for stack, config in stacks.items():
        write_stack(directory, stack, config)
    monkeypatch.setattr(plan, "ROOT", directory)
    return directory


def run(capsys, *argv):
    """plan.main's exit code (argparse's usage errors included), stdout and stderr."""
    try:
        code = plan.main(list(argv))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--format", "json")
    return code, json.loads(out) if out else None, err
