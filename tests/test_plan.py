"""scripts/plan.py: the offline plan a reviewer reads on a pull request.

Runs plan.main in-process against a scratch git repository holding stack files written here (the
program itself is the real one), so each test states the config it plans and the base it compares with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from components.routes import color_for
from components.settings import declared_defaults, parse_settings
from harness.fault_matrix import memoized
from harness.plan_runs import ROOT, commit, run, run_json, scratch_project, write_stack
from bluegreen_tools import plan
from bluegreen_tools.plan import simulate



@pytest.fixture(autouse=True)
def program_runs_memoized(monkeypatch):
    """Most plans here repeat a run an earlier test made (95 of 131): the same inputs, the same run."""
    monkeypatch.setattr(simulate, "run_program", memoized(simulate.run_program))

BLUE = {"bluegreen:color": "blue", "bluegreen:image": "registry.example.com/shop:v1.4.0", "bluegreen:replicas": 3,
        "bluegreen:routingStack": "organization/bluegreen/routing", "bluegreen:env": {"DB_USER": "shop"}}
GREEN = {**BLUE, "bluegreen:color": "green", "bluegreen:image": "registry.example.com/shop:v2.0.0"}
ROUTING = {"bluegreen:active": "blue"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch project (its own git repository) that plan.py reads instead of this one."""
    return scratch_project(tmp_path, monkeypatch, {"blue": BLUE, "green": GREEN, "routing": ROUTING})


def virtual_service(report):
    [vs] = [o for o in report["stacks"]["routing"]["objects"] if o["kind"] == "VirtualService"]
    return vs


def test_route_table_reads_the_declared_virtualservice(project, capsys):
    code, report, _ = run_json(capsys, "--stack", "routing", "--set", "test=green")
    assert code == 0 and report["valid"]
    routes = report["stacks"]["routing"]["routes"]
    assert routes == [
        {"match": "requests with cookie test=true", "color": "green", "release": "v2.0.0"},
        {"match": None, "color": "blue", "release": "v1.4.0"},
    ]
    # The table is the VirtualService read back: route i is http[i], and a request lands where the row says.
    http = virtual_service(report)["spec"]["http"]
    assert [r["color"] for r in routes] == [route["route"][0]["destination"]["subset"] for route in http]
    assert color_for(http, {"Cookie": "session=1; test=true"}) == "green"
    assert color_for(http, {"Cookie": "test=false"}) == "blue"


def test_text_and_markdown_say_who_reaches_which_color(project, capsys):
    code, text, _ = run(capsys, "--stack", "routing", "--set", "test=green", "testCookie=canary=yes")
    assert code == 0
    lines = [line.strip() for line in text.splitlines()]
    table = lines.index("Who reaches which color (routes in the order Istio applies them):")
    assert lines[table + 1:table + 3] == ["requests with cookie canary=yes → green (v2.0.0)",
                                          "everyone else → blue (v1.4.0)"]
    assert "readyReplicas is assumed to equal replicas (3)" in text  # readiness cannot be known offline
    code, markdown, _ = run(capsys, "--stack", "routing", "--format", "markdown")
    assert markdown.startswith(plan.MARKER)
    assert "| everyone | **blue (v1.4.0)** |" in markdown


def test_base_shows_who_changes_color_and_the_changed_fields(project, capsys):
    write_stack(project, "routing", {"bluegreen:active": "blue", "bluegreen:test": "green"})
    commit(project)
    write_stack(project, "routing", {"bluegreen:active": "green", "bluegreen:test": "blue"})
    code, report, _ = run_json(capsys, "--base", "HEAD")
    assert code == 0
    changes = report["stacks"]["routing"]["changes"]
    assert changes["requests"] == [
        {"match": "requests with cookie test=true", "before": {"color": "green", "release": "v2.0.0"},
         "after": {"color": "blue", "release": "v1.4.0"}},
        {"match": None, "before": {"color": "blue", "release": "v1.4.0"},
         "after": {"color": "green", "release": "v2.0.0"}},
    ]
    [vs_change] = changes["objects"]
    assert (vs_change["change"], vs_change["kind"], vs_change["name"]) == ("changed", "VirtualService", "myapp-blue-green")
    assert {"path": "spec.http[myapp-default].route[0].destination.subset", "before": "blue", "after": "green"} in vs_change["fields"]
    assert all(not report["stacks"][color]["changes"]["objects"] for color in ("blue", "green"))

    code, text, _ = run(capsys, "--base", "HEAD", "--stack", "routing")
    assert "everyone else: blue (v1.4.0) → green (v2.0.0)" in text
    assert "spec.http[myapp-default].route[0].destination.subset: blue → green" in text


