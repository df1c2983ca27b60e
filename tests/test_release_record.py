"""release.py with its release record: a run that died is resumed or aborted by another host from the record
alone (its phase, its routing), a successful release stays one whatever signal comes at its end, and the
record says where users were, for `rollback`. The world of tests/test_release.py: the stand-in `pulumi` and
`kubectl` (the Lease) first on PATH, and a gateway that routes by what the routing stack deployed."""

from __future__ import annotations

import signal

import pytest

from bluegreen_tools import release
from bluegreen_tools.record import LeaseStore
from bluegreen_tools.release import runner as release_runner
from harness.loopback import serve
from harness.release_world import World, enter, in_boundary

UP = "up --yes --skip-preview -s routing"
TO_GREEN = ["config set active green -s routing", "config rm test -s routing", UP]
TO_BLUE = ["config set active blue -s routing", "config rm test -s routing", UP]
TEST_GREEN = ["config set active blue -s routing", "config set test green -s routing", UP]


@pytest.fixture
def world(tmp_path, monkeypatch):
    world = World(tmp_path)
    enter(world, monkeypatch, release_runner.popen)
    with serve(world.gateway) as url:
        world.url = url
        yield world


def run(capfd, *argv):
    code = in_boundary(release.main, argv)
    out, err = capfd.readouterr()
    return code, out, err


def recover(world, capfd, verb, *extra):
    return run(capfd, verb, "--url", world.url, "--timeout", "1", "--settle", "0", *extra)


def killed_at(world, phase):
    """A promote of green killed (SIGKILL, its machine lost) in `phase`: what it left deployed, and its record,
    expired. The other host's checkout has the committed config: active blue, no test."""
    deployed = {"testing": ("blue", "green"), "flipping": ("green", None), "checking": ("green", None)}[phase]
    world.change(lambda state: state["stacks"]["routing"].update(
        config={"active": deployed[0], **({"test": deployed[1]} if deployed[1] else {})}))
    world.deploy_routing()
    world.change(lambda state: state["stacks"]["routing"].update(config={"active": "blue"}))
    world.hold_record(color="green", release="v2", phase=phase, expired=True)


def line(err):
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("phase, steps", [
    ("testing", TEST_GREEN + TO_GREEN),  # the test route again, its smoke tests, the flip, the checks
    ("flipping", TO_GREEN),
    ("checking", []),  # the flip had finished: only the checks that never ran, and the record given back
])
def test_resume_finishes_a_killed_promote_from_its_phase_on_another_host(world, capfd, phase, steps):
    killed_at(world, phase)
    code, _, err = recover(world, capfd, "resume")
    assert code == 0, err
    assert [call for call in world.calls() if not call.startswith(("config get", "stack output"))] == steps
    assert world.outputs("routing") == {"active": "green", "activeRelease": "v2"}
    lease = world.lease()
    assert lease.free and lease.record.phase == "done" and lease.last_live.color == "green"
    assert "resume: promote of green (release v2) by alice@ci-7" in err and f"phase {phase}" in err
    assert line(err) == ("resume done: users on green, no test route; commit Pulumi.routing.yaml: bluegreen:active: "
                         "green, no bluegreen:test")


@pytest.mark.parametrize("phase", ["testing", "flipping", "checking"])
def test_abort_puts_users_back_where_they_were_before_the_killed_release(world, capfd, phase):
    killed_at(world, phase)
    code, _, err = run(capfd, "abort")
    assert code == 0, err
    assert [call for call in world.calls() if not call.startswith(("config get", "stack output"))] == TO_BLUE
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert world.lease().free and world.lease().record.phase == "aborted" and world.lease().last_live is None
    assert line(err) == ("abort done: users on blue, no test route; commit Pulumi.routing.yaml: bluegreen:active: "
                         "blue, no bluegreen:test")


def test_a_resume_whose_checks_fail_undoes_the_release(world, capfd):
    killed_at(world, "checking")
    world.change(lambda state: state["apps"].update(green="fails-for-users"))
    code, _, err = recover(world, capfd, "resume")
    assert code == 1
    assert world.outputs("routing") == {"active": "blue", "activeRelease": "v1"}
    assert world.lease().free and world.lease().record.phase == "aborted"
    assert "checks of green through the default route failed" in line(err)
    assert line(err).endswith("the release was undone: users on blue, no test route; commit Pulumi.routing.yaml: "
                              "bluegreen:active: blue, no bluegreen:test")


