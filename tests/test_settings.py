"""Config validation: defaults, roles and every refusal, without the engine."""

import json

import pytest
import yaml

from components.config_keys import COLOR_KEYS, COMMON_KEYS, OBJECT_KEYS, ROUTING_KEYS, declaration_problems
from components.domain import ColorSettings, RoutingSettings, SettingsError, show
from components.rules import DIGEST_HEX_LENGTHS, ISTIO_RESERVED_PORTS
from components.settings import declared_defaults, parse_settings
from harness.stacks import DEFAULTS, ROOT
from bluegreen_tools.stack_config import config_text, with_declared_defaults

BLUE = {"color": "blue", "image": "registry.example.com/myapp:v1.2.0"}


def refusal(config, stack="blue", secret_keys=frozenset()) -> str:
    with pytest.raises(SettingsError) as caught:
        parse_settings(config, stack, secret_keys, defaults=DEFAULTS)
    return str(caught.value)


def cli_config(**keys) -> dict:
    """Config as the Pulumi CLI passes it: every Pulumi.yaml default as text, then the stack's keys."""
    return with_declared_defaults({k: config_text(v) for k, v in keys.items()}, DEFAULTS)


def test_pulumi_yaml_declares_every_key_with_type_and_description():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    keys = (COMMON_KEYS | COLOR_KEYS | ROUTING_KEYS) - set(OBJECT_KEYS)
    assert set(declared) == keys
    for key, spec in declared.items():
        assert spec["type"] in ("string", "integer", "boolean", "array"), key
        assert spec["description"], key
        assert "default" in spec, f"{key} has no default, so the CLI would require it on every stack"
    # The object keys the schema cannot type are still documented in the file.
    for key in OBJECT_KEYS:
        assert key in (ROOT / "Pulumi.yaml").read_text()
    assert declaration_problems(declared) == []


def test_the_key_table_finds_what_pulumi_yaml_declares_wrong():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    wrong = {**declared, "replicas": {**declared["replicas"], "type": "string"}, "tls": {"type": "string"},
             "colour": {"type": "string", "default": ""}}
    del wrong["port"]["default"], wrong["hosts"]
    assert declaration_problems(wrong) == [
        "colour is not a key of the program", "replicas is declared as 'string', not 'integer'",
        "port has no default, so the CLI would require it on every stack",
        "hosts is not declared", "tls holds an object, which the project schema cannot declare"]


def test_defaults_come_from_pulumi_yaml_when_the_cli_does_not_inject_them():
    settings = parse_settings(BLUE, "blue", defaults=DEFAULTS)
    assert isinstance(settings, ColorSettings)
    assert (settings.app, settings.namespace, settings.replicas, settings.port, settings.readiness_path) == (
        "myapp", "default", 1, 3000, "/ready")
    assert settings.release == "v1.2.0"  # the image tag
    routing = parse_settings({"active": "blue"}, "routing", defaults=DEFAULTS)
    assert isinstance(routing, RoutingSettings)
    assert routing.hosts == ("*",) and str(routing.test_cookie) == "test=true" and routing.test is None
    assert routing.color_stacks == {"blue": "organization/bluegreen/blue", "green": "organization/bluegreen/green"}


def test_declared_defaults_are_those_of_the_project_file_given(tmp_path):
    project_file = tmp_path / "Pulumi.yaml"
    project_file.write_text("name: p\nconfig:\n  replicas:\n    type: integer\n    default: 2\n"
                            "  hosts:\n    type: array\n    default: [a.example.com]\n")
    assert declared_defaults(project_file) == {"replicas": 2, "hosts": ["a.example.com"]}
    project_file.write_text("name: p\n")
    with pytest.raises(SettingsError, match=r"^Pulumi.yaml has no config: .* \(git checkout -- Pulumi.yaml\)$"):
        declared_defaults(project_file)
    project_file.write_bytes(b"\xff\xfe")
    with pytest.raises(SettingsError, match=r"^Pulumi.yaml cannot be read as the Pulumi project file: "):
        declared_defaults(project_file)


