"""Every guard through the real engine: a non-zero exit, the message, and nothing changed, neither in
the cluster nor in the stack's state."""

from __future__ import annotations

import json

import pytest

from harness.sandbox_project import Project, make_project

STACKS = ("blue", "green", "routing", "empty")


@pytest.fixture(scope="module")
def released(sandbox_env, tmp_path_factory) -> Project:
    project = make_project(tmp_path_factory.mktemp("guards") / "project", sandbox_env)
    project.deploy_both_colors("empty")  # a stack that deploys nothing
    yield project
    project.cleanup()


def state(project: Project, stack: str) -> tuple[dict, dict, dict]:
    """For before/after: the cluster's objects (with resourceVersions), the managed resources of the stack
    being updated (`pulumi stack export`), and every stack's config file and checkpoint (an update writes
    only its own stack's checkpoint; the bytes show any other change).

    Reads are left out of the export: the program reads the other stacks (StackReference) and the live
    Deployments before its guards run, and the engine records what it read, refused update or not. Those
    entries (`external: true`) mirror objects this stack does not own; nothing it manages changes."""
    managed = {resource["urn"]: json.dumps(resource, sort_keys=True)
               for resource in project.export(stack)["deployment"].get("resources") or []
               if not resource.get("external")}
    files = {name: project.fingerprint(name) for name in STACKS if name != stack}
    return project.objects(), managed, files


def refused(project: Project, stack: str, *messages: str) -> str:
    """`pulumi up` fails with these words in its output, and changes nothing."""
    before = state(project, stack)
    run = project.up(stack, check=False)
    assert run.code != 0, run.output
    for message in messages:
        assert message in run.output, run.output
    assert "Traceback" not in run.output
    after = state(project, stack)
    assert after[0] == before[0], "the cluster changed"
    changed = {urn for urn in before[1].keys() | after[1].keys() if before[1].get(urn) != after[1].get(urn)}
    assert not changed, f"state changed: {changed}"
    assert after[2] == before[2], "another stack's config or state changed"
    return run.output


def with_config(project: Project, stack: str, **config):
    """Set config for one refused update, then put the stack file back as it was."""
    class Scope:
        def __enter__(self):
            self.file = project.folder / f"Pulumi.{stack}.yaml"
            self.text = self.file.read_text()
            for key, value in config.items():
                if value is None:
                    project.pulumi("config", "rm", key, "-s", stack)
                else:  # `--`: a value such as -1 is not a flag
                    project.pulumi("config", "set", key, "-s", stack, "--", value)

        def __exit__(self, *exc):
            self.file.write_text(self.text)
    return Scope()


def test_a_stack_with_both_roles_is_refused(released):
    with with_config(released, "blue", active="blue"):
        refused(released, "blue", "bluegreen:color", "bluegreen:active")


def test_test_equal_to_active_is_refused(released):
    with with_config(released, "routing", test="blue"):
        refused(released, "routing", "bluegreen:test", "blue")


def test_routing_to_a_color_whose_stack_has_nothing_deployed_is_refused(released):
    with with_config(released, "routing", active="green", greenStack="organization/bluegreen/empty"):
        refused(released, "routing", "has no deployed green workload", "pulumi up -s organization/bluegreen/empty")


def test_routing_to_a_stack_of_the_other_color_is_refused(released):
    with with_config(released, "routing", blueStack="organization/bluegreen/green",
                     greenStack="organization/bluegreen/blue"):
        refused(released, "routing", "deploys 'green', not 'blue'")


def test_one_stack_for_both_colors_is_refused(released):
    with with_config(released, "routing", test="green", greenStack="organization/bluegreen/blue"):
        refused(released, "routing", "blue and green must be different stacks")


@pytest.mark.parametrize("key, value, words", [
    ("image", None, "bluegreen:image"),
    ("image", "Not An Image", "bluegreen:image"),
    ("replicas", "-1", "bluegreen:replicas"),
    ("port", "70000", "bluegreen:port"),
])
def test_bad_color_config_is_refused_naming_the_key(released, key, value, words):
    with with_config(released, "green", **{key: value}):
        refused(released, "green", words)


def test_changing_the_live_colors_release_is_refused(released):
    with with_config(released, "blue", image="docker.io/example/myapp:v9.9.9"):
        refused(released, "blue", "blue is the live color", "v9.9.9", "allowLiveUpdate")


def test_a_color_scaled_to_zero_by_hand_is_refused_as_a_test_target(released):
    released.kubectl("scale", "deployment", "myapp-green", "--replicas=0", "-n", released.namespace)
    released.kubectl("wait", "--for=delete", "pod", "-l", "app=myapp,color=green", "-n", released.namespace,
                     "--timeout=60s")
    try:
        with with_config(released, "routing", test="green"):
            refused(released, "routing", "green (release v1.1.0) has no ready pod in the cluster now")
    finally:
        released.kubectl("scale", "deployment", "myapp-green", "--replicas=1", "-n", released.namespace)
        released.kubectl("rollout", "status", "deployment/myapp-green", "-n", released.namespace, "--timeout=60s")


def test_a_hand_edited_release_label_is_refused_and_the_fix_it_names_works(released):
    patch = json.dumps({"spec": {"template": {"metadata": {"labels": {"release": "hand-edit"}}}}})
    released.kubectl("patch", "deployment", "myapp-green", "-n", released.namespace, "-p", patch)
    released.kubectl("rollout", "status", "deployment/myapp-green", "-n", released.namespace, "--timeout=60s")
    with with_config(released, "routing", test="green"):
        output = refused(released, "routing", "runs release 'hand-edit'", "deployed 'v1.1.0'")
        fix = "pulumi up --refresh -s organization/bluegreen/green"
        assert f"Fix: {fix}" in output
        released.pulumi("up", "--yes", *fix.split()[2:])  # the named fix, made non-interactive
        released.kubectl("rollout", "status", "deployment/myapp-green", "-n", released.namespace, "--timeout=60s")
        released.up("routing")  # the label check passes now, and testers reach green
    labels = released.get("deployment", "myapp-green")["spec"]["template"]["metadata"]["labels"]
    assert labels["release"] == "v1.1.0"
    released.up("routing")
