"""Whether the e2e tier (tests/e2e) can run here, and the sandbox the session's workers share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

def e2e_unavailable(required_too: bool = False) -> Optional[str]:
    """Why the e2e tier cannot run here, or None. BLUEGREEN_E2E=require turns a reason into a failure
    (in tests/e2e/conftest.py), so CI cannot pass without the tier."""
    if os.environ.get("BLUEGREEN_SANDBOX"):
        return None
    if os.environ.get("BLUEGREEN_E2E") == "require" and not required_too:
        return None
    from sandbox import build as sandbox
    try:
        built = (sandbox.build_dir() / "complete.json").exists()
    except sandbox.Failure as failure:
        return f"e2e tier not run: {failure}"
    return None if built else ("e2e tier not run: the sandbox is not built; "
                               "`python -m sandbox build` builds it (once; about 25 minutes cold on 2 cores)")


# The session's sandbox, shared by the workers: the controller makes this folder before the workers start
# (they inherit the variable), the first worker that needs a sandbox starts it there, the controller stops it.
SHARED_SANDBOX_DIR = "BLUEGREEN_E2E_SHARED_SANDBOX"


def stop_sandbox(env_file: Path) -> None:
    if env_file.exists():
        subprocess.run([sys.executable, "-m", "sandbox", "down", "--env-file", str(env_file)],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
