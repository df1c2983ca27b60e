"""Refresh the hash-pinned locks from the requirements files people edit.

    pip install pip-tools==7.6.2 && python tools/lock.py

Each lock pins every package the input needs, transitively, with the sha256 of every file PyPI has for
that version, so `pip install --require-hashes -r <lock>` installs exactly what was reviewed or fails:

    requirements.txt         -> requirements.lock         (the program, the release scripts)
    requirements-dev.txt     -> requirements-dev.lock     (plus the tests; what CI installs)
    policy/requirements.txt  -> policy/requirements.lock  (the policy pack's own virtualenv)
    .ci/requirements.txt     -> .ci/requirements.lock     (uv, which .ci/run installs the dev lock with)

Run it with Python 3.11, the version CI runs (a dependency may depend on the Python version). Edit a
requirements*.txt, run this, commit both. `--check` only reports whether the locks match their inputs
(it needs PyPI too), exit 1 when one would change; `--upgrade` re-resolves every package to the newest version
the requirements allow (otherwise the pins already in a lock are kept where they still fit).
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project
PIP_TOOLS = "7.6.2"
PYTHON = (3, 11)
DEV = ("requirements-dev.txt", "requirements-dev.lock")  # first: it holds every package the others do
LOCKS = (DEV, ("requirements.txt", "requirements.lock"), ("policy/requirements.txt", "policy/requirements.lock"),
         (".ci/requirements.txt", ".ci/requirements.lock"))
COMMAND = "python tools/lock.py"


def compile_lock(source: str, output: Path, upgrade: bool) -> None:
    """pip-compile `source` into `output`; the pins already in `output` are kept where they still fit."""
    # This machine's pip settings (a local wheel directory, say) are not the lock's: PyPI's files and hashes only.
    env = {**{k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL",
                                                                 "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX")},
           "CUSTOM_COMPILE_COMMAND": COMMAND}
    subprocess.run([sys.executable, "-m", "piptools", "compile", "--quiet", "--generate-hashes", "--allow-unsafe",
                    "--strip-extras", "--no-emit-index-url", "--no-emit-trusted-host", "--no-emit-find-links", "--annotate",
                    *(["--upgrade"] if upgrade else []), "--output-file", str(output), source],
                   cwd=ROOT, env=env, check=True, stdin=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lock.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--upgrade", action="store_true", help="re-resolve every package to its newest allowed version")
    parser.add_argument("--check", action="store_true", help="only report whether each lock matches its input")
    args = parser.parse_args(argv)
    if sys.version_info[:2] != PYTHON:
        print(f"lock.py: error: run it with Python {'.'.join(map(str, PYTHON))}, the version CI installs with "
              f"(this is {sys.version.split()[0]})", file=sys.stderr)
        return 2
    try:
        found = version("pip-tools")
    except PackageNotFoundError:
        found = None
    if found != PIP_TOOLS:
        print(f"lock.py: error: needs pip-tools {PIP_TOOLS} (found {found or 'none'}): "
              f"pip install pip-tools=={PIP_TOOLS}", file=sys.stderr)
        return 2
    stale = []
    with tempfile.TemporaryDirectory() as scratch:
        for source, lock in LOCKS:
            target = ROOT / lock
            output = Path(scratch) / lock.replace("/", "-") if args.check else target
            # The dev lock first; the others start from its pins, so a package has one version in every lock.
            seed = target if (source, lock) == DEV else Path(scratch, DEV[1]) if args.check else ROOT / DEV[1]
            if seed.exists() and seed != output:
                shutil.copyfile(seed, output)
            print(f"lock.py: {source} -> {lock}", file=sys.stderr)
            compile_lock(source, output, args.upgrade and (source, lock) == DEV)
            if args.check:
                old = target.read_text().splitlines() if target.exists() else []
                new = output.read_text().splitlines()
                if new != old:
                    stale.append(lock)
                    sys.stderr.writelines(line + "\n" for line in difflib.unified_diff(
                        old, new, lock, f"{lock} (fresh)", lineterm="", n=0))
    if stale:
        print(f"lock.py: {', '.join(stale)} do not match their inputs: run {COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
