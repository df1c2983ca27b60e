"""The CI workflows users copy: .github/workflows/preview.yml and the Semaphore pipelines (.semaphore/).

They parse; the GitHub workflow validates against the published workflow schema; every command they run
that belongs to this repository exists with the flags they pass; the tag conditions, evaluated as written
in the files, start the deploy of the right color.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import re
import shlex
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from bluegreen_tools import plan, release

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github" / "workflows" / "preview.yml"
SEMAPHORE = ROOT / ".semaphore"
PIPELINES = sorted(SEMAPHORE.glob("*.yml"))

class ParseError(Exception):
    pass


class Refusing:
    """A script's own argparse parser, raising ParseError with argparse's message instead of exiting."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser

    def parse_args(self, arguments):
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                return self.parser.parse_args(arguments)
        except SystemExit:
            raise ParseError(errors.getvalue().strip().splitlines()[-1]) from None


def plan_parser() -> Refusing:
    return Refusing(plan.build_parser())


def release_parser() -> Refusing:
    return Refusing(release.build_parser())


SCRIPTS = {"scripts/plan.py": plan_parser, "scripts/release.py": release_parser}


def load(path: Path):
    document = yaml.safe_load(path.read_text())
    if True in document:  # YAML 1.1 reads GitHub's `on:` as a boolean key
        document["on"] = document.pop(True)
    return document


# ---------------------------------------------------------------- the commands the files run


def github_steps():
    for job_name, job in load(GITHUB)["jobs"].items():
        for step in job["steps"]:
            yield job_name, step


def semaphore_commands(document):
    config = document.get("global_job_config") or {}
    yield from (config.get("prologue") or {}).get("commands", [])
    for block in document["blocks"]:
        task = block["task"]
        yield from (task.get("prologue") or {}).get("commands", [])
        for job in task["jobs"]:
            yield from job["commands"]


def shell_lines(script: str):
    """The commands of a shell script, one per line, continuations joined, comments and blanks dropped."""
    for line in script.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            yield line


def all_commands():
    """(where, command line) for every command any workflow or pipeline runs."""
    for job_name, step in github_steps():
        for line in shell_lines(step.get("run", "")):
            yield f"preview.yml job {job_name}", line
    for path in PIPELINES:
        for command in semaphore_commands(load(path)):
            for line in shell_lines(command):
                yield path.name, line
    for line in shell_lines((SEMAPHORE / "prologue.sh").read_text()):
        yield "prologue.sh", line


def invocations(script: str):
    """(where, arguments) for each run of a repository script, e.g. scripts/plan.py."""
    for where, line in all_commands():
        words = shlex.split(line)
        for index, word in enumerate(words):
            if word == script:
                arguments = []
                for argument in words[index + 1:]:
                    if argument in (">", "|", "&&", ";") or argument.startswith(">"):
                        break
                    arguments.append(argument)
                yield where, arguments


def repository_paths(words: list[str]):
    """(path, whether it exists) for each file or folder of this repository that a command names."""
    for index, word in enumerate(words):
        previous = words[index - 1] if index else ""
        if previous == "-r" or (previous in ("source", ".") and index == 1):
            yield word, (ROOT / word).is_file()
        elif previous == "--policy-pack":
            yield word, (ROOT / word / "PulumiPolicy.yaml").is_file()
        elif re.fullmatch(r"(scripts|\.semaphore|policy)/[\w./-]+\.(py|sh)", word):
            yield word, (ROOT / word).is_file()


def test_every_repository_path_a_command_names_exists():
    named = {(where, path): exists for where, line in all_commands() for path, exists in repository_paths(shlex.split(line))}
    assert [f"{where}: {path}" for (where, path), exists in named.items() if not exists] == []
    assert {path for _, path in named} >= {"requirements-dev.lock", "requirements.lock", "policy/requirements.lock",
                                          ".semaphore/prologue.sh", ".semaphore/install-pulumi.sh", "policy",
                                          "scripts/plan.py", "scripts/release.py"}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scripts_are_run_with_flags_they_accept(script):
    runs = list(invocations(script))
    assert runs, f"no workflow runs {script}"
    parser = SCRIPTS[script]()
    for where, arguments in runs:
        try:
            parser.parse_args(arguments)
        except ParseError as error:
            pytest.fail(f"{where}: {script} {' '.join(arguments)}: {error}")


