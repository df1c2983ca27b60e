#!/usr/bin/env python3
"""`python scripts/release.py --help`: drive a blue-green release. The code: bluegreen_tools/release/."""

from bluegreen_tools.entry import run_script

run_script("release")
