"""The seed's release cycle for real: promote, status, rollback, decommission; and two releases started at
once. Each scenario runs in a throwaway copy of a released project."""

from __future__ import annotations

import subprocess
import sys

from harness.released_project import SETTLE, default_route, held_record, release, route_names, through_gateway


def test_the_seeds_cycle_promote_status_rollback_and_decommission(released, live):
    job, deployment = released.first_migration, released.first_rollout  # green's first deploy: migrate, then roll out
    assert job["status"]["succeeded"] == 1
    assert deployment["metadata"]["creationTimestamp"] >= job["status"]["completionTime"]

    answer = through_gateway(live, "/ready")
    assert answer.headers["x-bluegreen-color"] == "blue" and answer.headers["x-sandbox-release"] == "v1.0.0"

    promoted = release(live, "promote", "green", "--check", "/api/health", "--settle", SETTLE)
    assert promoted.code == 0, promoted.output
    assert "Traceback" not in promoted.output and "t0ken" not in promoted.output
    assert default_route(live) == "green" and route_names(live) == ["myapp-default"]
    assert through_gateway(live, "/ready").headers["x-sandbox-deployment"] == "myapp-green"
    assert held_record(live) is None

    status = release(live, "status", "--json", check=True).json()
    assert status["active"] == "green" and status["colors"]["blue"]["release"] == "v1.0.0"

    assert release(live, "decommission", "green").code == 1  # green is live now
    rolled = release(live, "rollback")
    assert rolled.code == 0, rolled.output
    assert default_route(live) == "blue"
    assert through_gateway(live, "/").headers["x-sandbox-deployment"] == "myapp-blue"

    refused = release(live, "decommission", "blue")
    assert refused.code == 1 and "blue is the active color" in refused.output
    assert live.get("deployment", "myapp-blue") is not None

    assert release(live, "promote", "green", "--settle", SETTLE).code == 0
    done = release(live, "decommission", "blue")
    assert done.code == 0, done.output
    assert live.get("deployment", "myapp-blue") is None
    assert through_gateway(live, "/ready").headers["x-bluegreen-color"] == "green"



def test_two_promotes_started_together_exactly_one_proceeds(live):
    command = [sys.executable, str(live.folder / "scripts" / "release.py"), "promote", "green", "--settle", SETTLE]
    runs = [subprocess.Popen(command, cwd=live.folder, env=live.env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for _ in range(2)]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "a release is in progress" in loser
    assert default_route(live) == "green"
    assert held_record(live) is None
    release(live, "unlock", check=True)  # harmless when nothing is held