def test_a_key_at_its_default_is_not_set_since_the_cli_passes_every_default():
    # A color stack may hold the routing key testCookie at its default, as the CLI passes it; not at another value.
    assert isinstance(parse_settings({**BLUE, "testCookie": "test=true"}, "blue", defaults=DEFAULTS), ColorSettings)
    assert "which is a color stack" in refusal({**BLUE, "testCookie": "beta=1"})
    # Numbers, switches and lists are compared as data: the CLI passes them as JSON text.
    routing = {"active": "blue", "replicas": "1", "allowLiveUpdate": "false", "hosts": '["*"]'}
    assert isinstance(parse_settings(routing, "routing", defaults=DEFAULTS), RoutingSettings)
    assert "which is the routing stack" in refusal({**routing, "replicas": "2"}, stack="routing")
    # The default is the one given: with another Pulumi.yaml's, the same values swap roles.
    then = {**DEFAULTS, "testCookie": "beta=1"}
    assert isinstance(parse_settings({**BLUE, "testCookie": "beta=1"}, "blue", defaults=then), ColorSettings)
    with pytest.raises(SettingsError, match="which is a color stack"):
        parse_settings({**BLUE, "testCookie": "test=true"}, "blue", defaults=then)


@pytest.mark.parametrize("keys,role", [(BLUE, ColorSettings), ({"active": "green", "test": "blue"}, RoutingSettings)])
def test_config_as_the_cli_passes_it_with_injected_defaults_is_accepted(keys, role):
    settings = parse_settings(cli_config(**keys), "s", defaults=DEFAULTS)
    assert isinstance(settings, role)
    assert parse_settings(cli_config(**keys), "s", defaults=DEFAULTS) == parse_settings(keys, "s", defaults=DEFAULTS)


def test_a_stack_with_both_roles_is_refused_with_the_fix():
    message = refusal({**BLUE, "active": "blue"})
    assert "bluegreen:color and bluegreen:active are both set" in message
    assert "pulumi config rm" in message


def test_a_stack_with_no_role_is_refused_with_the_fix():
    message = refusal({"app": "shop"}, stack="dev")
    assert "neither bluegreen:color nor bluegreen:active" in message
    assert "pulumi config set color blue -s dev" in message and "pulumi config set active blue -s dev" in message


@pytest.mark.parametrize("config,key,value", [
    ({"color": "red", "image": "a/b:1"}, "color", "red"),
    ({"active": "Blue"}, "active", "Blue"),
    ({"active": "blue", "test": "purple"}, "test", "purple"),
])
def test_unknown_colors_are_refused(config, key, value):
    message = refusal(config)
    assert f"bluegreen:{key} is {value!r}" in message
    assert "blue or green" in message and "Fix: pulumi config set" in message


def test_testing_in_the_live_color_is_refused():
    message = refusal({"active": "blue", "test": "blue"}, stack="routing")
    assert "bluegreen:test is 'blue'" in message
    assert "never tested in the live color" in message
    assert "pulumi config set test green -s routing" in message


def test_a_color_stack_needs_an_image():
    message = refusal({"color": "green"}, stack="green")
    assert "bluegreen:image is ''" in message
    assert "pulumi config set image registry.example.com/myapp:v1.0.0 -s green" in message


@pytest.mark.parametrize("image", [
    "MyApp:v1", "myapp:", "myapp:v 1", "https://registry/myapp:v1", "registry.example.com/", "my app",
    "myapp@sha256:abc", "myapp:v1\nkind: Secret", "-myapp:v1", "a" * 300,
])
def test_something_that_is_not_an_image_reference_is_refused(image):
    message = refusal({"color": "blue", "image": image})
    assert message.startswith("bluegreen:image is ")
    assert "not an image reference" in message
    assert "\n" not in message  # hostile values are escaped, never printed raw


@pytest.mark.parametrize("image,release", [
    ("myapp:v1.0", "v1.0"),
    ("registry.example.com:5000/team/myapp:2024.11.27-rc_1", "2024.11.27-rc_1"),
    ("localhost/myapp:v2@sha256:" + "a" * 64, "v2"),
    ("ghcr.io/org/myapp@sha256:0123456789abcdef" + "0" * 48, "0123456789ab"),
])
def test_image_references_are_accepted_and_name_the_release(image, release):
    assert parse_settings({"color": "blue", "image": image}, "blue", defaults=DEFAULTS).release == release


def test_an_explicit_release_overrides_the_tag_and_must_be_a_label_value():
    assert parse_settings({**BLUE, "release": "build-42"}, "blue", defaults=DEFAULTS).release == "build-42"
    message = refusal({**BLUE, "release": "v1/2"})
    assert "bluegreen:release is 'v1/2'" in message and "label value" in message


@pytest.mark.parametrize("value,problem", [("-1", "between 0 and 1000"), ("two", "whole number"),
                                           ("1.5", "whole number")])
