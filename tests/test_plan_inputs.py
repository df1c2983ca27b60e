"""What plan.py and the routing program take in: the namespace each color runs in (checked against the routing
stack's before anything changes), and --set in the path form of `pulumi config set --path`."""

from __future__ import annotations

import json

import pytest

from bluegreen_tools.plan import simulate
from bluegreen_tools.plan.config_path import PathError, parse_path, set_at_path, typed
from bluegreen_tools.plan.gate import analysis_entry, gate_rows
from components.analysis import parse_analysis
from components.contract import ColorOutputs
from components.guards import Unroutable, namespace_notices, unroutable
from components.settings import parse_settings
from harness.fault_matrix import memoized
from harness.plan_runs import commit, run, run_json, scratch_project, write_stack
from harness.stacks import BLUE_STACK, DEFAULTS, GREEN_STACK, color_outputs, deployed, run_stack

BLUE = {"bluegreen:color": "blue", "bluegreen:image": "registry.example.com/shop:v1.4.0", "bluegreen:replicas": 2}
GREEN = {**BLUE, "bluegreen:color": "green", "bluegreen:image": "registry.example.com/shop:v2.0.0"}


@pytest.fixture(autouse=True)
def program_runs_memoized(monkeypatch):
    monkeypatch.setattr(simulate, "run_program", memoized(simulate.run_program))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch project (its own git repository) that plan.py reads: blue and green, routing to blue."""
    return scratch_project(tmp_path, monkeypatch, {"blue": BLUE, "green": GREEN, "routing": {"bluegreen:active": "blue"}})


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


# --- what gates the next flip: bluegreen:analysis ------------------------------------------------

ANALYSIS = ["analysis.prometheusUrl=http://prometheus.istio-system:9090", "analysis.interval=1m", "analysis.count=3",
            "analysis.successRate=99.5", "analysis.latencyP99=500ms", "analysis.queries[0].name=error-ratio",
            'analysis.queries[0].query=sum(rate(errors_total{app="{{ app }}-{{ color }}"}[{{ interval }}]))',
            "analysis.queries[0].min=0", "analysis.queries[0].max=0.01"]


def test_the_plan_shows_the_analysis_that_gates_the_next_flip_in_every_format(project, capsys):
    code, report, _ = run_json(capsys, "--stack", "routing", "--set", *ANALYSIS)
    assert code == 0, report["stacks"]["routing"]["error"]
    assert report["stacks"]["routing"]["analysis"] == {
        "prometheusUrl": "http://prometheus.istio-system:9090", "interval": "60s", "count": 3, "failureLimit": 1,
        "minRequests": 10, "noData": "fail", "successRate": 99.5, "latencyP99": "500ms", "dryRun": False,
        "baseline": None, "queries": [{"name": "error-ratio", "min": 0.0, "max": 0.01,
                                       "query": 'sum(rate(errors_total{app="{{ app }}-{{ color }}"}[{{ interval }}]))'}]}
    code, text, _ = run(capsys, "--stack", "routing", "--set", *ANALYSIS)
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index("What gates the next flip (bluegreen:analysis):")
    assert lines[start + 1:start + 3] == ["prometheusUrl: http://prometheus.istio-system:9090",
                                          "interval, count: 3 measurements 60s apart (3m), before the flip on the "
                                          "test traffic and after it on the users'"]
    assert "successRate: at least 99.5% of requests succeed" in lines
    assert "latencyP99: p99 latency at most 500ms" in lines
    assert ('queries: error-ratio: sum(rate(errors_total{app="{{ app }}-{{ color }}"}[{{ interval }}])) must be '
            'between 0 and 0.01 (min 0, max 0.01)') in lines
    code, markdown, _ = run(capsys, "--stack", "routing", "--set", *ANALYSIS, "--format", "markdown")
    assert "| prometheusUrl | `http://prometheus.istio-system:9090` |" in markdown
    assert "| dryRun | false: a failed analysis stops the release, or rolls the flip back |" in markdown


def test_without_analysis_the_plan_says_the_smoke_tests_alone_gate_the_flip(project, capsys):
    code, report, _ = run_json(capsys)
    assert code == 0 and report["stacks"]["routing"]["analysis"] is None
    assert "analysis" not in report["stacks"]["blue"]  # a color stack flips nothing
    code, text, _ = run(capsys, "--stack", "routing")
    assert "  What gates the next flip: no analysis: the flip is gated by the smoke tests only." in text
    code, markdown, _ = run(capsys, "--stack", "routing", "--format", "markdown")
    assert "**What gates the next flip:** no analysis: the flip is gated by the smoke tests only." in markdown


def test_against_a_base_the_plan_lists_what_changes_in_the_gate(project, capsys):
    write_stack(project, "routing", {"bluegreen:active": "blue", "bluegreen:analysis": {"successRate": 99}})
    commit(project)
    write_stack(project, "routing", {"bluegreen:active": "blue",
                                     "bluegreen:analysis": {"successRate": 99.9, "dryRun": True}})
    code, report, _ = run_json(capsys, "--base", "HEAD", "--stack", "routing")
    assert code == 0
    assert report["stacks"]["routing"]["changes"]["analysis"] == [
        {"path": "analysis.dryRun", "before": False, "after": True},
        {"path": "analysis.successRate", "before": 99.0, "after": 99.9}]
    code, text, _ = run(capsys, "--base", "HEAD", "--stack", "routing")
    assert "What gates the flip changes, against HEAD:" in text and "analysis.successRate: 99.0 → 99.9" in text


def test_the_gates_words_cover_every_setting():
    settings = parse_analysis({"interval": "90s", "count": 4, "failureLimit": 2, "minRequests": 50, "noData": "wait",
                               "baseline": {"maxSuccessRateDrop": 0.5, "maxLatencyIncrease": 20}, "dryRun": True,
                               "queries": [{"name": "saturation", "query": "max(x)", "min": 0.2}]}, "routing")
    rows = {name: (given, words) for name, given, words in gate_rows(analysis_entry(settings))}
    assert rows["prometheusUrl"] == (None, "(not set: BLUEGREEN_PROMETHEUS_URL must give it where release.py runs)")
    assert rows["interval, count"][1].startswith("4 measurements 90s apart (6m)")
    assert rows["failureLimit"][1] == "2 failed measurement(s) fail the release"
    assert rows["minRequests"][1] == "at least 50 requests in a window (noData: wait)"
    assert rows["latencyP99"][1] == "(none)"
    assert rows["baseline"][1] == ("success rate at most 0.5 points below the old color's; p99 latency at most 20% "
                                   "above the old color's")
    assert rows["dryRun"][1].startswith("true: measured and reported, but it never stops the release")
    assert rows["queries: saturation"] == ("max(x)", "must be at least 0.2 (min)")
    assert gate_rows(analysis_entry(parse_analysis(None, "routing"))) == []