def test_a_bad_flag_would_be_caught():
    """The check above is not vacuous: these are refused."""
    for parser, arguments in ((plan_parser(), ["--base"]), (plan_parser(), ["--format", "html"]),
                              (release_parser(), ["promote", "purple"]), (release_parser(), ["rollback", "--url", "x"])):
        with pytest.raises(ParseError):
            parser.parse_args(arguments)


# ---------------------------------------------------------------- GitHub: the pull-request preview


def test_preview_workflow_matches_the_github_workflow_schema():
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "github-workflows.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(load(GITHUB), schema, cls=jsonschema.Draft7Validator)


def test_preview_runs_tests_then_plans_against_the_target_branch_and_comments():
    document = load(GITHUB)
    assert "pull_request" in document["on"]
    steps = [step for job, step in github_steps() if job == "plan"]
    runs = [step.get("run", "") for step in steps]
    test_at = next(i for i, run in enumerate(runs) if "pytest" in run)
    plan_at = next(i for i, run in enumerate(runs) if "scripts/plan.py" in run)
    assert test_at < plan_at
    [(_, arguments)] = [r for r in invocations("scripts/plan.py") if r[0] == "preview.yml job plan"]
    args = plan.build_parser().parse_args(arguments)
    assert args.base == "origin/${GITHUB_BASE_REF}" and args.format == "markdown"
    assert document["jobs"]["plan"]["steps"][0]["with"]["fetch-depth"] == 0  # git show needs the base branch
    comment = next(step for step in steps if step.get("uses", "").startswith("actions/github-script"))
    assert plan.MARKER in comment["with"]["script"]  # it finds and updates its own comment
    assert document["permissions"] == {"contents": "read"}  # each job asks for what it needs
    assert document["jobs"]["plan"]["permissions"]["pull-requests"] == "write"


def test_the_preview_runs_istioctl_analyze_on_the_planned_manifests_with_the_sandboxs_istio():
    steps = [step for job, step in github_steps() if job == "plan"]
    runs = [step.get("run", "") for step in steps]
    plan_at = next(i for i, run in enumerate(runs) if "scripts/plan.py" in run)
    analyze_at = next(i for i, run in enumerate(runs) if "istioctl\" analyze" in run)
    [(_, arguments)] = [r for r in invocations("scripts/plan.py") if r[0] == "preview.yml job plan"]
    out = plan.build_parser().parse_args(arguments).out
    assert plan_at < analyze_at and f"analyze --use-kube=false {out}/*.yaml" in runs[analyze_at]
    assert steps[analyze_at]["if"] == "steps.plan.outputs.status == '0'"  # a refused config plans no manifests
    assert "set -o pipefail" in runs[analyze_at]  # tee must not hide istioctl's exit status
    # istioctl is built from the module that pins istio.io/istio for the sandbox, with Go of that module's go line
    assert "go -C sandbox/istio build" in runs[analyze_at] and "istio.io/istio/istioctl/cmd/istioctl" in runs[analyze_at]
    [setup_go] = [step for step in steps[plan_at:analyze_at] if step.get("uses", "").startswith("actions/setup-go@")]
    assert setup_go["with"] == {"go-version-file": "sandbox/istio/go.mod", "cache-dependency-path": "sandbox/istio/go.sum"}
    assert re.search(r"^\s+istio\.io/istio v\S+", (ROOT / "sandbox/istio/go.mod").read_text(), re.M)


def test_pulumi_preview_runs_for_each_stack_only_with_credentials():
    jobs = load(GITHUB)["jobs"]
    preview = jobs["preview"]
    assert preview["environment"] == "cluster-preview" and preview["needs"] == "plan"
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"  # never a fork
    stacks = preview["strategy"]["matrix"]["stack"]
    assert sorted(stacks) == sorted(plan.stack_names([p.name for p in ROOT.iterdir()]))
    [action] = [step for step in preview["steps"] if step.get("uses", "").startswith("pulumi/actions@")]
    assert action["with"]["command"] == "preview" and action["with"]["diff"] is True
    assert (ROOT / action["with"]["policyPacks"] / "PulumiPolicy.yaml").is_file()
    assert action["with"]["stack-name"].endswith("/bluegreen/${{ matrix.stack }}")
    check, *rest = preview["steps"]
    assert check["id"] == "credentials" and set(check["env"]) == {"KUBECONFIG_DATA"}
    assert all(step["if"] == "steps.credentials.outputs.configured == 'true'" for step in rest)