def test_base_lists_added_and_removed_objects(project, capsys):
    commit(project)
    write_stack(project, "blue", {**BLUE, "bluegreen:migrateCommand": "npm run migrate"})
    code, report, _ = run_json(capsys, "--base", "HEAD", "--stack", "blue")
    assert code == 0
    assert [(c["change"], c["kind"], c["name"]) for c in report["stacks"]["blue"]["changes"]["objects"]] == [
        ("added", "Job", "myapp-blue-migrate")]
    commit(project, "with migration")
    write_stack(project, "blue", BLUE)
    code, report, _ = run_json(capsys, "--base", "HEAD", "--stack", "blue")
    assert ("removed", "Job") in [(c["change"], c["kind"]) for c in report["stacks"]["blue"]["changes"]["objects"]]


def test_color_stack_reads_the_live_color_at_the_base(project, capsys):
    """With --base, a new release on the live color is refused, as `pulumi up -s blue` would be after the merge."""
    commit(project)
    write_stack(project, "blue", {**BLUE, "bluegreen:image": "registry.example.com/shop:v1.5.0"})
    code, text, _ = run(capsys, "--base", "HEAD")
    assert code == 1
    assert "Stack blue (Pulumi.blue.yaml): REFUSED" in text
    assert "blue is the live color" in text and "'v1.4.0'" in text and "'v1.5.0'" in text
    # The routing stack, planned after it, reads blue as it is at the base: a refused update changes nothing.
    code, report, _ = run_json(capsys, "--base", "HEAD", "--stack", "routing")
    assert code == 0 and report["stacks"]["routing"]["routes"][0]["release"] == "v1.4.0"
    # Without a base, the routing stack's own file says blue is live, with the release blue's file names.
    code, report, _ = run_json(capsys, "--stack", "blue")
    assert code == 0


def test_base_uses_that_refs_pulumi_yaml_defaults(project, capsys):
    project_file = yaml.safe_load((project / "Pulumi.yaml").read_text())
    project_file["config"]["testCookie"]["default"] = "beta=1"
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(project_file))
    write_stack(project, "routing", {"bluegreen:active": "blue", "bluegreen:test": "green"})
    commit(project)
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())  # today's defaults, changed since HEAD
    code, report, _ = run_json(capsys, "--base", "HEAD", "--stack", "routing")
    assert code == 0
    assert any("defaults" in note for note in report["notes"])
    moved = {c["match"]: (c["before"]["color"], c["after"]["color"]) for c in report["stacks"]["routing"]["changes"]["requests"]}
    assert moved == {"requests with cookie beta=1": ("green", "blue"), "requests with cookie test=true": ("blue", "green")}
    # Today's defaults are back for everything after the plan.
    today = declared_defaults(ROOT / "Pulumi.yaml")
    assert str(parse_settings({"active": "blue"}, "routing", defaults=today).test_cookie) == "test=true"


def test_base_without_pulumi_yaml_at_that_ref_uses_todays_defaults(project, capsys):
    (project / "Pulumi.yaml").unlink()
    commit(project)
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    code, report, _ = run_json(capsys, "--base", "HEAD", "--stack", "routing")
    assert code == 0 and report["stacks"]["routing"]["changes"]["requests"] == []
    assert "Pulumi.yaml at HEAD is missing or unreadable: the plan at HEAD uses today's defaults." in report["notes"]


def test_a_pulumi_yaml_the_cli_cannot_read_refuses_every_stack_even_with_base(project, capsys):
    commit(project)
    (project / "Pulumi.yaml").write_text("name: bluegreen\n")
    code, report, _ = run_json(capsys, "--base", "HEAD")
    assert code == 1
    assert {name: stack["error"] for name, stack in report["stacks"].items()} == dict.fromkeys(
        ("blue", "green", "routing"), "Pulumi.yaml has no config: mapping of keys to their type, description and "
                                      "default. Fix: restore it (git checkout -- Pulumi.yaml)")


