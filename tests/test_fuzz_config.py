"""Bad input, tried systematically: hostile values in every config key of both roles.

Each example starts from a valid config of one role, whose free-text keys hold odd but valid values
(regex metacharacters in cookies, quotes and newlines in variables, non-ASCII paths), then replaces
keys with hostile values (regex metacharacters, quotes, newlines, very long or non-ASCII text, JSON of
the wrong shape, deep nesting). The config is either accepted, and renders objects that pass the strict
schema check, or refused with a message that names a replaced key, before any Kubernetes object is
declared; never a traceback. Secret values carry a marker that must never show in a message, a warning,
an output or a plain input.

Most examples run parse_settings alone; fewer run the whole program under the mock engine.
Derandomized, so CI sees the same examples on every run.
"""

from __future__ import annotations

import json
import operator
import re
import shlex
import string
from decimal import Decimal

import pulumi
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from harness.stacks import BLUE_STACK, DEFAULTS, GREEN_STACK, assert_schema_valid, color_outputs, run_stack
from bluegreen_tools.secret_values import mask, reveal
from components.contract import ColorOutputs, RoutingOutputs
from components.routes import color_for
from components.config_keys import COLOR_KEYS, COMMON_KEYS, ROUTING_KEYS, SECRET_KEYS
from components.domain import SettingsError
from components.rules import (ISTIO_RESERVED_PORTS, MAX_APP_LENGTH, RETRY_ON, duration_ms, hosts_overlap,
                              retry_condition_problem)
from components.settings import parse_settings
from components.stackfile import StackFileError, stack_config

MARK = "Qx7Kw9"  # in every secret value; nothing shown to a person may hold it
ALL_KEYS = sorted(COMMON_KEYS | COLOR_KEYS | ROUTING_KEYS)

RANDOM = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PER_KEY = settings(RANDOM, max_examples=12)  # times every key of both roles
PER_KEY_FULL = settings(RANDOM, max_examples=3)
FULL = settings(RANDOM, max_examples=40)

NASTY = [
    "", " ", "\t", "\n", "myapp\n", "\nmyapp", "blue\n", "*", ".*", "^.*$", "(a+)+$", "[", "\\", "\\n", "'", '"',
    "`id`", "$(id)", "${HOME}", "%s%n", "a;b", "a,b", "a=b", "=", "test=true", "test=true; x=1", "é", "日本語",
    "\u202eevil", "\x00", "\x7f", "true", "True", "false", "null", "0", "-1", "1.5", "1e309", "NaN", "[]", "{}",
    '["*"]', '{"a": 1}', '{"a": {"b": []}}', "[1, 2]", "latest", "blue", "green", "purple",
    "organization/bluegreen/blue", "a/b/c/d", "*.example.com", "EXAMPLE.COM", "500ms", "0s", "1h", "24h1ms",
    "5xx,reset", "5xx,,reset", "100m", "256", "256Mi", "1e3", "myapp:latest", "myapp@sha256:abc",
    "[" * 3000 + "]" * 3000, '{"a":' * 3000 + "1" + "}" * 3000, "9" * 5000, "a" * 300, "-" * 64,
    # What Istio's webhook or its sidecar refuses (components/rules.py mirrors each rule)
    "15021", "15090", "15006", '["shop"]', '["example.123"]', '["*.*.example.com"]', '["' + "a" * 64 + '.com"]',
    '["*", "shop.example.com"]', '["shop.example.com."]', "myapp@sha512:" + "a" * 64, "myapp@sha256:" + "A" * 64,
    "myapp@md5:" + "a" * 32, "test=" + "!" * 600, "!" * 600 + "=1",
]
# Every character UTF-8 encodes, as st.text's default alphabet, without the table that default computes from
# the codec: 3.4 CPU-seconds on a fresh clone, whose .hypothesis folder does not hold it yet.
UNICODE = st.characters(exclude_categories=["Cs"])


LOWER, UPPER, DIGITS = string.ascii_lowercase, string.ascii_uppercase, string.digits
LOWER_ALNUM, ALNUM = LOWER + DIGITS, string.ascii_letters + DIGITS


