"""What the command-line scripts share (scripts/*.py are thin entry points over it), and the offline engine
that runs the program under Pulumi's mock engine for the plan and the tests.

The packages (this one, `components`, `sandbox`, the tests' `harness`) are declared once, in pyproject.toml,
and installed into the project's environment (`pip install --no-deps --no-build-isolation -e .`): each has one
import name in every process.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the Pulumi project: Pulumi.yaml, the stack files, __main__.py
