"""python scripts/release.py runs this: the command inside the one error boundary (cli.run_main)."""

import sys

from ..cli import Session, run_main
from . import main

session = Session("release")
sys.exit(run_main(lambda: main(session=session), session))
