"""What the command-line scripts share (scripts/*.py are thin entry points over it), and the offline engine
that runs the program under Pulumi's mock engine for the plan and the tests.

This is the one import bootstrap: the scripts and the offline engine import the program's pure logic
(`components`), so the Pulumi project's folder goes on sys.path once, here.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the Pulumi project: Pulumi.yaml, the stack files, __main__.py
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