def kube_name(first: str, inner: str, last: str, longest: int):
    """What `[first]([inner]{0,longest-2}[last])?` matches, the shape of a Kubernetes or DNS name. Built from
    st.text, not st.from_regex: a regex draw cost 3 to 4 ms, five times this, and half the module's drawing time."""
    return st.builds(lambda head, tail: head + "".join(tail or ()), st.sampled_from(first),
                     st.none() | st.tuples(st.text(inner, max_size=longest - 2), st.sampled_from(last)))


def number(low: int, high: int, *suffixes: str):
    return st.builds("{}{}".format, st.integers(low, high), st.sampled_from(suffixes or ("",)))


text = st.one_of(
    st.sampled_from(NASTY),
    st.text(UNICODE, max_size=30),
    st.text(alphabet="().*+?^$[]{}|\\\"'`;,=: \t\n\r/@%-_~!#&", max_size=30),
    st.builds(operator.mul, st.sampled_from(["a", "é", "\\", "*", "9", "-", "."]), st.integers(60, 3000)),
)
json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
).map(json.dumps)
hostile = st.one_of(text, json_text)

# Odd but valid: what a config may hold and the program must render correctly.
COOKIE_NAME_CHARS = "!#$%&'*+-.^_`|~" + ALNUM
COOKIE_VALUE_CHARS = COOKIE_NAME_CHARS + "()/:<=>?@[]{}"
# Plain names start lowercase, secret ones uppercase: a valid base never sets one variable twice.
VARIABLE_CHARS = ALNUM + "_"
ENV = st.dictionaries(st.builds(operator.add, st.sampled_from(LOWER + "_"), st.text(VARIABLE_CHARS, max_size=12)),
                      text, max_size=3)
SECRET_ENV = st.dictionaries(st.builds(operator.add, st.sampled_from(UPPER), st.text(VARIABLE_CHARS, max_size=12)),
                             text, max_size=3)
# A full name (Istio's Gateway refuses a short one) whose top-level domain is not all digits.
DNS_NAME = st.builds(lambda wildcard, labels, top: wildcard + "".join(label + "." for label in labels) + top,
                     st.sampled_from(["", "*."]),
                     st.lists(kube_name(LOWER_ALNUM, LOWER_ALNUM + "-", LOWER_ALNUM, 12), min_size=1, max_size=3),
                     kube_name(LOWER, LOWER_ALNUM + "-", LOWER_ALNUM, 10))


def distinct_hosts(hosts: list) -> bool:
    """No two hosts that Istio would take as duplicates (one covers the other)."""
    return not any(hosts_overlap(a, b) for i, a in enumerate(hosts) for b in hosts[i + 1:])