def test_bad_replicas_are_refused(value, problem):
    message = refusal({**BLUE, "replicas": value})
    assert f"bluegreen:replicas is {value!r}" in message and problem in message
    assert "pulumi config set replicas 2 -s blue" in message


@pytest.mark.parametrize("value", ["0", "65536", "-80", "http"])
def test_a_port_outside_1_to_65535_is_refused(value):
    message = refusal({**BLUE, "port": value})
    assert f"bluegreen:port is {value!r}" in message
    assert "pulumi config set port 3000 -s blue" in message


def test_readiness_path_must_be_a_path():
    assert "must be a URL path" in refusal({**BLUE, "readinessPath": "ready"})


def test_env_values_from_yaml_become_text_and_bad_names_are_refused():
    settings = parse_settings({**BLUE, "env": json.dumps({"DB_PORT": 5432, "DEBUG": False})}, "blue", defaults=DEFAULTS)
    assert settings.env == {"DB_PORT": "5432", "DEBUG": "false"}
    assert "variable name '1BAD'" in refusal({**BLUE, "env": json.dumps({"1BAD": "x"})})
    assert "must be an object" in refusal({**BLUE, "env": '["NODE_ENV"]'})


def test_secret_env_must_be_a_pulumi_secret_and_its_values_never_show():
    config = {**BLUE, "secretEnv": json.dumps({"DB_PASSWORD": "hunter2-very-secret"})}
    message = refusal(config)
    assert "stored in plain text" in message
    assert "pulumi config set --secret --path 'secretEnv.DB_PASSWORD' <value> -s blue" in message
    assert "hunter2" not in message
    settings = parse_settings(config, "blue", frozenset({"secretEnv"}), defaults=DEFAULTS)
    assert settings.secret_env_names == ("DB_PASSWORD",)
    assert "hunter2" not in repr(settings)  # only the names are kept
    nested = {**BLUE, "secretEnv": json.dumps({"DB_PASSWORD": {"nested": "hunter2"}})}
    assert "hunter2" not in refusal(nested, secret_keys=frozenset({"secretEnv"}))


def test_a_variable_in_both_env_and_secret_env_is_refused():
    config = {**BLUE, "env": json.dumps({"DB_PASSWORD": "x"}), "secretEnv": json.dumps({"DB_PASSWORD": "y"})}
    message = refusal(config, secret_keys=frozenset({"secretEnv"}))
    assert "both set DB_PASSWORD" in message and "pulumi config rm --path 'env.DB_PASSWORD' -s blue" in message


def test_a_misspelled_key_is_refused_with_a_suggestion():
    message = refusal({**BLUE, "replica": "3"})
    assert "bluegreen:replica is not a setting" in message and "did you mean bluegreen:replicas?" in message


def test_a_key_of_the_other_role_is_refused():
    message = refusal({"active": "blue", "image": "myapp:v1"}, stack="routing")
    assert "bluegreen:image is set on stack routing, which is the routing stack" in message
    assert "pulumi config rm image -s routing" in message
    assert "which is a color stack" in refusal({**BLUE, "testCookie": "canary=1"})


@pytest.mark.parametrize("cookie", ["test", "=true", "te st=true", "test=tr;ue", 'test="true"', "test=", "tést=1"])
def test_a_test_cookie_that_is_not_a_valid_cookie_is_refused(cookie):
    message = refusal({"active": "blue", "testCookie": cookie}, stack="routing")
    assert message.startswith("bluegreen:testCookie is ")
    assert "pulumi config set testCookie test=true -s routing" in message


@pytest.mark.parametrize("hosts", ['[]', '["Example.com"]', '["*.*.example.com"]', '["example.com/"]', '"*"'])
def test_bad_hosts_are_refused(hosts):
    assert refusal({"active": "blue", "hosts": hosts}, stack="routing").startswith("bluegreen:hosts is ")


def test_blue_and_green_stacks_must_differ():
    message = refusal({"active": "blue", "greenStack": "organization/bluegreen/blue"}, stack="routing")
    assert "blue and green must be different stacks" in message


@pytest.mark.parametrize("app", ["MyApp", "my_app", "1app", "a" * 50, "app-"])
def test_app_must_be_a_short_dns_label(app):
    assert refusal({**BLUE, "app": app}).startswith(f"bluegreen:app is {app!r}")


def test_migrate_command_is_split_like_a_shell_would():
    settings = parse_settings({**BLUE, "migrateCommand": "npm run migrate -- --schema 'my schema'"}, "blue",
                              defaults=DEFAULTS)
    assert settings.migrate_command == ("npm", "run", "migrate", "--", "--schema", "my schema")
    assert "cannot be split" in refusal({**BLUE, "migrateCommand": "npm run 'migrate"})


