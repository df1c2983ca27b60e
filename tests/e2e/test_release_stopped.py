"""The ways a release is stopped before or after the flip, for real: a failing smoke test, a failure
after the flip, a release changed while under test. Each scenario runs in a throwaway copy of a released project."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from harness.released_project import SETTLE, behave, default_route, held_record, release, route_names, through_gateway


def test_a_failing_smoke_test_flips_nothing_and_removes_the_test_route(live):
    behave(live, "myapp-green", ready=False)
    failed = release(live, "promote", "green", "--settle", SETTLE, "--timeout", "3")
    assert failed.code == 1, failed.output
    assert "smoke tests of green failed" in failed.output
    assert default_route(live) == "blue" and route_names(live) == ["myapp-default"]
    assert held_record(live) is None
    assert live.outputs("routing") == {"active": "blue", "activeRelease": "v1.0.0"}


def test_a_failure_after_the_flip_rolls_users_back_in_the_cluster(live):
    # Healthy through the test route (with the test cookie), broken for users: as an app that breaks under load.
    behave(live, "myapp-green", statusWithoutCookie=500)
    failed = release(live, "promote", "green", "--settle", SETTLE, "--timeout", "3")
    assert failed.code == 1, failed.output
    assert "the default route failed after the flip to green" in failed.output
    assert "routing restored: users on blue" in failed.output
    assert default_route(live) == "blue"
    assert through_gateway(live, "/").headers["x-sandbox-deployment"] == "myapp-blue"
    assert held_record(live) is None


def test_a_release_changed_while_under_test_is_not_flipped(live):
    # Green answers "not ready" until it has been redeployed, so the smoke tests pass only after the change,
    # however long the redeploy takes: the order of events is fixed, not raced.
    behave(live, "myapp-green", ready=False)

    def redeploy_green_once_it_is_under_test():
        deadline = time.monotonic() + 240
        while "myapp-test" not in route_names(live):
            assert time.monotonic() < deadline, "green was never put under test"
            time.sleep(0.5)
        live.pulumi("config", "set", "image", "docker.io/example/myapp:v1.2.0", "-s", "green")
        live.up("green")
        behave(live, "myapp-green")  # ready again

    with ThreadPoolExecutor(1) as pool:
        change = pool.submit(redeploy_green_once_it_is_under_test)
        refused = release(live, "promote", "green", "--settle", SETTLE, "--timeout", "240")
        change.result()  # the redeploy's own failure, if any, before what it caused
    assert refused.code == 1, refused.output
    assert "release changed from v1.1.0 to v1.2.0" in refused.output
    assert default_route(live) == "blue" and route_names(live) == ["myapp-default"]
    assert held_record(live) is None