def test_refused_config_exits_1_with_the_programs_message(project, capsys):
    code, text, _ = run(capsys, "--stack", "routing", "--set", "test=blue")
    assert code == 1
    assert "bluegreen:test is 'blue': it is also the active color" in text
    assert text.rstrip().endswith("Plan refused: the program would refuse stack routing.")
    code, report, _ = run_json(capsys, "--stack", "routing", "--set", "active=green", "test=green")
    assert code == 1 and not report["valid"] and report["stacks"]["routing"]["objects"] == []


def test_routing_refuses_a_color_whose_stack_is_refused(project, capsys):
    write_stack(project, "green", {**GREEN, "bluegreen:replicas": "many"})
    code, text, _ = run(capsys, "--stack", "routing", "--set", "active=green")
    assert code == 1
    assert "has no deployed green workload" in text and "stack green is refused" in text


@pytest.mark.parametrize("argv, complaint", [
    (["--stack", "purple"], "no Pulumi.purple.yaml"),
    (["--set", "test=green"], "exactly one --stack"),
    (["--stack", "routing", "--set", "kubernetes:context=x"], "only bluegreen: keys"),
    (["--stack", "routing", "--set", "test"], "expected KEY=VALUE"),
    (["--base", "no-such-ref"], "no such commit"),
    (["--format", "yaml"], "invalid choice"),
])
def test_bad_usage_exits_2(project, capsys, argv, complaint):
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert complaint in err


SECRET = "hunter2-do-not-print"