def test_an_empty_number_or_switch_means_its_default():
    settings = parse_settings({**BLUE, "replicas": "", "port": "", "allowLiveUpdate": ""}, "blue", defaults=DEFAULTS)
    assert (settings.replicas, settings.port, settings.allow_live_update) == (1, 3000, False)


# ---------------------------------------------------------------- what Istio's webhook (or its sidecar) refuses
# Each case is refused at plan time, naming the key, the value and the fix, so `pulumi up` never gets as far as
# the API server refusing an object half-way through an update.

ROUTING = {"active": "blue"}


@pytest.mark.parametrize("host, problem", [
    ("a" * 64 + ".example.com", "over the 63 a DNS label may have"),                # labels.IsDNS1123Label
    (".".join(["a" * 60] * 5), "a DNS name is at most 253"),                       # CheckDNS1123Preconditions
    ("Shop.example.com", "uppercase"),
    ("shop.example.com.", "ends with '.'"),
    ("shop.*.example.com", "wildcard may only be the whole first label"),          # ValidatePartialWildCard
    ("*shop.example.com", "wildcard may only be the whole first label"),
    ("shop", "short name"),                                                          # Gateway: no short names
    ("example.123", "top-level domain '123' is all digits"),                       # ValidateDNS1123Labels
    ("999.1.1.1", "all digits"),                                                     # not an IP address either
    ("shop..example.com", "empty label"),
    ("-shop.example.com", "is not a DNS label"),
    ("", "it is empty"),
])
def test_a_host_istio_refuses_is_refused_with_the_rule(host, problem):
    message = refusal({**ROUTING, "hosts": json.dumps([host])}, stack="routing")
    assert message.startswith("bluegreen:hosts is ") and problem in message
    assert "Fix: pulumi config set --path 'hosts[0]' example.com -s routing" in message


@pytest.mark.parametrize("hosts", [["*"], ["shop.example.com"], ["*.example.com"], ["10.0.0.1"],
                                   ["a" * 63 + ".example.com"], ["shop.example.com", "shop.example.org"],
                                   ["*.example.com", "example.com"]])
def test_hosts_istio_accepts_are_accepted(hosts):
    assert parse_settings({**ROUTING, "hosts": json.dumps(hosts)}, "routing", defaults=DEFAULTS).hosts == tuple(hosts)


@pytest.mark.parametrize("hosts, pair", [
    (["shop.example.com", "shop.example.com"], "'shop.example.com' and 'shop.example.com'"),
    (["*", "shop.example.com"], "'*' and 'shop.example.com'"),
    (["a.shop.example.com", "*.example.com"], "'a.shop.example.com' and '*.example.com'"),
    (["*.example.com", "*.shop.example.com"], "'*.example.com' and '*.shop.example.com'"),
])
def test_overlapping_hosts_are_refused_as_istio_refuses_duplicate_hosts(hosts, pair):
    # ValidateVirtualService: "duplicate hosts in virtual service", by host.Name.Matches (wildcards included).
    message = refusal({**ROUTING, "hosts": json.dumps(hosts)}, stack="routing")
    assert message.startswith("bluegreen:hosts is ") and pair + " overlap" in message
    assert "pulumi config rm --path 'hosts[1]' -s routing" in message


def test_a_test_cookie_whose_regex_istio_would_refuse_is_refused():
    # validateStringRegexp: a header regex over 1024 characters is refused; every '!' is escaped, so it counts twice.
    message = refusal({**ROUTING, "test": "green", "testCookie": "!" * 500 + "=1"}, stack="routing")
    assert message.startswith("bluegreen:testCookie is '!!!!") and "would be 1028 characters" in message
    assert "longer than 1024" in message and "pulumi config set testCookie test=true -s routing" in message
    parse_settings({**ROUTING, "test": "green", "testCookie": "!" * 498 + "=1"}, "routing",
                   defaults=DEFAULTS)  # 1024: accepted


def test_a_test_token_that_makes_the_regex_too_long_is_refused_without_showing_it():
    token = "T0ken" * 40  # 200 characters: a valid token, but with this cookie name the regex exceeds 1024
    config = {**ROUTING, "test": "green", "testCookie": "!" * 400 + "=1", "testToken": token}
    message = refusal(config, stack="routing", secret_keys=frozenset({"testToken"}))
    assert message.startswith("bluegreen:testToken is [secret]") and "longer than the 1024" in message
    assert token not in message and "a shorter cookie name" in message
    assert parse_settings({**config, "testCookie": "test=1"}, "routing", frozenset({"testToken"}),
                          defaults=DEFAULTS).test_token_set