VALID = {
    "app": kube_name(LOWER, LOWER_ALNUM + "-", LOWER_ALNUM, 40),
    "namespace": kube_name(LOWER_ALNUM, LOWER_ALNUM + "-", LOWER_ALNUM, 63),
    "release": kube_name(ALNUM, ALNUM + "-_.", ALNUM, 63),
    "readinessPath": st.text(st.characters(exclude_categories=["Z", "C"]), max_size=20).map("/".__add__),
    "env": ENV.map(json.dumps),
    "secretEnv": SECRET_ENV.map(lambda env: json.dumps({name: MARK + value for name, value in env.items()})),
    "migrateCommand": st.lists(text, max_size=3).map(shlex.join),
    "testCookie": st.tuples(st.text(COOKIE_NAME_CHARS, min_size=1, max_size=12),
                            st.text(COOKIE_VALUE_CHARS, min_size=1, max_size=12)).map("=".join),
    "testToken": st.text(COOKIE_VALUE_CHARS, min_size=10, max_size=40).map(MARK.__add__),
    "hosts": st.one_of(st.just(["*"]), st.lists(DNS_NAME, min_size=1, max_size=3).filter(distinct_hosts)).map(json.dumps),
    "tls": DNS_NAME.filter(lambda name: "*" not in name).map(lambda name: json.dumps({"credentialName": name})),
    "color": st.sampled_from(["blue", "green"]),
    "active": st.sampled_from(["blue", "green"]),
    "test": st.sampled_from(["", "blue", "green"]),
    "replicas": st.integers(0, 1000).map(str),
    "port": st.integers(1, 65535).filter(lambda port: port not in ISTIO_RESERVED_PORTS).map(str),
    "retryAttempts": st.integers(0, 10).map(str),
    "retryOn": st.lists(st.sampled_from(RETRY_ON), min_size=1, max_size=4).map(",".join),
    **dict.fromkeys(["timeout", "retryPerTryTimeout"], number(1, 999, "ms", "s", "m")),
    **dict.fromkeys(["cpuRequest", "cpuLimit"], number(1, 999, "m") | number(1, 9) | number(1, 9).map("0.".__add__)),
    **dict.fromkeys(["memoryRequest", "memoryLimit"], number(10, 999, "Mi", "M") | number(1, 3, "Gi")),
    **dict.fromkeys(["allowLiveUpdate", "allowMutableImage", "readOnlyRootFilesystem"],
                    st.sampled_from(["true", "false", "True", " false "])),
}
OTHER = {"blue": "green", "green": "blue"}
ROLE_BASES = {
    "color": st.fixed_dictionaries(
        {"color": st.sampled_from(["blue", "green"]),
         "image": st.sampled_from(["registry.example.com/myapp:v1.0.0", "myapp:1.2", "localhost:5000/a/b:v2",
                                   "myapp@sha256:" + "ab" * 32])},
        optional={
            **{key: VALID[key] for key in ("app", "namespace", "release", "readinessPath", "env", "secretEnv",
                                           "migrateCommand")},
            "replicas": st.integers(0, 4).map(str),
            "port": st.sampled_from(["3000", "8080", "1"]),
            "routingStack": st.sampled_from(["organization/bluegreen/routing", ""]),
            "allowLiveUpdate": st.sampled_from(["true", "false"]),
            "allowMutableImage": st.sampled_from(["true", "false"]),
            "readOnlyRootFilesystem": st.sampled_from(["true", "false"]),
            "cpuRequest": st.sampled_from(["100m", "0.25", ""]),
            "cpuLimit": st.sampled_from(["1", "2", ""]),
            "memoryRequest": st.sampled_from(["128Mi", "256M", ""]),
            "memoryLimit": st.sampled_from(["256Mi", "1Gi", ""]),
        }),
    "routing": st.fixed_dictionaries(
        {"active": st.sampled_from(["blue", "green"]), "test": st.booleans()},
        optional={
            **{key: VALID[key] for key in ("app", "namespace", "testCookie", "testToken", "hosts")},
            "tls": st.sampled_from(['{"credentialName": "myapp-tls"}', "{}"]),
            "timeout": st.sampled_from(["30s", "", "500ms", "1m30s"]),
            "retryAttempts": st.sampled_from(["0", "2", "10"]),
            "retryPerTryTimeout": st.sampled_from(["", "100ms"]),
            "retryOn": st.sampled_from(["connect-failure,refused-stream", "5xx,reset", "gateway-error"]),
        }).map(lambda base: {**base, "test": OTHER[base["active"]] if base["test"] else ""}),
}
ROLES = sorted(ROLE_BASES)


@st.composite
def hostile_config(draw, key=None, max_keys: int = 1):
    """A valid config of one role, with `key` or 1..max_keys keys (of any role) replaced by hostile values."""
    role = draw(st.sampled_from(ROLES))
    config = dict(draw(ROLE_BASES[role]))
    keys = [key] if key else draw(st.lists(st.sampled_from(ALL_KEYS), min_size=1, max_size=max_keys, unique=True))
    for key in keys:
        value = draw(st.one_of(hostile, VALID.get(key, hostile)))
        if key == "testToken":
            value = MARK + value
        elif key == "secretEnv" and MARK not in value:
            value = json.dumps({draw(st.sampled_from(["DB_PASSWORD", "9x", "A B"])): MARK + value})
        config[key] = value
    return role, config, keys


def secret_keys_of(config) -> frozenset[str]:
    return frozenset(SECRET_KEYS & set(config))


def stack_outputs(config):
    """Both colors of the config's app deployed and ready, under whatever stack names the config gives them."""
    app = config.get("app") or "myapp"
    return {config.get("blueStack") or BLUE_STACK: color_outputs("blue", "v1.0.0", app=app),
            config.get("greenStack") or GREEN_STACK: color_outputs("green", "v1.1.0", app=app)}