# ---------------------------------------------------------------- Semaphore: the tutorial's pipelines


class Condition:
    """Semaphore's `when` conditions, as far as these pipelines use them: = != =~ !~ AND OR NOT ( ) 'text'."""

    TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<op>=~|!~|!=|=|\(|\))|(?P<word>\w+))")

    def __init__(self, text: str):
        self.tokens, position = [], 0
        while position < len(text.rstrip()):
            match = self.TOKEN.match(text, position)
            if not match:
                raise ValueError(f"cannot read condition {text!r} at {text[position:]!r}")
            kind = match.lastgroup
            value = match[kind]
            self.tokens.append((kind, value[1:-1].replace("\\'", "'") if kind == "string" else value))
            position = match.end()

    def evaluate(self, context: dict) -> bool:
        self.position, self.context = 0, context
        result = self._or()
        assert self.position == len(self.tokens), "trailing tokens"
        return result

    def _next(self):
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _peek_word(self, *words):
        return self.position < len(self.tokens) and self.tokens[self.position][1].upper() in words

    def _or(self):
        result = self._and()
        while self._peek_word("OR"):
            self._next()
            result = self._and() or result
        return result

    def _and(self):
        result = self._not()
        while self._peek_word("AND"):
            self._next()
            result = self._not() and result
        return result

    def _not(self):
        if self._peek_word("NOT"):
            self._next()
            return not self._not()
        return self._term()

    def _term(self):
        kind, value = self._next()
        if value == "(":
            result = self._or()
            assert self._next()[1] == ")"
            return result
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        _, operator = self._next()
        _, operand = self._next()
        actual = self.context.get(value, "")
        return {"=": actual == operand, "!=": actual != operand,
                "=~": re.search(operand, actual) is not None, "!~": re.search(operand, actual) is None}[operator]


def deployed_color(pipeline_file: str) -> str:
    """The color a deploy pipeline deploys: the stack of its `pulumi up`."""
    for command in semaphore_commands(load(SEMAPHORE / pipeline_file)):
        words = shlex.split(command)
        if words[:2] == ["pulumi", "up"]:
            return words[words.index("--stack") + 1]
    raise AssertionError(f"{pipeline_file} runs no pulumi up")


def started_by(tag: str, result: str = "passed") -> list[str]:
    """The colors whose deploy a push of `tag` starts, by the auto_promote conditions in semaphore.yml."""
    promotions = load(SEMAPHORE / "semaphore.yml")["promotions"]
    return [deployed_color(p["pipeline_file"]) for p in promotions
            if "auto_promote" in p and Condition(p["auto_promote"]["when"]).evaluate({"result": result, "tag": tag})]


@pytest.mark.parametrize("tag, colors", [
    ("v1.2.3-blue", ["blue"]), ("v1.2.3-green", ["green"]), ("v2.0-green", ["green"]),
    ("v1.2.3", []), ("", []), ("v1.2.3-blue-hotfix", []), ("release-blue", []), ("v1.2.3-greenish", []),
])
def test_tags_start_the_deploy_of_their_color(tag, colors):
    assert started_by(tag) == colors


def test_a_failed_build_starts_no_deploy():
    assert started_by("v1.2.3-blue", result="failed") == []


def test_condition_reader_is_faithful():
    assert Condition("result = 'passed' AND (tag =~ '^v' OR branch = 'main')").evaluate({"result": "passed", "branch": "main"})
    assert not Condition("result = 'passed' and NOT tag =~ '^v'").evaluate({"result": "passed", "tag": "v1"})
    with pytest.raises(ValueError):
        Condition("tag =~ ^v.*$")


def test_pipelines_parse_and_promotions_point_at_existing_pipelines():
    reached, queue = {"semaphore.yml"}, []
    for path in PIPELINES:
        document = load(path)
        assert document["version"] == "v1.0" and document["blocks"] and document["agent"]["machine"]["type"]
        for promotion in document.get("promotions", []):
            assert (SEMAPHORE / promotion["pipeline_file"]).is_file(), promotion
            reached.add(promotion["pipeline_file"])
        if path.name != "semaphore.yml":
            queue.append((path.name, document.get("queue")))
    assert reached == {p.name for p in PIPELINES}  # no pipeline is orphaned
    # Every pipeline that touches the cluster waits in one organization-wide queue, as the tutorial says.
    assert {json.dumps(q, sort_keys=True) for _, q in queue} == {
        json.dumps({"name": "shared kubernetes deployment", "scope": "organization"}, sort_keys=True)}


