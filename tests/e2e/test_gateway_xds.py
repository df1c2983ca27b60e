"""The gateway stand-in routes by what istiod pushes (sandbox/xds_gateway.py): Istio's own translation of the
project's Gateway, VirtualService and DestinationRule, deployed with the real CLI, decides where users go."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import requests

from components.routes import color_for
from harness.sandbox_project import make_project
from sandbox.xds_propagation import answered_by, propagation_times, wait_for_deployment

TOKEN = "xds-e2e-test-token-0123456789abcdef"
TESTER = f"test={TOKEN}"
WAIT = 30.0  # seconds for istiod to push a change: a bound, not a figure


@pytest.fixture(scope="module")
def xds_project(sandbox_env, tmp_path_factory):
    """Blue live, green under test behind the cookie."""
    project = make_project(tmp_path_factory.mktemp("xds") / "project", sandbox_env)
    try:
        project.deploy_both_colors()
        project.pulumi("config", "set", "--secret", "testToken", TOKEN, "-s", "routing")
        project.pulumi("config", "set", "test", "green", "-s", "routing")
        project.up("routing")
        wait_for_deployment(project.env["BLUEGREEN_URL"], "myapp-green", WAIT, {"cookie": TESTER})
        yield project
    finally:
        project.cleanup()


def answer(url: str, path: str = "/", headers: dict | None = None) -> requests.Response:
    return requests.get(url + path, headers=headers or {}, timeout=10, allow_redirects=False)


def test_users_reach_blue_and_the_test_cookie_reaches_green_by_istiods_config(xds_project):
    url = xds_project.env["BLUEGREEN_URL"]
    user, tester = answer(url, "/"), answer(url, "/", {"cookie": f"a=b; {TESTER}"})
    assert (user.status_code, user.headers["x-sandbox-deployment"], user.headers["x-bluegreen-color"]) == \
        (200, "myapp-blue", "blue")
    assert (tester.status_code, tester.headers["x-sandbox-deployment"], tester.headers["x-bluegreen-color"]) == \
        (200, "myapp-green", "green")
    assert "x-sandbox-gateway" not in user.headers  # the app answered, not the gateway


def test_the_gateway_counts_requests_in_istios_metrics_with_the_destination_istiod_named(xds_project):
    url = xds_project.env["BLUEGREEN_URL"]
    for _ in range(3):
        answer(url, "/", {"cookie": TESTER})
    target = Path(xds_project.env["BLUEGREEN_SANDBOX"]) / "prometheus" / "targets" / \
        f"gateway-{xds_project.namespace}.json"
    metrics_url = "http://" + json.loads(target.read_text())[0]["targets"][0] + "/metrics"
    lines = [line for line in requests.get(metrics_url, timeout=10).text.splitlines()
             if line.startswith("istio_requests_total{") and 'destination_workload="myapp-green"' in line]
    assert lines, "no istio_requests_total series for myapp-green"
    assert 'destination_service="myapp.' + xds_project.namespace + '.svc.cluster.local"' in lines[0]
    assert 'reporter="source"' in lines[0] and 'response_code="200"' in lines[0]
    assert float(lines[0].rsplit(" ", 1)[1]) >= 3


def test_istios_routing_agrees_with_the_programs_own_model_of_who_reaches_which_color(xds_project):
    """components/routes.color_for (what plan.py shows) on the stored VirtualService, against the gateway."""
    url = xds_project.env["BLUEGREEN_URL"]
    http = xds_project.get("virtualservice.networking.istio.io", "myapp-blue-green")["spec"]["http"]
    cookies = ["", TESTER, f"a=b; {TESTER}", f"{TESTER}; a=b", "test=true", f"xtest={TOKEN}", f"{TESTER}x",
               f"a=b;{TESTER}", f"TEST={TOKEN}"]
    paths = ["/", "/ready", "/api/health?full=1", "/a/b/c"]
    extra = [{}, {"x-request-id": "abc"}, {"host": "bluegreen.example.com"}]
    disagreements = []
    for path in paths:
        for cookie in cookies:
            for headers in extra:
                sent = {**headers, **({"cookie": cookie} if cookie else {})}
                modelled = color_for(http, sent, path)
                got = answer(url, path, sent)
                outcome = (got.status_code, got.headers.get("x-sandbox-deployment"))
                if outcome != (200, f"myapp-{modelled}"):
                    disagreements.append((path, cookie, headers, modelled, outcome))
    assert not disagreements, disagreements
    colors = {answered_by(url, {"cookie": c} if c else {})[1] for c in cookies}
    assert colors == {"myapp-blue", "myapp-green"}  # the table exercises both routes


def test_a_flip_moves_users_to_green_within_a_bounded_wait_and_a_rollback_moves_them_back(xds_project):
    url = xds_project.env["BLUEGREEN_URL"]
    xds_project.pulumi("config", "set", "active", "green", "-s", "routing")
    xds_project.pulumi("config", "rm", "test", "-s", "routing")
    try:
        xds_project.up("routing")
        wait_for_deployment(url, "myapp-green", WAIT)  # fails naming the last answer after WAIT
        assert answered_by(url, {"cookie": TESTER}) == (200, "myapp-green")  # no test route once flipped
    finally:
        xds_project.pulumi("config", "set", "active", "blue", "-s", "routing")
        xds_project.pulumi("config", "set", "test", "green", "-s", "routing")
        xds_project.up("routing")
    wait_for_deployment(url, "myapp-blue", WAIT)
    wait_for_deployment(url, "myapp-green", WAIT, {"cookie": TESTER})


def test_a_virtualservice_change_reaches_the_gateway_in_well_under_a_second(xds_project):
    times = propagation_times(xds_project, 5)
    print(f"propagation: {[round(t, 3) for t in times]}")
    assert len(times) == 5 and statistics.median(times) < 5.0
    assert answered_by(xds_project.env["BLUEGREEN_URL"]) == (200, "myapp-blue")  # put back as it was
