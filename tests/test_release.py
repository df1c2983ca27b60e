"""scripts/release.py end to end: a stand-in `pulumi` first on PATH, and a gateway on 127.0.0.1 that
routes by what the routing stack deployed. Each test asserts the exact pulumi commands and the
final config of every stack.

The stand-in's commands run in this process (release_world.InProcess: the same code and state file), as a
Python start per command was most of this module's time; the tests using `real_pulumi` run every command
as a process of the executable on PATH, as do the command-line test and tests/test_faults_release.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness.loopback import ROOT, serve
from harness.release_world import World, color_outputs, enter, in_boundary
from bluegreen_tools import release, smoke_test
from bluegreen_tools.release import runner as release_runner

UP = "up --yes --skip-preview -s routing"
ROUTING = "stack output --json -s routing"
# promote green: the test cookie, green's state, the routing (before the record and under it), the test route
START = [
    "config get testCookie -s routing",
    "config get testToken -s routing",
    "stack output --json -s green",
    ROUTING,
    ROUTING,
    "config set test green -s routing",
    UP,
]
PIN_AND_FLIP = ["stack output --json -s green", "config set active green -s routing", "config rm test -s routing", UP]
# After a run that changed the routing and failed: the state read back, and the config compared with it.
REPORT = ["stack output --json -s routing", "config get active -s routing", "config get test -s routing"]
INITIAL_CONFIG = {"routing": {"active": "blue"}, "blue": {"color": "blue"}, "green": {"color": "green"}}
REAL_POPEN = release_runner.popen  # starts the pulumi found on PATH


@pytest.fixture
def world(tmp_path, monkeypatch):
    world = World(tmp_path)
    enter(world, monkeypatch, REAL_POPEN)
    with serve(world.gateway) as url:
        world.url = url
        yield world


@pytest.fixture
def real_pulumi(world, monkeypatch):
    """Every pulumi command a process of the stand-in found on PATH, as release.py runs the real CLI."""
    monkeypatch.setattr(release_runner, "popen", REAL_POPEN)


def run(capfd, *argv: str) -> tuple[int, str, str]:
    """release.py in-process, as its command line runs it: exit code, stdout, stderr."""
    code = in_boundary(release.main, argv)
    out, err = capfd.readouterr()
    return code, out, err


def promote(world, capfd, color="green", *extra):
    return run(capfd, "promote", color, "--url", world.url, "--timeout", "1", "--settle", "0", *extra)


def error_line(err: str) -> str:
    return err.strip().splitlines()[-1]


def set_apps(world, **modes):
    world.change(lambda state: state["apps"].update(modes))


def route_to(world, active, test=None):
    """The routing as deployed with this active and test color."""
    world.change(lambda state: state["stacks"]["routing"].update(
        config={"active": active, **({"test": test} if test else {})}))
    world.deploy_routing()


# --- promote ----------------------------------------------------------------------------------------

@pytest.mark.usefixtures("real_pulumi")
def test_promote_tests_then_flips_and_prints_every_command(world, capfd):
    code, _, err = promote(world, capfd)
    assert code == 0, err
    assert world.calls() == START + PIN_AND_FLIP
    assert world.config() == {**INITIAL_CONFIG, "routing": {"active": "green"}}
    assert world.outputs("routing") == {"active": "green", "activeRelease": "v2"}
    assert world.record_free()
    printed = [line[len("$ pulumi "):] for line in err.splitlines() if line.startswith("$ pulumi ")]
    assert [re.sub(r"'(blue|green) v\d [^']*'", "<lock>", line) for line in printed] == world.calls()
    assert re.search(r"^ok   route testers to green \(\d+\.\d\ds\)$", err, re.M)
    assert re.search(r"^ok   smoke tests of green through the test route \(cookie test=true\) "
                     r"\(\d+\.\d\ds\): 1 of 1 checks passed$", err, re.M)
    assert re.search(r"^ok   flip users to green \(release v2\) \(\d+\.\d\ds\)$", err, re.M)
    assert "green (release v2) is live" in err


def test_smoke_failure_keeps_users_on_the_active_color_and_removes_the_test_route(world, capfd):
    set_apps(world, green="broken")
    code, _, err = promote(world, capfd, "green", "--check", "/api/orders")
    assert code == 1
    assert world.calls() == START + ["config rm test -s routing", UP] + REPORT
    assert world.config() == INITIAL_CONFIG
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert world.record_free()
    assert ("state now, read back from the routing stack's outputs: users are on blue (release v1), no test route"
            in err)
    assert "nothing is left to finish by hand" in err
    message = error_line(err)
    assert message.startswith("error: smoke tests of green failed through the test route, so users stay on blue")
    assert "GET /ready: 500 Internal Server Error" in message and "GET /api/orders: 500" in message
    assert message.endswith("routing restored: users on blue, no test route")


def test_a_failure_after_the_flip_rolls_back_on_its_own(world, capfd):
    set_apps(world, green="fails-for-users")
    code, _, err = promote(world, capfd)
    assert code == 1
    assert world.calls() == START + PIN_AND_FLIP + ["config set active blue -s routing", UP] + REPORT
    assert world.config() == INITIAL_CONFIG
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    message = error_line(err)
    assert message.startswith("error: the default route failed after the flip to green: GET /ready: 500")
    assert message.endswith("routing restored: users on blue, no test route")


def test_a_release_that_changed_while_under_test_is_not_flipped(world, capfd):
    world.hook(UP, patch={"green": {"outputs": {"release": "v3"}}})  # green redeployed during the smoke tests
    code, _, err = promote(world, capfd)
    assert code == 1
    assert world.calls() == START + ["stack output --json -s green", "config rm test -s routing", UP] + REPORT
    assert world.config() == INITIAL_CONFIG
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert "green's release changed from v2 to v3 while it was being tested, so users stay on blue" in error_line(err)


@pytest.mark.usefixtures("real_pulumi")
def test_a_pulumi_up_failing_half_way_puts_the_routing_back(world, capfd):
    world.hook(UP, skip=1, fail="error: update failed: connection reset by peer")  # the flip's up
    code, _, err = promote(world, capfd)
    assert code == 1
    assert world.calls() == START + PIN_AND_FLIP + ["config set active blue -s routing", UP] + REPORT
    assert world.config() == INITIAL_CONFIG
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert world.record_free()
    assert error_line(err) == (
        f"error: `pulumi {UP}` failed (exit 255): error: update failed: connection reset by peer; "
        "routing restored: users on blue, no test route")


def test_when_putting_the_routing_back_fails_too_it_says_what_to_run(world, capfd):
    world.hook(UP, fail="error: the backend is unreachable")  # the test route's up ...
    world.hook(UP, fail="error: the backend is unreachable")  # ... and the one that would undo it
    code, _, err = promote(world, capfd)
    assert code == 1
    assert world.calls() == START + ["config rm test -s routing", UP] + REPORT
    assert world.config() == INITIAL_CONFIG  # config is back; the deployment could not be checked
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}  # the first up failed before it
    assert "to finish by hand:\n  pulumi up --yes --skip-preview -s routing" in err  # to be sure of what runs
    message = error_line(err)
    assert "restoring the routing failed too" in message
    assert message.endswith(f"run: pulumi config set active blue -s routing && pulumi config rm test -s routing "
                            f"&& pulumi {UP}")


def test_promote_refuses_the_active_color(world, capfd):
    code, _, err = promote(world, capfd, "blue")
    assert code == 1
    assert world.calls() == START[:2] + ["stack output --json -s blue", ROUTING]
    assert world.config() == INITIAL_CONFIG and world.lease() is None  # refused before the record is taken
    assert error_line(err) == ("error: blue is already active (release v1): nothing to promote. A new release "
                               "goes to the idle color, green")


@pytest.mark.parametrize("outputs, problem", [
    ({}, "green is not deployed: stack green has no outputs. Deploy it first: pulumi up -s green"),
    (color_outputs("green", "v2", ready_replicas=0), "green (release v2, stack green) has no ready pod"),
    (color_outputs("blue", "v2"), "stack green deploys blue, not green"),
])
def test_promote_refuses_a_color_that_is_not_deployed_and_ready(world, capfd, outputs, problem):
    world.change(lambda state: state["stacks"]["green"].update(outputs=outputs))
    code, _, err = promote(world, capfd)
    assert code == 1
    assert world.calls() == START[:3]
    assert world.config() == INITIAL_CONFIG and world.record_free()
    assert problem in error_line(err)


def test_a_second_promote_is_refused_while_one_is_in_progress(world, capfd):
    held = world.hold_record(color="green", release="v2", phase="testing")
    code, _, err = promote(world, capfd)
    assert code == 1
    assert world.calls() == START[:4]
    assert world.lease() == held  # the other run's record stays as it was
    assert world.config() == INITIAL_CONFIG
    message = error_line(err)
    assert message.startswith("error: a release is in progress (Lease myapp-release in namespace default): promote "
                              "of green (release v2) by alice@ci-7 pid ")
    assert "phase testing; held by alice@ci-7 pid" in message and "renewed until" in message


def test_a_record_whose_run_is_gone_is_refused_naming_resume_and_abort(world, capfd):
    world.hold_record(color="green", release="v2", phase="flipping", expired=True)
    code, _, err = promote(world, capfd)
    assert code == 1 and world.config() == INITIAL_CONFIG
    assert "phase flipping" in error_line(err) and "its holder is gone" in error_line(err)
    assert "`release.py resume` finishes it, `release.py abort` undoes it" in error_line(err)


def test_an_unexpected_crash_puts_the_routing_back_and_releases_the_lock(world, capfd, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("bug in a check")

    monkeypatch.setattr(smoke_test, "run_checks", crash)
    code, _, err = promote(world, capfd)
    assert code == 1
    assert world.calls() == START + ["config rm test -s routing", UP] + REPORT
    assert world.config() == INITIAL_CONFIG and world.record_free()
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert error_line(err) == ("error: unexpected RuntimeError: bug in a check; routing restored: users on blue, "
                               "no test route")
    assert "Traceback" not in err


def test_unlock_gives_back_a_record_left_by_a_killed_run_and_says_what_is_left(world, capfd):
    route_to(world, "blue", test="green")  # a promote killed (SIGKILL) after it deployed the test route
    world.change(lambda state: state["stacks"]["routing"]["config"].update(active="green"))  # and set active
    world.hold_record(color="green", release="v2", phase="testing", expired=True)
    code, _, err = run(capfd, "unlock")
    assert code == 0, err
    assert world.calls() == REPORT
    assert world.record_free() and world.lease().record.phase == "testing"  # given back as it was: not finished
    assert "gave back the release record (promote of green (release v2) by alice@ci-7 pid" in err
    assert "users are on blue (release v1), testers with the cookie on green (release v2)" in err
    assert ("the routing config says active green, but blue is deployed: the next `pulumi up -s routing` would send "
            "users to green") in err
    # Commands that keep users where they are and remove the test route, in order.
    assert err.split("to finish by hand")[1].splitlines()[1:4] == [
        "  pulumi config set active blue -s routing   # keeps users on blue",
        "  pulumi config rm test -s routing",
        "  pulumi up --yes --skip-preview -s routing   # removes the test route to green; users stay on blue"]
    code, _, err = run(capfd, "unlock")
    assert code == 0 and "no release record is held" in err


def test_unlock_refuses_while_the_run_holding_the_record_still_renews_it(world, capfd):
    held = world.hold_record(color="green", release="v2", phase="testing")
    code, _, err = run(capfd, "unlock")
    assert code == 1
    assert world.lease() == held
    assert "Its run still renews it" in error_line(err) and "--force" in error_line(err)
    code, _, err = run(capfd, "unlock", "--force")
    assert code == 0 and world.record_free()


@pytest.mark.parametrize("source", ["environment", "config"])
def test_the_test_token_is_sent_but_never_shown(world, capfd, monkeypatch, tmp_path, source):
    token = "tok-5ecret-1234"
    world.change(lambda state: state["stacks"]["routing"]["config"].update(testToken=token))
    world.deploy_routing()  # the VirtualService matches test=<token>
    if source == "environment":
        monkeypatch.setenv("BLUEGREEN_TEST_TOKEN", token)
    report = tmp_path / "promote.xml"
    code, out, err = promote(world, capfd, "green", "--junit", str(report))
    assert code == 0, err
    reads = START[:1] + ([] if source == "environment" else START[1:2])
    assert world.calls() == reads + START[2:] + PIN_AND_FLIP
    assert "cookie test=[secret]" in err
    assert token not in out + err + report.read_text() + " ".join(world.calls())


def test_a_wrong_cookie_reaches_the_active_color_and_fails_at_once(world, capfd):
    code, _, err = promote(world, capfd, "green", "--cookie", "test=wrong")
    assert code == 1
    assert world.calls() == START[2:] + ["config rm test -s routing", UP] + REPORT
    assert "GET /ready: 200 OK, answered by blue, expected green" in error_line(err)
    assert world.config() == INITIAL_CONFIG


def test_promote_writes_a_junit_report_of_both_routes(world, capfd, tmp_path):
    report = tmp_path / "promote.xml"
    code, _, _ = promote(world, capfd, "green", "--check", "/api", "--junit", str(report))
    assert code == 0
    suites = ET.parse(report).getroot().findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("smoke tests of green through the test route (cookie test=true)", "2", "0"),
        ("checks of green through the default route", "2", "0")]


# --- rollback, decommission, status -----------------------------------------------------------------

def live_on_green(world):
    """Users on green, which went live on v2 from blue on v1, as a finished promote leaves it."""
    route_to(world, "green")
    world.went_live("green", "v2", "blue", "v1")


ROLLBACK = [ROUTING, "stack output --json -s blue", ROUTING, "config set active blue -s routing", UP]


def test_rollback_sends_users_back_to_the_color_that_was_live_before(world, capfd):
    live_on_green(world)
    code, _, err = run(capfd, "rollback")
    assert code == 0, err
    assert world.calls() == ROLLBACK
    assert world.config() == INITIAL_CONFIG
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert "users are on blue (release v1)" in err
    lease = world.lease()
    assert lease.free and (lease.record.kind, lease.record.phase, lease.record.color) == ("rollback", "done", "blue")
    assert (lease.last_live.color, lease.last_live.previous_color) == ("blue", "green")
    code, _, err = run(capfd, "rollback")  # a rollback of the rollback goes back to green, live before it
    assert code == 0, err
    assert world.outputs("routing") == {"active": "green", "activeRelease": "v2"}


@pytest.mark.parametrize("history, problem", [
    (None, "no release is recorded as having gone live before"),
    (("green", "v2", "blue", "v0"), "blue runs release v1, which was never live: before release v2 of green went "
                                    "live, users were on blue (release v0)"),
    (("blue", "v1", "green", "v2"), "the last recorded release sent users to blue (release v1), but users are on "
                                    "green (release v2): the routing was changed by hand since"),
])
def test_rollback_to_a_release_that_was_never_live_asks_for_the_flag_naming_both(world, capfd, history, problem):
    route_to(world, "green")
    if history:
        world.went_live(*history)
    code, _, err = run(capfd, "rollback")
    assert code == 1
    assert world.calls() == [ROUTING, "stack output --json -s blue"]
    assert world.outputs("routing")["active"] == "green" and world.record_free()
    assert problem in error_line(err) and "--allow-never-live sends them to blue (release v1) anyway" in error_line(err)
    code, _, err = run(capfd, "rollback", "--allow-never-live")
    assert code == 0, err
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert problem in err.split("note: ")[1]


def test_rollback_removes_a_test_route_to_the_color_it_goes_back_to(world, capfd):
    live_on_green(world)
    route_to(world, "green", test="blue")  # left by a crashed promote of blue
    code, _, err = run(capfd, "rollback")
    assert code == 0, err
    assert world.calls()[3:6] == ["config set active blue -s routing", "config rm test -s routing", UP]
    assert world.config() == INITIAL_CONFIG


def test_rollback_is_refused_when_the_routing_changed_before_it_held_the_record(world, capfd):
    live_on_green(world)
    # Another run flips users back to blue between this rollback's first read and its take of the record.
    world.hook("stack output --json -s blue", patch={"routing": {"outputs": {"active": "blue"}}})
    code, _, err = run(capfd, "rollback")
    assert code == 1
    assert world.calls() == [ROUTING, "stack output --json -s blue", ROUTING]
    assert world.config() == {**INITIAL_CONFIG, "routing": {"active": "green"}}  # nothing changed
    assert "the routing changed while this run took the release record" in error_line(err)
    assert world.record_free() and world.lease().record.phase == "aborted"


@pytest.mark.parametrize("outputs, problem", [
    ({}, "blue is not deployed"),
    (color_outputs("blue", "v1", ready_replicas=0), "blue (release v1, stack blue) has no ready pod"),
])
def test_rollback_is_refused_when_the_other_color_is_not_ready(world, capfd, outputs, problem):
    route_to(world, "green")
    world.change(lambda state: state["stacks"]["blue"].update(outputs=outputs))
    code, _, err = run(capfd, "rollback")
    assert code == 1
    assert world.calls() == ["stack output --json -s routing", "stack output --json -s blue"]
    assert world.config() == {**INITIAL_CONFIG, "routing": {"active": "green"}}
    assert problem in error_line(err)


def test_decommission_is_refused_for_the_live_color(world, capfd):
    code, _, err = run(capfd, "decommission", "blue")
    assert code == 1
    assert world.calls() == ["stack output --json -s blue", ROUTING, ROUTING]
    assert world.outputs("blue") == color_outputs("blue", "v1")
    assert error_line(err).startswith("error: blue is the active color: users are on it. Roll back first")


def test_decommission_is_refused_for_the_color_under_test(world, capfd):
    route_to(world, "blue", test="green")
    code, _, err = run(capfd, "decommission", "green")
    assert code == 1
    assert world.outputs("green") == color_outputs("green", "v2")
    assert "green is under test" in error_line(err)


def test_decommission_destroys_the_idle_color(world, capfd):
    code, _, err = run(capfd, "decommission", "green")
    assert code == 0, err
    assert world.calls() == ["stack output --json -s green", ROUTING, ROUTING, "destroy --yes -s green"]
    assert world.outputs("green") == {}
    assert world.config() == INITIAL_CONFIG


def test_status_shows_both_colors_the_routes_and_the_record(world, capfd):
    route_to(world, "blue", test="green")
    world.hold_record(color="green", release="v2", phase="testing")
    code, out, _ = run(capfd, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == [
        "COLOR  STACK  ROLE    RELEASE  READY  IMAGE",
        "blue   blue   active  v1       2/2    registry.example.com/myapp:v1",
        "green  green  test    v2       2/2    registry.example.com/myapp:v2",
    ]
    assert re.fullmatch(r"release in progress: promote of green \(release v2\) by alice@ci-7 pid \d+, started \S+, "
                        r"from blue \(release v1\): phase testing; held by alice@ci-7 pid \d+, renewed until \S+",
                        lines[3]), lines[3]
    assert lines[4:] == ["routing config: as deployed"]
    code, out, _ = run(capfd, "status", "--json")
    report = json.loads(out)
    assert (report["active"], report["test"]) == ("blue", "green")
    assert report["releaseInProgress"].startswith("promote of green (release v2) by alice@ci-7")
    assert report["colors"]["green"] == {"stack": "green", "deployed": True, "release": "v2",
                                         "image": "registry.example.com/myapp:v2", "readyReplicas": 2, "replicas": 2}
    record = report["record"]
    assert (record["lease"], record["held"], record["expired"]) == ("default/myapp-release", True, False)
    assert (record["release"]["phase"], record["release"]["who"], record["lastLive"]) == ("testing", "alice", None)
    assert (report["config"], report["configDiffers"], report["problems"]) == (
        {"active": "blue", "test": "green"}, [], [])
    assert world.calls()[-8:] == ["stack output --json -s routing", "stack output --json -s blue",
                                  "stack output --json -s green", "stack export -s routing", "stack export -s blue",
                                  "stack export -s green", "config get active -s routing",
                                  "config get test -s routing"]


def test_status_shows_the_last_release_when_none_is_in_progress(world, capfd):
    live_on_green(world)
    code, out, _ = run(capfd, "status")
    assert code == 0
    assert "release in progress: none" in out
    assert re.search(r"^last release: promote of green \(release v2\) by alice@ci-7 .*: phase done$", out, re.M)


def test_status_shows_where_the_routing_config_differs_from_what_is_deployed(world, capfd):
    world.change(lambda state: state["stacks"]["routing"]["config"].update(active="green"))  # set, never deployed
    code, out, _ = run(capfd, "status")
    assert code == 0
    assert out.splitlines()[-1] == ("config differs: the routing config says active green, but blue is deployed: "
                                    "the next `pulumi up -s routing` would send users to green")
    report = json.loads(run(capfd, "status", "--json")[1])
    assert report["config"] == {"active": "green", "test": None} and len(report["configDiffers"]) == 1


def test_status_says_when_a_stopped_update_may_have_left_the_cluster_unlike_the_outputs(world, capfd):
    urn = "urn:pulumi:routing::bluegreen::kubernetes:networking.istio.io/v1:VirtualService::routes"
    world.change(lambda state: state["stacks"]["routing"].update(
        pending_operations=[{"type": "updating", "resource": {"urn": urn}}]))
    code, out, _ = run(capfd, "status")
    assert code == 0
    assert out.splitlines()[-1] == (
        f"problem: stack routing's last update was stopped half-way (updating of {urn} never finished), so what it "
        "says here may not be what the cluster holds: `pulumi refresh --yes -s routing` reads the cluster back "
        "(first `pulumi cancel --yes -s routing` if its lock was left too)")
    assert len(json.loads(run(capfd, "status", "--json")[1])["problems"]) == 1


def test_status_shows_a_malformed_output_as_a_problem_not_a_traceback(world, capfd):
    world.change(lambda state: state["stacks"]["green"]["outputs"].update(readyReplicas="two", image="x\x1b[2Jy"))
    code, out, err = run(capfd, "status")
    assert code == 0, err
    assert "green  green  idle    v2       None/2  x\\x1b[2Jy" in out  # escaped, not sent to the terminal
    assert 'problem: stack green\'s output readyReplicas is "two", not a whole number of pods' in out


# --- the command line ---------------------------------------------------------------------------------

def test_the_command_line_exits_0_1_2_without_a_traceback(world):
    def cli(*argv):
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "release.py"), *argv], capture_output=True,
                              text=True, timeout=60)

    bad = cli("promote", "red", "--url", world.url)
    assert bad.returncode == 2 and "invalid choice: 'red'" in bad.stderr
    no_url = cli("promote", "green")
    assert no_url.returncode == 2 and "BLUEGREEN_URL" in no_url.stderr
    set_apps(world, green="broken")
    failed = cli("promote", "green", "--url", world.url, "--timeout", "1", "--settle", "0")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("error: smoke tests of green failed")
    for done in (bad, no_url, failed):
        assert "Traceback" not in done.stdout + done.stderr
    assert cli("status").returncode == 0


@pytest.mark.usefixtures("real_pulumi")
def test_a_missing_pulumi_cli_is_one_clear_line(world, capfd, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run(capfd, "status")
    assert code == 1
    assert error_line(err).startswith("error: the pulumi CLI is not on PATH")


# --- time limits --------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, environment, message", [
    (["status", "--update-timeout", "0"], {}, "'0' is not a time limit: give a number of seconds above 0"),
    (["status", "--cancel-grace", "soon"], {}, "'soon' is not a number of seconds"),
    (["status"], {"BLUEGREEN_COMMAND_TIMEOUT": "two minutes"},
     "BLUEGREEN_COMMAND_TIMEOUT='two minutes' is not a number of seconds above 0 (--command-timeout): set it to "
     "e.g. 120, or unset it"),
])
def test_a_bad_time_limit_is_bad_usage_naming_the_flag_or_variable(argv, environment, message, capsys, monkeypatch):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit:
        release.main(argv)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_a_flag_wins_over_its_environment_variable_which_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("BLUEGREEN_UPDATE_TIMEOUT", "600")
    args = release.parse_args(["status", "--command-timeout", "30"])
    assert (args.update_timeout, args.command_timeout, args.cancel_grace) == (600, 30, 60)


def test_a_refused_update_names_the_programs_own_reason_in_its_one_line_error(tmp_path, monkeypatch):
    """A streamed `pulumi up` prints its Diagnostics on stdout: the error line carries the program's refusal,
    not "it printed no error", and the progress still reaches stderr as it comes."""
    from bluegreen_tools.cli import Session
    from bluegreen_tools.release.runner import PulumiError, Runner

    recorded = ROOT / "tests" / "harness" / "engine_outputs" / "up_runerror.txt"
    fake = tmp_path / "pulumi"
    fake.write_text(f"#!/bin/sh\ncat {recorded}\necho 'error: update failed' >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(PulumiError) as refused:
        Runner(Session()).pulumi("up", "--yes", "-s", "routing", stream=True)
    message = str(refused.value)
    assert message.startswith("`pulumi up --yes -s routing` failed (exit 255): ")
    assert "green (release v1.1.0) has no ready pod in the cluster now" in message
    assert "unhandled error" not in message and "\n" not in message