def release_runs(pipeline_file: str) -> list[list[str]]:
    return [args for where, args in invocations("scripts/release.py") if where == pipeline_file]


@pytest.mark.parametrize("color", ["blue", "green"])
def test_each_color_deploys_then_promotes_then_rolls_back_or_decommissions_the_other(color):
    other = "green" if color == "blue" else "blue"
    deploy = load(SEMAPHORE / f"deploy-{color}.yml")
    assert deployed_color(f"deploy-{color}.yml") == color
    [activate] = [p["pipeline_file"] for p in deploy["promotions"]]
    assert release_runs(activate) == [["promote", color]]
    after = {p["name"]: p["pipeline_file"] for p in load(SEMAPHORE / activate)["promotions"]}
    assert release_runs(after[f"Rollback to {other}"]) == [["rollback"]]
    assert release_runs(after[f"Decommission {other}"]) == [["decommission", other]]
    assert all("auto_promote" not in p for p in load(SEMAPHORE / activate)["promotions"])  # a person decides


# ---------------------------------------------------------------- one change to the stacks at a time: the CI queues


def touches_stacks(commands) -> bool:
    """Whether these command lines run pulumi, or release.py, against a stack."""
    for command in commands:
        for line in shell_lines(command):
            words = shlex.split(line)
            if words[:1] == ["pulumi"] or "scripts/release.py" in words:
                return True
    return False


def github_job_touches_stacks(job) -> bool:
    steps = job.get("steps", [])
    return (any(step.get("uses", "").startswith("pulumi/actions@") for step in steps)
            or touches_stacks(step.get("run", "") for step in steps))


def test_github_jobs_that_run_pulumi_queue_per_stack_and_are_never_cancelled_half_way():
    document = load(GITHUB)
    touching = {name: job for name, job in document["jobs"].items() if github_job_touches_stacks(job)}
    assert set(touching) == {"preview"}
    # A workflow-wide group that cancels would cancel these jobs too, whatever their own group says.
    assert document.get("concurrency") is None or document["concurrency"].get("cancel-in-progress") is False
    for job in touching.values():
        assert job["concurrency"] == {"group": "bluegreen-stack-${{ matrix.stack }}", "cancel-in-progress": False}
        assert "stack" in job["strategy"]["matrix"]  # one group per stack: the matrix entries do not queue each other


def test_only_the_offline_plan_is_cancelled_by_a_newer_push():
    plan = load(GITHUB)["jobs"]["plan"]
    assert not github_job_touches_stacks(plan)
    assert plan["concurrency"] == {"group": "preview-plan-${{ github.event.pull_request.number }}",
                                   "cancel-in-progress": True}


def test_every_semaphore_pipeline_that_touches_a_stack_waits_in_the_shared_queue():
    touching = {path.name for path in PIPELINES if touches_stacks(semaphore_commands(load(path)))}
    assert touching == {path.name for path in PIPELINES} - {"semaphore.yml"}  # the tests and the plan touch none
    for name in touching:
        assert load(SEMAPHORE / name)["queue"] == {"name": "shared kubernetes deployment", "scope": "organization"}


def test_the_queue_check_is_not_vacuous():
    assert touches_stacks(["pulumi up --yes --stack green"]) and touches_stacks(["python scripts/release.py rollback"])
    assert not touches_stacks(["python -m pytest -q", "python scripts/plan.py"])
# ---------------------------------------------------------------- supply chain

LOCKS = {"requirements.txt": "requirements.lock", "requirements-dev.txt": "requirements-dev.lock",
         "policy/requirements.txt": "policy/requirements.lock", ".ci/requirements.txt": ".ci/requirements.lock"}
SHA = re.compile(r"[0-9a-f]{40}")


def markdown_shell_lines(path: Path):
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", path.read_text(), re.S):
        yield from shell_lines(block)


def pip_installs():
    """(where, words) of every pip install that a workflow, a pipeline, .ci/run or a document tells to run."""
    sources = [*all_commands(), *(("ci/run", line) for line in shell_lines((ROOT / ".ci" / "run").read_text()))]
    sources += [(path.name, line) for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
                for line in markdown_shell_lines(path)]
    for where, line in sources:
        for command in re.split(r"&&|;", line):
            words = shlex.split(command)
            if "pip" in words and "install" in words and "pip-tools" not in " ".join(words):
                yield where, words


