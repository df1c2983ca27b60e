#!/usr/bin/env python3
"""`python scripts/smoke_test.py --help`: smoke tests through the gateway. The code: bluegreen_tools/smoke_test.py."""

from bluegreen_tools.entry import run_script

run_script("smoke_test")