def test_secrets_never_appear_in_any_format_or_manifest(project, capsys, tmp_path_factory):
    write_stack(project, "blue", {**BLUE, "bluegreen:secretEnv": {"DB_PASSWORD": {"secure": "AAABAMZ0ZXN0"}}})
    out = tmp_path_factory.mktemp("manifests")
    argv = ["--stack", "blue", "--set", json.dumps({"DB_PASSWORD": SECRET}).join(["secretEnv=", ""])]
    for fmt in plan.FORMATS:
        code, text, err = run(capsys, *argv, "--format", fmt, "--out", str(out))
        assert code == 0 and SECRET not in text + err
    files = {path.name: path.read_text() for path in out.iterdir()}
    assert SECRET not in "".join(files.values())
    secret = yaml.safe_load(files["blue-secret-myapp-blue-env-c712739f.yaml"])
    assert secret["stringData"] == {"DB_PASSWORD": "[secret]"}  # the key stays readable, the value does not
    deployment = yaml.safe_load(files["blue-deployment-myapp-blue.yaml"])
    [env] = [e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "DB_PASSWORD"]
    assert env["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def test_out_writes_one_manifest_per_object_and_replaces_its_own(project, capsys, tmp_path_factory):
    out = tmp_path_factory.mktemp("manifests")
    (out / "mine.yaml").write_text("kind: ConfigMap\n")
    (out / "routing-service-old.yaml").write_text(plan.GENERATED + " from an earlier run\nkind: Service\n")
    code, report, _ = run_json(capsys, "--out", str(out))
    assert code == 0
    objects = [o for stack in report["stacks"].values() for o in stack["objects"]]
    written = sorted(p for p in out.iterdir() if p.name != "mine.yaml")
    assert len(written) == len(objects) == 8  # 4 routing objects; a Deployment and a PodDisruptionBudget per color
    for path in written:
        manifest = yaml.safe_load(path.read_text())
        assert manifest in objects and list(manifest)[:3] == ["apiVersion", "kind", "metadata"]
    assert (out / "mine.yaml").exists()


def test_config_file_replaces_the_stack_file(project, capsys, tmp_path_factory):
    proposed = tmp_path_factory.mktemp("proposed") / "Pulumi.routing.yaml"
    proposed.write_text(yaml.safe_dump({"config": {"bluegreen:active": "green"}}))
    code, report, _ = run_json(capsys, "--config-file", str(proposed))
    assert code == 0 and list(report["stacks"]) == ["routing"]
    assert report["stacks"]["routing"]["routes"] == [{"match": None, "color": "green", "release": "v2.0.0"}]
    proposed.write_text("config: [unclosed\n")
    code, text, _ = run(capsys, "--config-file", str(proposed))
    assert code == 1 and "is not a Pulumi stack file" in text


def test_script_runs_standalone_on_this_repository():
    done = subprocess.run([sys.executable, "scripts/plan.py", "--format", "json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["stacks"]) == set(plan.stack_names([p.name for p in ROOT.iterdir()]))
    assert "Traceback" not in done.stderr


def test_base_says_when_the_programs_code_changed(project, capsys):
    (project / "components").mkdir()
    (project / "components" / "workload.py").write_text("LIMITS = None\n")
    commit(project)
    code, report, _ = run_json(capsys, "--base", "HEAD")
    assert code == 0 and not any("code changed" in note for note in report["notes"])
    (project / "components" / "workload.py").write_text("LIMITS = {'cpu': '1'}\n")
    code, report, _ = run_json(capsys, "--base", "HEAD")
    assert any("The program's code changed since HEAD" in note for note in report["notes"])


def test_a_secret_test_token_keeps_the_route_table_readable_and_the_token_hidden(project, capsys, tmp_path_factory):
    # With a token the program makes the VirtualService's whole spec secret; the plan still says who
    # reaches which color, and only the cookie regex (which holds the token) stays masked.
    write_stack(project, "routing", {"bluegreen:active": "blue", "bluegreen:test": "green",
                                     "bluegreen:testToken": {"secure": "v1:ZW5jcnlwdGVkLXRva2Vu"}})
    out = tmp_path_factory.mktemp("manifests")
    code, report, _ = run_json(capsys, "--stack", "routing", "--out", str(out))
    assert code == 0
    assert report["stacks"]["routing"]["routes"] == [
        {"match": "requests with cookie test=[secret] (the secret test token)", "color": "green",
         "release": "v2.0.0"},
        {"match": None, "color": "blue", "release": "v1.4.0"},
    ]
    http = virtual_service(report)["spec"]["http"]
    assert http[0]["match"][0]["headers"]["cookie"]["regex"] == "[secret]"
    assert [route["route"][0]["destination"]["subset"] for route in http] == ["green", "blue"]
    manifest = yaml.safe_load((out / "routing-virtualservice-myapp-blue-green.yaml").read_text())
    assert manifest["spec"]["http"][0]["match"][0]["headers"]["cookie"]["regex"] == "[secret]"
    assert "undecrypted" not in json.dumps(report) and "ZW5jcnlwdGVk" not in json.dumps(report)


def test_a_removed_test_route_reads_as_one_removed_route(project, capsys):
    write_stack(project, "routing", {"bluegreen:active": "blue", "bluegreen:test": "green"})
    commit(project)
    write_stack(project, "routing", {"bluegreen:active": "green"})
    code, report, _ = run_json(capsys, "--base", "HEAD", "--stack", "routing")
    assert code == 0
    [vs_change] = report["stacks"]["routing"]["changes"]["objects"]
    paths = [field["path"] for field in vs_change["fields"]]
    assert paths == ["spec.http[myapp-test]", "spec.http[myapp-default].headers.response.set.x-bluegreen-color",
                     "spec.http[myapp-default].route[0].destination.subset"]
    assert vs_change["fields"][0]["after"] is None and vs_change["fields"][0]["before"]["name"] == "myapp-test"
    code, text, _ = run(capsys, "--base", "HEAD", "--stack", "routing")
    assert "spec.http[myapp-test]: myapp-test (a whole entry; the JSON output has its fields) → (none)" in text


# ---------------------------------------------------------------- hostile input (issue 10); tests/harness/fault_matrix.py has hundreds more


def test_yaml_the_cli_accepts_is_planned_as_the_cli_passes_it(project, capsys):
    # yaml.v3 and Pulumi pass a scalar as written: a date, 1.0 and yes are text, never a crash.
    (project / "Pulumi.blue.yaml").write_text("config:\n  bluegreen:color: blue\n  bluegreen:image: shop:v1\n"
                                              "  bluegreen:release: 2024-01-01\n  bluegreen:replicas: 2\n")
    code, report, _ = run_json(capsys, "--stack", "blue")
    assert code == 0 and report["stacks"]["blue"]["outputs"]["release"] == "2024-01-01"
    (project / "Pulumi.blue.yaml").write_text("config:\n  bluegreen:color: blue\n  bluegreen:image: 1.0\n")
    code, text, _ = run(capsys, "--stack", "blue")
    assert code == 1 and "bluegreen:image is '1.0': it names no fixed release" in text
    (project / "Pulumi.routing.yaml").write_text("config:\n  bluegreen:active: yes\n")
    code, text, _ = run(capsys, "--stack", "routing")
    assert code == 1 and "bluegreen:active is 'yes': it must be blue or green" in text


def test_a_stack_file_plan_cannot_read_is_refused_in_one_line_with_where(project, capsys):
    (project / "Pulumi.blue.yaml").write_bytes(b"config:\n  bluegreen:color: blue\n  bluegreen:app: caf\xe9\n")
    code, text, err = run(capsys, "--stack", "blue")
    assert (code, err) == (1, "")
    assert "Pulumi.blue.yaml is not a Pulumi stack file the CLI can read: it is not UTF-8 text (byte 53 is not). " \
           "Fix: correct the file" in text
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)) + "config: *i\n"
    (project / "Pulumi.blue.yaml").write_text(laughs)
    code, text, _ = run(capsys, "--stack", "blue")
    assert code == 1 and "more than 100000 values once its aliases are expanded (line 5" in text


def test_out_says_where_it_wrote_and_refuses_what_it_cannot_write(project, capsys, tmp_path_factory):
    out = tmp_path_factory.mktemp("written") / "manifests"
    code, _, err = run(capsys, "--stack", "routing", "--out", str(out))
    assert code == 0 and err == f"plan.py: wrote 4 manifests to {out}/\n"
    for argv, complaint in ((["--out", ""], "'' names no directory"),
                            (["--out", str(project / "Pulumi.blue.yaml")], "it exists and is not a directory"),
                            (["--out", str(project / "Pulumi.blue.yaml" / "x")], "cannot write there (Not a directory)")):
        code, stdout, err = run(capsys, *argv)
        assert (code, stdout) == (2, "") and complaint in err and len(err.splitlines()) == 1


def test_out_never_overwrites_a_file_it_did_not_write_nor_follows_a_link(project, capsys, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    target = tmp_path_factory.mktemp("elsewhere") / "precious"
    target.write_text("keep me\n")
    (out / "routing-service-myapp.yaml").symlink_to(target)
    code, stdout, err = run(capsys, "--stack", "routing", "--out", str(out))
    assert (code, stdout) == (2, "") and "routing-service-myapp.yaml is there and was not written by plan.py" in err
    assert target.read_text() == "keep me\n"


def test_out_in_a_directory_nobody_can_write_is_bad_usage(project, capsys, tmp_path_factory):
    locked = tmp_path_factory.mktemp("locked")
    locked.chmod(0o555)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode == 0
    if os.geteuid() == 0 and not immutable:
        pytest.skip("root writes anywhere, and chattr +i is not available here")
    try:
        code, stdout, err = run(capsys, "--out", str(locked / "manifests"))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert (code, stdout) == (2, "") and "cannot write there" in err


def test_a_set_value_is_never_echoed_in_a_usage_error(project, capsys):
    for argv in (["--stack", "routing", "--set", f"aws:token={SECRET}"], ["--stack", "routing", "--set", SECRET],
                 ["--stack", "routing", "--format", "json", SECRET]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "") and SECRET not in err and len(err.splitlines()) == 1


def test_a_key_stored_as_a_secret_that_the_program_would_show_is_refused_by_name(project, capsys):
    write_stack(project, "blue", {**BLUE, "bluegreen:image": {"secure": "v1:c2VjcmV0LWltYWdl"}})
    code, text, _ = run(capsys, "--stack", "blue")
    assert code == 1 and "bluegreen:image is stored as a secret on stack blue" in text
    assert "c2VjcmV0" not in text and "undecrypted" not in text


def test_an_internal_error_exits_3_with_one_line_and_no_secret(project, capsys, monkeypatch):
    from components import program
    token = "tok-" + SECRET

    def broken(*args, **kwargs):
        raise TypeError(f"unexpected value {token}")

    write_stack(project, "routing", {"bluegreen:active": "blue", "bluegreen:test": "green",
                                     "bluegreen:testToken": {"secure": "v1:abc"}})
    monkeypatch.setattr(program, "ColorWorkload", broken)
    monkeypatch.setattr(simulate, "run_program", simulate.run_program.__wrapped__)  # the bug is not in the memo's key
    code, out, err = run(capsys, "--stack", "routing", "--set", f"testToken={token}")
    assert (code, out) == (3, "")
    assert err.startswith("plan.py: internal error: the program failed on stack blue (TypeError: unexpected value "
                          "[secret]): a bug in the program") and len(err.splitlines()) == 1


def test_the_process_survives_a_closed_pipe_and_an_ascii_terminal():
    done = subprocess.run(f"{sys.executable} scripts/plan.py --format markdown | head -c 1", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert done.stdout == "<" and done.stderr == ""