def test_every_pip_install_takes_a_hash_pinned_lock():
    installs = list(pip_installs())
    assert {where for where, _ in installs} >= {"ci/run", "README.md", "prologue.sh", "semaphore.yml",
                                                 "preview.yml job plan", "preview.yml job preview"}
    for where, words in installs:
        if words[-2:] == ["-e", "."]:  # the project's own packages (pyproject.toml): nothing from a registry
            assert "--no-deps" in words and "--no-build-isolation" in words, (where, words)
            continue
        files = [words[i + 1] for i, word in enumerate(words) if word == "-r"]
        assert "--require-hashes" in words and files and all(f.endswith(".lock") for f in files), (where, words)
        assert all((ROOT / f).is_file() for f in files), (where, files)


def lock_pins(lock: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every package a lock pins."""
    pins = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text()):
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s\\;]+)", entry)
        if match:
            pins[match[1].lower().replace("_", "-")] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return pins


def input_pins(requirements: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / requirements).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            pins.update(input_pins(str((ROOT / requirements).parent.relative_to(ROOT) / line[3:].strip())))
        elif "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.mark.parametrize("source, lock", sorted(LOCKS.items()))
def test_each_lock_pins_its_input_and_every_dependency_with_hashes(source, lock):
    text = (ROOT / lock).read_text()
    assert "python tools/lock.py" in text.split("\n\n")[0]  # the header names the command that refreshes it
    assert not re.search(r"^--(find-links|index-url|extra-index-url|trusted-host)", text, re.M)  # PyPI only
    pins = lock_pins(lock)
    for name, version in input_pins(source).items():
        assert pins.get(name, (None,))[0] == version, f"{lock} does not pin {name}=={version}: run python tools/lock.py"
    assert all(hashes for _, hashes in pins.values()), [name for name, (_, h) in pins.items() if not h]
    # Every requirement line is a pin with hashes: nothing pip could resolve on its own.
    requirement_lines = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(requirement_lines) == len(pins)


def test_a_package_has_one_version_in_every_lock():
    versions: dict[str, set[str]] = {}
    for lock in LOCKS.values():
        for name, (version, _) in lock_pins(lock).items():
            versions.setdefault(name, set()).add(version)
    assert {name: v for name, v in versions.items() if len(v) > 1} == {}
    assert set(lock_pins("requirements.lock")) <= set(lock_pins("requirements-dev.lock"))


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_release_named():
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", GITHUB.read_text(), re.M)
    assert len(uses) >= 5
    for action, comment in uses:
        name, _, ref = action.partition("@")
        assert SHA.fullmatch(ref), f"{action} is not pinned by a full commit SHA"
        assert re.fullmatch(r"\s*#\s*v\d+\.\d+\.\d+", comment), f"{action}: name the release, e.g. # v4.4.0"
    [(_, step)] = [(job, step) for job, step in github_steps() if step.get("uses", "").startswith("actions/checkout")
                   and job == "plan"]
    assert step["with"]["persist-credentials"] is False  # the pull request's code runs after it


def test_a_bad_pin_would_be_caught():
    assert not SHA.fullmatch("v4") and not SHA.fullmatch("11d5960a") and not SHA.fullmatch("main")


def job_secrets(job) -> set[str]:
    return set(re.findall(r"secrets\.([A-Za-z_]+)", json.dumps(job))) - {"GITHUB_TOKEN"}


def test_jobs_holding_credentials_run_only_behind_a_protected_environment_or_on_main():
    jobs = load(GITHUB)["jobs"]
    holding = {name: job for name, job in jobs.items() if job_secrets(job)}
    assert set(holding) == {"preview"}
    for name, job in holding.items():
        on_main = "github.ref == 'refs/heads/main'" in str(job.get("if", ""))
        assert job.get("environment") or on_main, f"job {name} holds {job_secrets(job)} ungated"


def test_semaphore_credentials_come_only_from_the_deployment_target():
    promotions = [(path.name, promotion) for path in PIPELINES for promotion in load(path).get("promotions", [])]
    assert promotions and all(p.get("deployment_target") == "cluster" for _, p in promotions), promotions
    for path in PIPELINES:
        document = load(path)
        secrets = {s["name"] for s in (document.get("global_job_config") or {}).get("secrets", [])}
        secrets |= {s["name"] for b in document["blocks"] for s in b["task"].get("secrets", [])}
        assert not secrets & {"pulumi", "kubeconfig"}, f"{path.name} takes cluster credentials from a plain secret"


def requirements_pin(name: str) -> str:
    return input_pins("requirements.txt")[name]


def test_one_pulumi_cli_version_everywhere():
    script = (SEMAPHORE / "install-pulumi.sh").read_text()
    [version] = re.findall(r"^PULUMI_VERSION=(\S+)$", script, re.M)
    [action] = [step for _, step in github_steps() if step.get("uses", "").startswith("pulumi/actions@")]
    assert version == requirements_pin("pulumi") == str(action["with"]["pulumi-version"]) == "3.260.0"
    prologue = (SEMAPHORE / "prologue.sh").read_text()
    assert "bash .semaphore/install-pulumi.sh" in prologue and "| sh" not in prologue and "get.pulumi.com" not in prologue


def fake_release(directory: Path, reported: str = "v3.260.0") -> str:
    """A tarball shaped like Pulumi's release (pulumi/pulumi...), its pulumi reporting `reported`; its sha256."""
    (directory / "pulumi").mkdir()
    binary = directory / "pulumi" / "pulumi"
    binary.write_text(f"#!/bin/sh\necho {reported}\n")
    binary.chmod(0o755)
    subprocess.run(["tar", "-czf", str(directory / "release.tar.gz"), "-C", str(directory), "pulumi"], check=True)
    return hashlib.sha256((directory / "release.tar.gz").read_bytes()).hexdigest()


def run_install(tmp_path: Path, pinned: str | None, env_sha: str = ""):
    """install-pulumi.sh (with `pinned` written in, or as committed when None) against a fake curl that serves
    tmp_path/release.tar.gz and records the URL it was asked for."""
    script = (SEMAPHORE / "install-pulumi.sh").read_text()
    if pinned is not None:
        script = re.sub(r'^PINNED_SHA256="[^"]*"', f'PINNED_SHA256="{pinned}"', script, flags=re.M)
    (tmp_path / "install.sh").write_text(script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    curl = bin_dir / "curl"
    curl.write_text('#!/bin/sh\nout=""\nwhile [ $# -gt 1 ]; do [ "$1" = --output ] && out="$2"; shift; done\n'
                    f'echo "$1" >> {tmp_path}/urls\ncp {tmp_path}/release.tar.gz "$out"\n')
    curl.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "PULUMI_INSTALL_DIR": str(tmp_path / "installed"),
           **({"PULUMI_SHA256": env_sha} if env_sha else {})}
    return subprocess.run(["bash", str(tmp_path / "install.sh")], env=env, capture_output=True, text=True, timeout=60)


def test_install_pulumi_checks_the_tarball_before_installing(tmp_path):
    sha = fake_release(tmp_path)
    done = run_install(tmp_path, pinned=sha)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "installed" / "pulumi").is_file()
    assert (tmp_path / "urls").read_text() == "https://get.pulumi.com/releases/sdk/pulumi-v3.260.0-linux-x64.tar.gz\n"


def test_install_pulumi_refuses_a_tarball_that_does_not_match(tmp_path):
    fake_release(tmp_path)
    done = run_install(tmp_path, pinned="0" * 64)
    assert done.returncode == 1 and "not the pinned" in done.stderr and not (tmp_path / "installed").exists()


def test_install_pulumi_refuses_a_binary_of_another_version(tmp_path):
    sha = fake_release(tmp_path, reported="v3.1.0")
    done = run_install(tmp_path, pinned=sha)
    assert done.returncode == 1 and "reports v3.1.0" in done.stderr and not (tmp_path / "installed").exists()


def test_install_pulumi_fails_closed_without_a_pinned_checksum(tmp_path):
    sha = fake_release(tmp_path)
    done = run_install(tmp_path, pinned="")
    assert done.returncode == 1 and "no sha256 is pinned" in done.stderr and not (tmp_path / "urls").exists()
    # While the pin is empty, the environment may supply it (a Semaphore secret); never a different one over a pin.
    assert run_install(tmp_path, pinned="", env_sha=sha).returncode == 0
    assert run_install(tmp_path, pinned=sha, env_sha="1" * 64).returncode == 1
