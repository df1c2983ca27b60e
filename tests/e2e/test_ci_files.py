"""The CI files for real: the commands of the Semaphore pipelines and of the GitHub preview workflow,
read out of the files and run in order against the sandbox, their secrets given as environment.

What is not run, and why: Semaphore's `checkout` and `.semaphore/prologue.sh` (they fetch the
repository and install the CLI and the virtualenvs from the network; the test's project copy has
them), and the workflow's `uses:` steps other than pulumi/actions, which is run as the CLI command
its inputs stand for: `pulumi preview --diff --stack S --policy-pack P`."""

from __future__ import annotations

import re

import pytest
import yaml

from harness.sandbox_project import ROOT, Project, make_project

TOKEN = "ci-t0ken-" + "z" * 20
WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"


def semaphore_commands(pipeline: str) -> list[str]:
    """Every job command of a Semaphore pipeline file, in order."""
    spec = yaml.safe_load((ROOT / ".semaphore" / pipeline).read_text())
    return [command for block in spec["blocks"] for job in block["task"]["jobs"] for command in job["commands"]]


def run_pipeline(project: Project, pipeline: str, env=None) -> list:
    return [project.run("bash", "-euo", "pipefail", "-c", command, env=env) for command in semaphore_commands(pipeline)]


def workflow_step(job: str, name: str) -> dict:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"][job]["steps"]
    return next(step for step in steps if step.get("name") == name or step.get("id") == name
                or step.get("uses", "").startswith(name))


def run_step(project: Project, step: dict, env: dict[str, str]):
    """A `run:` step as GitHub runs it (`bash -e`), with the ${{ }} expressions it uses given as env."""
    script = re.sub(r"\$\{\{[^}]*\}\}", "", step["run"])
    return project.run("bash", "-e", "-c", script, env=env)


def default_subset(project: Project) -> str:
    return project.get("virtualservice.networking.istio.io", "myapp-blue-green")["spec"]["http"][-1]["route"][0][
        "destination"]["subset"]


@pytest.fixture(scope="module")
def ci(sandbox_env, tmp_path_factory) -> Project:
    project = make_project(tmp_path_factory.mktemp("ci") / "project", sandbox_env)
    project.init_stacks("blue", "green", "routing")
    for color in ("blue", "green"):
        project.pulumi("config", "set", "replicas", "1", "-s", color)
    project.pulumi("config", "set", "--secret", "testToken", TOKEN, "-s", "routing")
    yield project
    project.cleanup()


def test_the_semaphore_pipelines_do_what_their_names_say_in_the_tutorials_order(ci):
    run_pipeline(ci, "deploy-blue.yml")  # pulumi up --policy-pack policy: the pack passes the shipped stack
    assert ci.get("deployment", "myapp-blue")["status"]["readyReplicas"] == 1
    ci.up("routing")  # the first release: the routing stack is set up once, by hand (README quickstart)

    run_pipeline(ci, "deploy-green.yml")
    assert ci.outputs("green")["release"] == "v1.1.0"
    assert default_subset(ci) == "blue"  # deploying green touched no route

    env = {"BLUEGREEN_URL": ci.env["BLUEGREEN_URL"], "BLUEGREEN_TEST_TOKEN": TOKEN}  # the `bluegreen` secret
    run_pipeline(ci, "activate-green.yml", env)
    assert default_subset(ci) == "green"

    run_pipeline(ci, "rollback.yml", env)
    assert default_subset(ci) == "blue"

    refused = ci.run("bash", "-c", semaphore_commands("decommission-blue.yml")[0], check=False)
    assert refused.code == 1 and "blue is the active color" in refused.output  # never while blue is live

    run_pipeline(ci, "activate-green.yml", env)
    run_pipeline(ci, "decommission-blue.yml", env)
    assert ci.get("deployment", "myapp-blue") is None and default_subset(ci) == "green"


def test_the_github_plan_step_plans_the_change_against_the_target_branch(ci, tmp_path):
    """After the pipelines above green is live: a new image for green is refused, one for blue is planned."""
    git = "git -c user.email=ci@example.com -c user.name=ci"
    (ci.folder / ".gitignore").write_text(".pulumi-state/\nvenv\npolicy/venv\nplan.md\nplan-manifests/\n")
    ci.run("bash", "-c", f"git init -q -b main && git add -A && {git} commit -q -m base "
                         "&& git update-ref refs/remotes/origin/main HEAD")
    step = workflow_step("plan", "plan")

    def plan(color: str) -> tuple[str, str]:
        ci.run("bash", "-c", f"git checkout -q -- . && sed -i 's/myapp:v1\\.[01]\\.0/myapp:v1.2.0/' "
                             f"Pulumi.{color}.yaml")
        outputs, summary = tmp_path / f"output-{color}", tmp_path / f"summary-{color}"
        run_step(ci, step, {"GITHUB_BASE_REF": "main", "GITHUB_OUTPUT": str(outputs),
                            "GITHUB_STEP_SUMMARY": str(summary)})
        text = (ci.folder / "plan.md").read_text()
        assert text.startswith("<!-- bluegreen-plan -->") and summary.read_text() == text
        return outputs.read_text(), text

    status, text = plan("green")
    assert status == "status=1\n" and "refused: the program would refuse stack green" in text
    status, text = plan("blue")
    assert status == "status=0\n" and "v1.2.0" in text and "refused" not in text.splitlines()[1]


@pytest.mark.parametrize("stack", ["blue", "green", "routing"])
def test_the_github_preview_job_previews_each_stack_with_the_policy_pack(ci, stack, tmp_path):
    secrets = {"PULUMI_ACCESS_TOKEN": "file-backend-needs-none", "KUBECONFIG_DATA": open(ci.env["KUBECONFIG"]).read(),
               "KUBECONFIG": str(tmp_path / ".kubeconfig"), "GITHUB_OUTPUT": str(tmp_path / "github_output")}
    run_step(ci, workflow_step("preview", "Check the environment's credentials"), secrets)
    assert "configured=true" in (tmp_path / "github_output").read_text()
    run_step(ci, workflow_step("preview", "Write the kubeconfig"), secrets)
    inputs = workflow_step("preview", "pulumi/actions")["with"]
    command = ["pulumi", inputs["command"], "--stack", f"organization/bluegreen/{stack}"]
    if inputs.get("diff"):
        command.append("--diff")
    command += [word for pack in str(inputs["policyPacks"]).split() for word in ("--policy-pack", pack)]
    previewed = ci.run(*command, env={"KUBECONFIG": secrets["KUBECONFIG"]})
    assert "bluegreen-guardrails" in previewed.output and "Traceback" not in previewed.output
    assert TOKEN not in previewed.output
