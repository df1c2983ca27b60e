#!/usr/bin/env python3
"""`python scripts/plan.py --help`: the offline plan. The code: bluegreen_tools/plan/."""

from bluegreen_tools.entry import run_script

run_script("plan")