def run(role, config):
    result = run_stack(role, config, secret_keys_of(config), stack_outputs(config))
    shown = json.dumps([mask(r.inputs) for r in result.resources] + [result.outputs, result.warnings], default=str)
    assert MARK not in shown, "a secret value shows in the plan, the outputs or the logs"
    return result


def check_refusal(message: str, keys) -> None:
    assert any(re.search(rf"bluegreen:{re.escape(key)}\b", message) for key in keys), \
        f"the refusal names none of {keys}: {message}"
    assert MARK not in message, f"a secret value shows in: {message}"
    assert "Traceback" not in message


def check_accepted(role, result) -> None:
    assert_schema_valid(result)
    contract = set((RoutingOutputs if role == "routing" else ColorOutputs).names())
    # Null when there is no test route, and null outputs are not exported.
    optional = {RoutingOutputs.output("test"), RoutingOutputs.output("test_release")}
    assert contract - optional <= set(result.outputs) <= contract


def check_parse(case) -> None:
    role, config, keys = case
    try:
        parse_settings(config, role, secret_keys_of(config), defaults=DEFAULTS)
        event(f"{role} stack: accepted")
    except SettingsError as error:
        event(f"{role} stack: refused")
        check_refusal(str(error), keys)


def check_program(case) -> None:
    role, config, keys = case
    result = run(role, config)
    event(f"{role} stack: {'refused' if result.error else 'accepted'}")
    if result.error is None:
        check_accepted(role, result)
        return
    assert isinstance(result.error, pulumi.RunError), f"not a refusal but {result.error!r}"
    check_refusal(str(result.error), keys)
    assert result.kubernetes_objects == [], "a refused run declared Kubernetes objects"


@pytest.mark.parametrize("key", ALL_KEYS)
def test_a_hostile_value_in_any_key_is_accepted_or_refused_by_name(key):
    PER_KEY(given(hostile_config(key))(check_parse))()


@RANDOM
@given(hostile_config(max_keys=4))
def test_several_hostile_keys_are_refused_naming_a_key_of_the_config(case):
    # With several keys changed, the role itself may change, and the message then names a key of the other role.
    role, config, keys = case
    check_parse((role, config, sorted(config)))


@pytest.mark.parametrize("key", ALL_KEYS)
def test_the_program_renders_valid_objects_or_declares_nothing(key):
    PER_KEY_FULL(given(hostile_config(key))(check_program))()


@FULL
@given(hostile_config(max_keys=3))
def test_the_program_with_several_hostile_keys(case):
    role, config, keys = case
    check_program((role, config, sorted(config)))


@FULL
@given(st.sampled_from(ROLES).flatmap(lambda role: st.tuples(st.just(role), ROLE_BASES[role])))
def test_odd_but_valid_config_is_accepted_and_routes_as_configured(case):
    role, config = case
    result = run(role, config)
    assert result.error is None, f"a valid config was refused: {result.error}"
    check_accepted(role, result)
    if role == "routing" and config["test"]:
        http = reveal(result.one("VirtualService").inputs)["spec"]["http"]
        name, _, value = config.get("testCookie", "test=true").partition("=")
        cookie = f"{name}={config['testToken']}" if "testToken" in config else f"{name}={value}"
        assert color_for(http, {"Cookie": f"a=b; {cookie}"}) == config["test"]
        assert color_for(http, {"Cookie": cookie + "x"}) == config["active"]
        if "testToken" in config:
            assert color_for(http, {"Cookie": f"{name}={value}"}) == config["active"]


# ---------------------------------------------------------------- stack files, as the CLI reads them

YAML_SYNTAX = st.text(alphabet=":-[]{},&*!|>'\"#%@`?~\t\n ab01.\x00\x07é", max_size=80)
LINES = st.lists(st.sampled_from(["config:", "  bluegreen:app: x", "  bluegreen:env:", "    A: &a [1, *a]", "- x",
                                  "  bluegreen:env: {A: .nan}", "  bluegreen:app: !!binary aGk=", "a: &b [*b, *b]",
                                  "  x: *b", "---", "  bluegreen:app: 2024-01-01", "\tbad: tab", "  k: v", "  k: v"]),
                 max_size=8).map("\n".join)


