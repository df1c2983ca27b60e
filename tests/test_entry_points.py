"""scripts/*.py: thin entry points that, run outside the project's environment, say how to set it up; and their
one error boundary (bluegreen_tools.cli.run_main): one table of exit codes, one line on stderr with every secret
redacted, and a bug's traceback kept in a log file that the line names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.loopback import ROOT
from bluegreen_tools.cli import EXIT_BUG, Failure, InternalError, Session, UsageError, run_main

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


# --- the error boundary ----------------------------------------------------------------------------

SECRET = "tok-5ecret-9a8b7c6d"


def boundary(capfd, error: BaseException, prefix: str = "") -> tuple[int, str, Path | None]:
    """Run a main that raises `error` with SECRET registered: exit code, stderr, the log file it names."""
    session = Session("demo", prefix=prefix)
    session.secrets.add(SECRET)

    def main() -> int:
        raise error

    code = run_main(main, session)
    out, err = capfd.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err, err
    named = re.search(r"its traceback is in (\S+\.log)", err)
    return code, err, Path(named.group(1)) if named else None


@pytest.mark.parametrize("error, code, line", [
    (Failure(f"the check failed for {SECRET}"), 1, "error: the check failed for [secret]"),
    (UsageError("--flag x: not a flag's value"), 2, "error: --flag x: not a flag's value"),
    (KeyboardInterrupt(), 1, "error: interrupted"),
])
def test_an_expected_failure_is_one_line_with_its_exit_code_and_no_log(capfd, error, code, line):
    got, err, log = boundary(capfd, error)
    assert (got, err, log) == (code, line + "\n", None)


def test_a_bug_exits_3_and_its_traceback_goes_to_the_log_file_the_line_names(capfd):
    def deep() -> None:
        raise ValueError(f"bad value {SECRET}\nsecond line")

    try:
        deep()
    except ValueError as raised:
        error = raised
    code, err, log = boundary(capfd, error)
    try:
        assert code == EXIT_BUG == 3
        assert err.startswith("internal error: ValueError: bad value [secret]\\nsecond line (a bug in demo.py; "
                              "please report it with the command that caused it; its traceback is in ")
        assert SECRET not in err and log is not None and log.name.startswith("bluegreen-demo-")
        text = log.read_text()
        assert "Traceback (most recent call last)" in text and "in deep" in text and "ValueError" in text
        assert SECRET not in text and "[secret]" in text
        assert log.stat().st_mode & 0o077 == 0  # only its owner reads it: a traceback may quote config
    finally:
        if log:
            log.unlink()


def test_a_described_bug_keeps_its_message_and_the_prefix(capfd):
    code, err, log = boundary(capfd, InternalError(f"the program failed ({SECRET})"), prefix="plan.py: ")
    try:
        assert code == 3
        assert err.startswith("plan.py: internal error: the program failed ([secret]); its traceback is in ")
    finally:
        if log:
            log.unlink()


def test_a_bug_in_a_process_exits_3_with_its_traceback_under_tmpdir(tmp_path):
    program = ("import sys\nfrom bluegreen_tools.cli import Session, run_main\n"
               "session = Session('demo')\nsession.secrets.add(sys.argv[1])\n"
               "def main():\n    return {}[sys.argv[1]]\n"
               "sys.exit(run_main(main, session))\n")
    done = subprocess.run([sys.executable, "-c", program, SECRET], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)})
    [log] = tmp_path.glob("bluegreen-demo-*.log")
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr == ("internal error: KeyError: '[secret]' (a bug in demo.py; please report it with the "
                           f"command that caused it; its traceback is in {log})\n")
    assert "KeyError" in log.read_text() and SECRET not in log.read_text()
