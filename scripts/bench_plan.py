#!/usr/bin/env python3
"""`python scripts/bench_plan.py --help`: how long the offline plan takes. The code: bluegreen_tools/bench_plan.py."""

from bluegreen_tools.entry import run_script

run_script("bench_plan")