@settings(RANDOM, max_examples=150)
@given(st.one_of(YAML_SYNTAX, LINES))
def test_any_stack_file_is_read_or_refused_in_one_line(text):
    try:
        config = stack_config(text)
    except StackFileError as error:
        event("refused")
        assert "\n" not in str(error) and str(error).startswith("it ")
        return
    event("read")
    assert isinstance(config, dict) and all(isinstance(key, str) for key in config)
    json.dumps(config, allow_nan=False)  # what Pulumi passes on is JSON


WORDS = st.text(alphabet=string.ascii_letters + " -_.", max_size=12)  # no digits: PyYAML 1.1 and YAML 1.2 agree
DATA = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | WORDS,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(WORDS, inner, max_size=3), max_leaves=8)


@settings(RANDOM, max_examples=100)
@given(st.dictionaries(st.sampled_from(ALL_KEYS), st.one_of(WORDS, DATA), max_size=5))
def test_a_stack_file_written_by_a_yaml_tool_reads_back_as_the_cli_passes_it(values):
    import yaml
    text = yaml.safe_dump({"config": {f"bluegreen:{key}": value for key, value in values.items()}})
    read = stack_config(text)
    for key, value in values.items():
        got = read[f"bluegreen:{key}"]
        if isinstance(value, (dict, list)):
            assert got == value
        else:  # a scalar reaches the program as its text; an empty one as ""
            assert got == ("" if value is None else {True: "true", False: "false"}.get(value, str(value)))


# ---------------------------------------------------------------- Istio's own grammar (components/rules.py)


@pytest.mark.parametrize("text, ms", [
    ("1000us", Decimal(1)), ("1000\u00b5s", Decimal(1)), ("1000000ns", Decimal(1)), (".5s", Decimal(500)),
    ("1.s", Decimal(1000)), ("+2s", Decimal(2000)), ("25h", Decimal(90_000_000)), ("1h1m1s1ms", Decimal(3_661_001)),
    ("1.5ms", Decimal("1.5")), ("0", Decimal(0)), ("-1s", Decimal(-1000)),
])
def test_durations_are_read_as_go_reads_them(text, ms):
    # istiod decodes a Duration with Go's time.ParseDuration, and the CRD's CEL rule parses it the same way
    assert duration_ms(text) == ms


@pytest.mark.parametrize("text", ["10", "1d", "1 s", "2s\n", ".s", "1e3s", "s", "", "2562048h"])
def test_what_go_cannot_read_as_a_duration_is_none(text):
    assert duration_ms(text) is None


@pytest.mark.parametrize("condition", ["503", "retriable-4xx", "425", "+503", "0503", "unavailable"])
def test_istios_retry_conditions_include_http_status_codes(condition):
    assert retry_condition_problem(condition) is None


@pytest.mark.parametrize("condition, problem", [
    ("999", "not an HTTP status code"), ("-503", "not an HTTP status code"), ("306", "not an HTTP status code"),
    ("bogus", "nor an HTTP status code"), (" 5xx", "nor an HTTP status code"), ("", "nor an HTTP status code"),
])
def test_a_retry_condition_istio_refuses_is_named(condition, problem):
    assert problem in retry_condition_problem(condition)


@pytest.mark.parametrize("host", ["::ffff:1.2.3.4", "2001:db8::1.2.3.4", "192.168.0.1"])
def test_an_ip_address_with_a_dot_is_a_host_istio_takes(host):
    assert parse_settings({"active": "blue", "hosts": [host]}, "routing", defaults=DEFAULTS).hosts == (host,)


@pytest.mark.parametrize("host, problem", [("::1", "short name"), ("fe80::1.2.3.4%eth0", "IPv6 zone"),
                                           ("::FFFF:1.2.3.4", "uppercase")])
def test_an_ip_address_a_gateway_cannot_take_is_refused_with_the_reason(host, problem):
    with pytest.raises(SettingsError, match=problem):
        parse_settings({"active": "blue", "hosts": [host]}, "routing", defaults=DEFAULTS)


def test_the_longest_app_name_fits_every_object_name_and_label():
    # Job <app>-green-migrate is the longest name; it is also its pods' job-name label, at most 63 characters
    assert len("a" * MAX_APP_LENGTH + "-green-migrate") == 63
