#!/usr/bin/env python3
"""`python scripts/lock.py --help`: refresh the hash-pinned locks. The code: bluegreen_tools/lock.py."""

from bluegreen_tools.entry import run_script

run_script("lock")
