"""Run a script's module as the program, or say in one line how to install what it needs.

Standard library only, and nothing newer than Python 3.6 can read: it must speak when the project's
environment is missing, which is when it runs under some other Python.
"""

import runpy
import sys

from . import ROOT

SETUP = ("python3 -m venv venv && . venv/bin/activate && pip install --require-hashes -r requirements.lock "
         "&& pip install --no-deps --no-build-isolation -e .")
EXIT_USAGE = 2


def run_script(name):
    """Run bluegreen_tools/<name>.py, or the package <name>/ (its __main__.py), as `python scripts/<name>.py`
    always has."""
    try:
        runpy.run_module(f"{__package__}.{name}", run_name="__main__", alter_sys=True)  # as if run as a file
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if not missing or missing == __package__.partition(".")[0]:  # this package itself: a bug
            raise
        sys.stderr.write(f"{name}.py: error: the Python package {missing!r} is not installed for {sys.executable}; "
                         f"set up the project's environment (in {ROOT}): {SETUP}\n")
        sys.exit(EXIT_USAGE)
