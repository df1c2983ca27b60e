"""python scripts/plan.py runs this."""

import sys

from . import main

sys.exit(main())
