"""The policy pack with the real CLI: `pulumi preview --policy-pack policy` blocks a change that breaks
each of its policies. (That it passes on the shipped stacks is shown by test_ci_files.py, whose deploy
pipelines and preview job run it on all three.) The program itself never declares such objects (its
guards refuse first), so a small program of the test's own declares them."""

from __future__ import annotations

import textwrap

from harness.sandbox_project import make_project

POLICIES = ("virtualservice-subsets-defined", "test-route-not-catch-all", "deployment-readiness-probe",
            "deployment-resource-limits", "no-plain-secret-env")

VIOLATING_PROGRAM = """
    import pulumi_kubernetes as k8s

    NAMESPACE = {namespace!r}
    labels = {{"app": "rogue", "color": "blue"}}
    k8s.apps.v1.Deployment("rogue", metadata={{"name": "rogue", "namespace": NAMESPACE}}, spec={{
        "selector": {{"matchLabels": labels}},
        "template": {{"metadata": {{"labels": labels}}, "spec": {{"containers": [{{
            "name": "app", "image": "docker.io/example/rogue:1",
            "env": [{{"name": "DB_PASSWORD", "value": "in-plain-sight"}}]}}]}}}}}})
    k8s.apiextensions.CustomResource(
        "rogue-destinations", api_version="networking.istio.io/v1", kind="DestinationRule",
        metadata={{"name": "rogue", "namespace": NAMESPACE}},
        spec={{"host": "rogue", "subsets": [{{"name": "blue", "labels": {{"color": "blue"}}}}]}})
    k8s.apiextensions.CustomResource(
        "rogue-routes", api_version="networking.istio.io/v1", kind="VirtualService",
        metadata={{"name": "rogue", "namespace": NAMESPACE}},
        spec={{"hosts": ["rogue"], "http": [
            {{"name": "rogue-test", "route": [{{"destination": {{"host": "rogue", "subset": "blue"}}}}]}},
            {{"name": "rogue-default", "route": [{{"destination": {{"host": "rogue", "subset": "green"}}}}]}}]}})
"""


def test_each_policy_blocks_a_change_that_breaks_it(sandbox_env, tmp_path):
    project = make_project(tmp_path / "project", sandbox_env)
    try:
        rogue = tmp_path / "rogue"
        rogue.mkdir()
        (rogue / "Pulumi.yaml").write_text("name: rogue\nruntime: python\n")
        (rogue / "__main__.py").write_text(textwrap.dedent(VIOLATING_PROGRAM.format(namespace=project.namespace)))
        project.run("pulumi", "stack", "init", "dev", "--cwd", str(rogue))
        preview = project.run("pulumi", "preview", "--cwd", str(rogue), "-s", "dev",
                              "--policy-pack", str(project.folder / "policy"), check=False)
        assert preview.code != 0, preview.output
        assert "Traceback" not in preview.output and "bluegreen-guardrails" in preview.output
        blocked = {line.split()[2] for line in preview.output.splitlines()
                   if line.strip().startswith("- [mandatory]")}
        assert blocked == set(POLICIES), preview.output
        assert project.get("deployment", "rogue") is None  # a preview: nothing was made
    finally:
        project.cleanup()

