"""How long a smoke run takes against a healthy loopback gateway: /ready plus three --check paths.

    python benchmarks/bench_smoke.py

Not a test (pytest does not collect it): it prints the median of 50 in-process runs of
`run_checks`, which release.py makes, and of 10 runs of the command line, which adds the
interpreter's start and imports; then how long a check with a 1 s timeout takes to its verdict
against servers that never complete an answer (the check's deadline: settle + timeout + 1 s at most).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from harness.loopback import ROOT, endless, hanging, healthy, serve, serve_raw, trickling
from bluegreen_tools import smoke_test

PATHS = ["/api/orders", "/api/users", "/api/health"]
HEAD = b"HTTP/1.1 200 OK\r\nx-bluegreen-color: green\r\n"
NEVER_COMPLETE = {
    "a body trickled after Connection: close": trickling(HEAD + b"Connection: close\r\nContent-Length: 100000\r\n\r\n"),
    "trickled headers": trickling(HEAD + b"X-Slow: "),
    "a server that hangs": hanging,
    "an endless chunked body": endless,
}


def timed(run, count: int) -> str:
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return (f"median {statistics.median(seconds) * 1000:.1f} ms (min {min(seconds) * 1000:.1f}, "
            f"max {max(seconds) * 1000:.1f}, n={count})")


def main() -> None:
    with serve(healthy()) as url:
        def in_process():
            assert all(r.passed for r in smoke_test.run_checks(url, PATHS, expect_color="green", timeout=5))

        def command_line():
            argv = [sys.executable, str(ROOT / "scripts" / "smoke_test.py"), "--url", url, "--expect-color", "green"]
            subprocess.run(argv + [a for p in PATHS for a in ("--check", p)], check=True, capture_output=True)

        print(f"run_checks, 4 checks, in-process:      {timed(in_process, 50)}")
        print(f"python scripts/smoke_test.py, 4 checks: {timed(command_line, 10)}")
    for name, respond in NEVER_COMPLETE.items():
        with serve_raw(respond) as url:
            start = time.perf_counter()
            result, = smoke_test.run_checks(url, timeout=1)
            assert not result.passed
        print(f"--timeout 1, {name + ':':<41} verdict in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