@pytest.mark.parametrize("port", sorted(ISTIO_RESERVED_PORTS))
def test_a_port_istios_sidecar_uses_is_refused(port):
    message = refusal({**BLUE, "port": str(port)})
    assert message.startswith(f"bluegreen:port is '{port}': Istio's sidecar listens on {port}")
    assert ISTIO_RESERVED_PORTS[port] in message and "pulumi config set port 3000 -s blue" in message


def test_ports_next_to_istios_are_accepted():
    assert [parse_settings({**BLUE, "port": p}, "blue", defaults=DEFAULTS).port
            for p in ("14999", "15003", "15091")] == [14999, 15003, 15091]


@pytest.mark.parametrize("digest, problem", [
    ("sha256:" + "a" * 63, "exactly 64 lowercase hex digits, and this one has 63"),
    ("sha256:" + "a" * 65, "this one has 65"),
    ("sha256:" + "A" * 64, "some uppercase"),
    ("sha512:" + "a" * 64, "a sha512 digest is exactly 128"),
    ("sha384:" + "a" * 64, "a sha384 digest is exactly 96"),
    ("md5:" + "a" * 32, "algorithm 'md5' is not one"),
    ("sha1:" + "a" * 40, "algorithm 'sha1' is not one"),
])
def test_an_image_digest_of_the_wrong_length_or_algorithm_is_refused(digest, problem):
    message = refusal({"color": "blue", "image": "registry.example.com/myapp@" + digest})
    assert message.startswith("bluegreen:image is 'registry.example.com/myapp@") and problem in message
    assert "Fix: pulumi config set image registry.example.com/myapp@sha256:" in message


@pytest.mark.parametrize("algorithm, length", sorted(DIGEST_HEX_LENGTHS.items()))
def test_digests_of_each_registered_algorithm_are_accepted(algorithm, length):
    image = f"myapp@{algorithm}:" + "0123456789abcdef" * (length // 16)
    assert parse_settings({"color": "blue", "image": image}, "blue", defaults=DEFAULTS).release == "0123456789ab"


@pytest.mark.parametrize("key, config", [
    ("image", {**BLUE}), ("app", {**BLUE, "app": "shop"}), ("env", {**BLUE, "env": '{"DB_HOST": "db"}'}),
    ("hosts", {**ROUTING, "hosts": '["shop.example.com"]'}), ("testCookie", {**ROUTING, "testCookie": "a=b"}),
])
def test_a_secret_in_a_key_the_program_shows_in_plain_text_is_refused_by_name(key, config):
    message = refusal(config, secret_keys=frozenset({key}))
    assert message.startswith(f"bluegreen:{key} is stored as a secret on stack blue")
    assert "would not stay secret" in message and f"pulumi config set {key} <value> -s blue (without --secret)" in message
    assert all(str(value) not in message for value in config.values() if len(str(value)) > 5)


def test_show_never_fails_on_a_value_nested_too_deep():
    deep = []
    for _ in range(100_000):
        deep = [deep]
    assert "too deeply nested" in show(deep)


def test_the_analysis_object_rides_on_the_routing_settings_and_is_absent_by_default():
    assert parse_settings(cli_config(**ROUTING), "routing", defaults=DEFAULTS).analysis is None
    config = cli_config(**ROUTING, analysis=json.dumps({"successRate": "99.5", "count": "3"}))
    analysis = parse_settings(config, "routing", defaults=DEFAULTS).analysis
    assert (analysis.success_rate, analysis.count, analysis.interval) == (99.5, 3, "30s")


def test_a_bad_analysis_is_refused_naming_the_key_path_the_value_and_the_fix():
    message = refusal({**ROUTING, "analysis": json.dumps({"interval": "30"})}, stack="routing")
    assert message == ("bluegreen:analysis.interval is '30': it must be a duration of whole milliseconds from 1s to "
                       "3600s, like 30s or 1m30s. Fix: pulumi config set --path 'analysis.interval' 30s -s routing")
    assert "bluegreen:analysis is stored as a secret" in refusal(
        {**ROUTING, "analysis": "{}"}, stack="routing", secret_keys=frozenset({"analysis"}))
    assert "bluegreen:analysis is set on stack blue, which is a color stack" in refusal(
        {**BLUE, "analysis": json.dumps({"count": 3})})
