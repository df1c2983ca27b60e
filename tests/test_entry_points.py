"""scripts/*.py: thin entry points that, run outside the project's environment, say how to set it up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.loopback import ROOT

SETUP = ("python3 -m venv venv && . venv/bin/activate && pip install --require-hashes -r requirements.lock "
         "&& pip install --no-deps --no-build-isolation -e .")


@pytest.mark.parametrize("script", ["plan", "release", "smoke_test"])
def test_outside_the_environment_a_script_says_how_to_set_it_up(script):
    # -S: no site-packages, so pulumi, yaml and re2 cannot be imported, as under a Python without the venv.
    done = subprocess.run([sys.executable, "-E", "-S", f"scripts/{script}.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{script}.py: error: the Python package ") and line.endswith(SETUP)


def test_the_lock_script_needs_only_the_standard_library():
    done = subprocess.run([sys.executable, "-E", "-S", "tools/lock.py", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: lock.py") and done.stderr == ""
