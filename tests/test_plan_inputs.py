"""What plan.py and the routing program take in: the namespace each color runs in (checked against the routing
stack's before anything changes), and --set in the path form of `pulumi config set --path`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from bluegreen_tools import plan
from bluegreen_tools.plan import simulate
from bluegreen_tools.plan.config_path import PathError, parse_path, set_at_path, typed
from components.contract import ColorOutputs
from components.guards import Unroutable, namespace_notices, unroutable
from components.settings import parse_settings
from harness.fault_matrix import memoized
from harness.stacks import BLUE_STACK, DEFAULTS, GREEN_STACK, color_outputs, deployed, run_stack

ROOT = Path(__file__).resolve().parent.parent
BLUE = {"bluegreen:color": "blue", "bluegreen:image": "registry.example.com/shop:v1.4.0", "bluegreen:replicas": 2}
GREEN = {**BLUE, "bluegreen:color": "green", "bluegreen:image": "registry.example.com/shop:v2.0.0"}


@pytest.fixture(autouse=True)
def program_runs_memoized(monkeypatch):
    monkeypatch.setattr(simulate, "run_program", memoized(simulate.run_program))


def write_stack(directory: Path, stack: str, config: dict) -> None:
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch project (its own git repository) that plan.py reads: blue and green, routing to blue."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, timeout=30)
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    write_stack(tmp_path, "blue", BLUE)
    write_stack(tmp_path, "green", GREEN)
    write_stack(tmp_path, "routing", {"bluegreen:active": "blue"})
    monkeypatch.setattr(plan, "ROOT", tmp_path)
    return tmp_path


def run(capsys, *argv):
    try:
        code = plan.main(list(argv))
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--format", "json")
    return code, json.loads(out) if out else None, err


def objects(report, stack, kind):
    return [o for o in report["stacks"][stack]["objects"] if o["kind"] == kind]


# --- the namespace each color runs in ------------------------------------------------------------


def test_a_color_stack_exports_the_namespace_its_pods_run_in():
    run = run_stack("blue", {"color": "blue", "image": "registry.example.com/myapp:v2.0.0", "namespace": "shop"})
    assert run.error is None
    assert run.outputs["namespace"] == "shop" == run.one("Deployment").inputs["metadata"]["namespace"]
    assert set(run.outputs) == set(ColorOutputs.names())


def test_a_routing_stack_in_another_namespace_than_both_colors_is_refused_naming_both_and_the_fix(project, capsys):
    write_stack(project, "routing", {"bluegreen:active": "blue", "bluegreen:namespace": "shop"})
    code, report, _ = run_json(capsys, "--stack", "routing")
    assert code == 1 and not report["valid"]
    error = report["stacks"]["routing"]["error"]
    assert error.startswith(f"stack {BLUE_STACK} runs blue in namespace 'default', but routing stack routing "
                            f"routes in namespace 'shop'")
    assert "it would select no blue pod and users would get errors" in error
    assert "pulumi config set namespace default -s routing" in error  # both colors run there: follow them
    assert f"pulumi config set namespace shop -s {BLUE_STACK}, then pulumi up -s {BLUE_STACK}" in error
    assert "config set active green" not in error  # green runs in 'default' too: no way out for users
    assert report["stacks"]["routing"]["objects"] == []  # refused before anything is declared
    code, text, _ = run(capsys, "--stack", "routing")
    assert "Stack routing (Pulumi.routing.yaml): REFUSED" in text and "namespace 'shop'" in text


def test_every_stack_in_one_namespace_plans_valid_and_says_where_each_color_runs(project, capsys):
    for stack, config in (("blue", BLUE), ("green", GREEN), ("routing", {"bluegreen:active": "blue",
                                                                        "bluegreen:test": "green"})):
        write_stack(project, stack, {**config, "bluegreen:namespace": "shop"})
    code, report, _ = run_json(capsys, "--stack", "routing")
    assert code == 0, report["stacks"]["routing"]["error"]
    assert {o["metadata"]["namespace"] for o in report["stacks"]["routing"]["objects"]} == {"shop"}
    assert any("release v1.4.0 in namespace shop" in note for note in report["stacks"]["routing"]["notes"])


def test_colors_split_across_namespaces_get_only_the_fix_that_works(project, capsys):
    write_stack(project, "green", {**GREEN, "bluegreen:namespace": "shop"})
    write_stack(project, "routing", {"bluegreen:active": "blue", "bluegreen:test": "green"})
    code, report, _ = run_json(capsys, "--stack", "routing")
    error = report["stacks"]["routing"]["error"]
    assert code == 1
    assert error.startswith(f"stack {GREEN_STACK} runs green in namespace 'shop', but routing stack routing routes "
                            f"in namespace 'default' (bluegreen:namespace) (the routed colors run in different "
                            f"namespaces: blue in 'default', green in 'shop')")
    assert "testers would get errors" in error
    assert "-s routing (its Gateway" not in error  # moving the routes would strand blue's users
    assert f"pulumi config set namespace default -s {GREEN_STACK}" in error
    assert "or pulumi config rm test -s routing" in error  # testers can simply stop being routed


def test_a_color_stack_that_exports_no_namespace_still_routes_and_is_told_how_to_export_it():
    # Deployed before the output existed: its outputs lack it, and the routing stack still works.
    outputs = deployed()
    assert "namespace" not in outputs[BLUE_STACK]
    run = run_stack("routing", {"active": "blue", "namespace": "shop"}, outputs=outputs)
    assert run.error is None and run.read == ["shop/myapp-blue"]  # the read of its Deployment there checks it
    settings = parse_settings({"active": "blue", "namespace": "shop"}, "routing", defaults=DEFAULTS)
    targets = {"blue": ColorOutputs.read(outputs[BLUE_STACK])}
    [notice] = namespace_notices(settings, targets)
    assert notice.startswith(f"stack {BLUE_STACK} exports no namespace") and "'shop'" in notice
    assert f"pulumi up -s {BLUE_STACK}" in notice
    exported = {"blue": ColorOutputs.read({**outputs[BLUE_STACK], "namespace": "shop"})}
    assert namespace_notices(settings, exported) == []


def test_unroutable_checks_the_namespace_only_when_asked_and_known():
    known = ColorOutputs.read({**color_outputs("blue", "v1"), "namespace": "default"})
    assert unroutable(known, "blue", "myapp", "shop") is Unroutable.OTHER_NAMESPACE
    assert unroutable(known, "blue", "myapp", "default") is None
    assert unroutable(known, "blue") is None  # release.py's reading: unchanged
    assert unroutable(ColorOutputs.read(color_outputs("blue", "v1")), "blue", "myapp", "shop") is None


# --- --set in the path form of `pulumi config set --path` ---------------------------------------


@pytest.mark.parametrize("text, segments", [
    ("tls.credentialName", ["tls", "credentialName"]),
    ("analysis.queries[0].max", ["analysis", "queries", 0, "max"]),
    ('env["A.B"]', ["env", "A.B"]),
    ('["tls"]["credentialName"]', ["tls", "credentialName"]),
    ('env["say \\"hi\\""]', ["env", 'say "hi"']),
    ("hosts[10]", ["hosts", 10]),
])
def test_paths_are_read_as_the_cli_reads_them(text, segments):
    assert parse_path(text) == segments


@pytest.mark.parametrize("text, complaint", [
    ("hosts[0", "no closing ']'"), ("hosts[x]", "not a list index"), ('env["A', "no closing quote"),
    ("[0].x", "starts with the config key"),
])
def test_a_path_the_cli_refuses_is_refused(text, complaint):
    with pytest.raises(PathError, match=complaint.replace("[", r"\[")):
        parse_path(text)


def test_values_are_typed_and_containers_made_as_the_cli_does():
    # Inside an object: true/false are booleans, whole numbers without a leading zero numbers, the rest text.
    assert [typed(v) for v in ("true", "false", "42", "-3", "007", "0", "99.5", "1e3", "True")] == [
        True, False, 42, -3, "007", 0, "99.5", "1e3", "True"]
    assert json.loads(set_at_path(None, ["analysis", "queries", 0, "max"], "1")) == {"queries": [{"max": 1}]}
    before = json.dumps({"queries": [{"name": "a", "max": 1}]})
    assert json.loads(set_at_path(before, ["analysis", "queries", 1, "name"], "b")) == {
        "queries": [{"name": "a", "max": 1}, {"name": "b"}]}  # the list's length appends
    assert json.loads(set_at_path("plain text", ["tls", "credentialName"], "x")) == {"credentialName": "x"}
    with pytest.raises(PathError, match=r"index 2 is past the end of analysis.queries \(1 entry\).*analysis.queries\[1\]"):
        set_at_path(before, ["analysis", "queries", 2, "max"], "1")
    with pytest.raises(PathError, match=r"analysis.queries is a list, so it has no field 'max'"):
        set_at_path(before, ["analysis", "queries", "max"], "1")


def test_set_with_a_path_means_what_pulumi_config_set_path_means(project, capsys):
    code, by_path, _ = run_json(capsys, "--stack", "routing", "--set", "tls.credentialName=shop-cert")
    assert code == 0, by_path["stacks"]["routing"]["error"]
    code, as_json, _ = run_json(capsys, "--stack", "routing", "--set", 'tls={"credentialName": "shop-cert"}')
    assert objects(by_path, "routing", "Gateway") == objects(as_json, "routing", "Gateway")
    [gateway] = objects(by_path, "routing", "Gateway")
    assert [s["tls"].get("credentialName") for s in gateway["spec"]["servers"]] == [None, "shop-cert"]  # 80, 443
    code, report, _ = run_json(capsys, "--stack", "routing", "--set", "hosts[0]=shop.example.com",
                               "bluegreen:hosts[1]=api.example.com")
    [vs] = objects(report, "routing", "VirtualService")
    assert code == 0 and vs["spec"]["hosts"] == ["shop.example.com", "api.example.com"]


def test_set_with_a_path_into_the_stack_files_object_keeps_its_other_fields(project, capsys):
    write_stack(project, "blue", {**BLUE, "bluegreen:env": {"DB_USER": "shop", "DB_PORT": 5432}})
    code, report, _ = run_json(capsys, "--stack", "blue", "--set", "env.DB_HOST=db.internal", "env.DEBUG=true")
    [deployment] = objects(report, "blue", "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert code == 0
    assert {k: env[k] for k in ("DB_USER", "DB_PORT", "DB_HOST", "DEBUG")} == {
        "DB_USER": "shop", "DB_PORT": "5432", "DB_HOST": "db.internal", "DEBUG": "true"}


def test_a_value_refused_by_path_names_the_path_the_value_and_the_fix(project, capsys):
    code, text, _ = run(capsys, "--stack", "routing", "--set", "tls.credentialName=Not_A_Name")
    assert code == 1
    assert "bluegreen:tls.credentialName is 'Not_A_Name': it must name the Kubernetes TLS Secret" in text
    assert "Fix: pulumi config set --path" in text


@pytest.mark.parametrize("assignment, complaint", [
    ("hosts[3]=x.example.com", "index 3 is past the end of hosts (0 entries): a list grows one entry at a time, "
                               "so the next one is hosts[0]"),
    ("hosts[x]=y", "[x] is not a list index"),
    ('tls["credentialName=x', "no closing quote"),
])
def test_a_path_it_cannot_set_is_bad_usage_that_never_shows_the_value(project, capsys, assignment, complaint):
    code, out, err = run(capsys, "--stack", "routing", "--set", assignment)
    assert (code, out) == (2, "")
    assert complaint in err and "pulumi config set --path" in err
    assert "x.example.com" not in err