def test_a_resume_that_meets_the_killed_runs_lock_undoes_nothing_and_finishes_after_a_cancel(world, capfd):
    """The killed run's `pulumi up` died with it and left the stack locked: a failed check would undo the release,
    but a lock is no verdict on green, and the undo would meet the same lock."""
    killed_at(world, "testing")
    world.change(lambda state: state["stacks"]["routing"].update(locked_by=4242))
    code, _, err = recover(world, capfd, "resume")
    assert code == 1
    assert [call for call in world.calls() if call.startswith("up")] == [UP]  # the test route's up, refused
    assert not world.lease().free and world.lease().record.phase == "testing"
    assert "nothing is undone: the routing stack is locked" in err
    assert ("the release record stays in phase testing: if no pulumi command runs on stack routing any more (the "
            "lock's holder is gone): `pulumi cancel --yes -s routing`, then run `python scripts/release.py resume` "
            "again") in err
    assert "currently locked" in line(err)
    world.change(lambda state: state["stacks"]["routing"].pop("locked_by"))  # the operator's `pulumi cancel`
    from harness import fake_kubectl
    fake_kubectl.age(world.leases_file, "default", "myapp-release", 61)  # this run is gone: its lease lapses
    code, _, err = recover(world, capfd, "resume")
    assert code == 0, err
    assert world.outputs("routing") == {"active": "green", "activeRelease": "v2"}
    assert world.lease().free and world.lease().record.phase == "done"


def test_resume_and_abort_refuse_a_record_whose_run_still_renews_it(world, capfd):
    held = world.hold_record(color="green", release="v2", phase="testing")
    for verb in ("resume", "abort"):
        code, _, err = recover(world, capfd, verb)
        assert code == 1 and world.lease() == held and world.calls() == []
        assert "Its run still renews it" in line(err) and "on ci-7" in line(err)


def test_resume_with_nothing_in_progress_says_so_and_changes_nothing(world, capfd):
    code, _, err = recover(world, capfd, "resume")
    assert code == 0 and world.calls() == [] and world.lease() is None
    assert "no release is in progress: nothing to resume" in err


def test_resume_that_must_check_through_the_gateway_needs_its_url_before_it_changes_anything(world, capfd):
    killed_at(world, "testing")
    code, _, err = run(capfd, "resume")
    assert code == 1 and world.calls() == []
    assert "give its URL with --url or $BLUEGREEN_URL (nothing was changed)" in line(err)
    assert not world.lease().free and world.lease().record.phase == "testing"


def test_a_signal_while_the_record_is_given_back_leaves_a_good_release_a_success(world, capfd, monkeypatch):
    finish = LeaseStore.finish

    def signalled_meanwhile(store, *args, **kwargs):
        signal.raise_signal(signal.SIGTERM)  # CI cancels the job just as the release ends
        return finish(store, *args, **kwargs)

    monkeypatch.setattr(LeaseStore, "finish", signalled_meanwhile)
    code, _, err = run(capfd, "promote", "green", "--url", world.url, "--timeout", "1", "--settle", "0")
    assert code == 0, err
    assert world.outputs("routing") == {"active": "green", "activeRelease": "v2"}
    assert world.lease().free and world.lease().record.phase == "done"
    assert ("note: a signal (SIGTERM) came after the release had succeeded; the record was given back all the "
            "same") in err
    assert "second signal" not in err and line(err).startswith("green (release v2) is live")


def test_a_restore_that_fails_leaves_the_record_restoring_and_abort_finishes_it(world, capfd, monkeypatch):
    world.hook(UP, skip=1, fail="error: the backend is unreachable")  # the flip fails ...
    world.hook(UP, fail="error: the backend is unreachable")  # ... and so does the restore's update
    code, _, err = run(capfd, "promote", "green", "--url", world.url, "--timeout", "1", "--settle", "0")
    assert code == 1
    lease = world.lease()
    assert not lease.free and lease.record.phase == "restoring"
    assert "the release record stays in phase restoring: `python scripts/release.py resume` finishes it" in err
    world.change(lambda state: state["stacks"]["routing"].update(config={"active": "blue"}))
    from harness import fake_kubectl
    fake_kubectl.age(world.leases_file, "default", "myapp-release", 61)  # as seen from another host, later
    code, _, err = run(capfd, "abort")
    assert code == 0, err
    assert world.outputs("routing")["active"] == "blue" and world.lease().record.phase == "aborted"


def test_a_killed_decommission_is_given_back_and_named_for_a_rerun(world, capfd):
    world.hold_record(kind="decommission", color="green", release="v2", expired=True)
    code, _, err = run(capfd, "abort")
    assert code == 0, err
    assert world.calls() == [] and world.lease().free
    assert "`release.py decommission green` finishes it" in err
