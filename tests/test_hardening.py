"""Production hardening (issue 5): a test route nobody can guess, pod security, TLS, timeouts and retries.

Every test runs the real program under the mock engine, or parse_settings where only validation is at stake.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from harness.stacks import DEFAULTS, assert_schema_valid, deployed, run_stack
from bluegreen_tools.secret_values import SecretValue, mask, reveal
from bluegreen_tools.stack_config import stack_file_config
from components.routes import color_for
from components.rules import parse_quantity
from components.domain import SettingsError
from components.settings import parse_settings

TOKEN = "Zt7-qP2xW9_kL4mN8vB3cR6y"  # a valid, unguessable cookie value
COLOR = {"color": "blue", "image": "registry.example.com/myapp:v1.0.0"}
DIGEST = "sha256:" + "0123456789abcdef" * 4


def shows_token(text: str) -> bool:
    """Whether text holds the token, plainly or as escaped in a regex (any run of 6 of its letters and digits)."""
    return any(part in text for part in re.findall(r"[A-Za-z0-9]{6,}", TOKEN))


def routing(secret_keys=frozenset(), outputs=None, **config):
    config.setdefault("active", "blue")
    return run_stack("routing", config, secret_keys, deployed() if outputs is None else outputs)


def with_token(token=TOKEN, **config):
    config.setdefault("test", "green")
    return routing(secret_keys={"testToken"}, testToken=token, **config)


def color(**config):
    return run_stack("blue", {**COLOR, **config})


def refusal(run) -> str:
    """The message of a refused run, after checking that the refusal declared nothing."""
    assert run.error is not None, "the program accepted the config"
    assert not run.kubernetes_objects, "a refused run declared Kubernetes objects"
    return str(run.error)


def http_of(run) -> list:
    return reveal(run.one("VirtualService").inputs)["spec"]["http"]


def container(run, kind="Deployment") -> dict:
    (only,) = run.one(kind).inputs["spec"]["template"]["spec"]["containers"]
    return only


# --- The test route --------------------------------------------------------------------------------------------


def test_with_a_token_only_the_token_cookie_reaches_the_test_color():
    run = with_token()
    assert run.error is None
    http = http_of(run)
    assert color_for(http, {"Cookie": f"test={TOKEN}"}) == "green"
    assert color_for(http, {"Cookie": f"a=1; test={TOKEN}; b=2"}) == "green"
    # The tutorial's cookie, a near miss, or the token under another name: users' color, like any request.
    assert color_for(http, {"Cookie": "test=true"}) == "blue"
    assert color_for(http, {"Cookie": f"test={TOKEN[:-1]}"}) == "blue"
    assert color_for(http, {"Cookie": f"other={TOKEN}"}) == "blue"
    assert color_for(http, {}) == "blue"


def test_the_token_cookie_takes_its_name_from_test_cookie():
    http = http_of(with_token(testCookie="qa=yes"))
    assert color_for(http, {"Cookie": f"qa={TOKEN}"}) == "green"
    assert color_for(http, {"Cookie": "qa=yes"}) == "blue"


def test_the_token_stays_secret_in_state_outputs_and_logs():
    run = with_token()
    assert run.error is None and run.warnings == []
    assert isinstance(run.one("VirtualService").inputs["spec"], SecretValue)
    everything_shown = json.dumps([mask(r.inputs) for r in run.resources] + [run.outputs], default=str)
    assert not shows_token(everything_shown)
    assert shows_token(json.dumps(http_of(run)))  # the secret does hold it: the masking above is what hides it
    assert run.outputs == {"active": "blue", "test": "green", "activeRelease": "v1.0.0", "testRelease": "v1.1.0"}


def test_without_a_test_route_the_routes_stay_readable_in_the_plan():
    run = routing(secret_keys={"testToken"}, testToken=TOKEN)
    assert run.error is None and run.warnings == []
    assert not isinstance(run.one("VirtualService").inputs["spec"], SecretValue)


def test_without_a_token_the_test_route_is_the_tutorials_and_one_warning_says_it_is_open():
    run = routing(test="green")
    assert run.error is None
    assert color_for(http_of(run), {"Cookie": "test=true"}) == "green"
    assert len(run.warnings) == 1
    assert "bluegreen:testToken is not set" in run.warnings[0] and "test=true" in run.warnings[0]
    assert "pulumi config set --secret testToken" in run.warnings[0]


def test_no_warning_when_no_test_route_exists():
    assert routing().warnings == []


@pytest.mark.parametrize("token, problem", [
    ("a" * 15, "shorter than 16"),
    ("Zt7qP2xW9kL4mN8v;x", "cookie value"),
    ("Zt7qP2xW9kL4mN8v x", "cookie value"),
    ('Zt7qP2xW9kL4mN8v"x', "cookie value"),
    ("Zt7qP2xW9kL4mN8v,x", "cookie value"),
    ("Zt7qP2xW9kL4mN8v\\x", "cookie value"),
    ("Zt7qP2xW9kL4mN8vé", "cookie value"),
    ("Zt7qP2xW9kL4mN8vxx\n", "cookie value"),
    ("Z" * 257, "at most 256"),
])
def test_a_weak_or_invalid_token_is_refused_without_showing_it(token, problem):
    run = with_token(token)
    message = refusal(run)
    assert message.startswith("bluegreen:testToken is [secret]:") and problem in message
    assert token not in message and token.strip() not in message
    assert "openssl rand" in message


def test_the_shortest_accepted_token_has_16_characters():
    assert with_token("a" * 16).error is None


def test_a_token_stored_in_plain_text_is_refused_without_showing_it():
    message = refusal(routing(testToken=TOKEN, test="green"))
    assert "bluegreen:testToken is stored in plain text" in message and TOKEN not in message
    assert "pulumi config set --secret testToken" in message


@pytest.mark.parametrize("cookie", ["test=true\n", "te st=true", "test=tr;ue", "test=", "=true", "test"])
def test_a_test_cookie_that_is_not_a_cookie_is_refused(cookie):
    with pytest.raises(SettingsError, match="^bluegreen:testCookie is"):
        parse_settings({"active": "blue", "test": "green", "testCookie": cookie}, "routing", defaults=DEFAULTS)


# --- Pods ------------------------------------------------------------------------------------------------------


RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}, "readOnlyRootFilesystem": False}


def test_every_container_runs_restricted_with_the_default_resources():
    run = color(migrateCommand="npm run migrate")
    assert run.error is None
    assert_schema_valid(run)
    resources = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
    for kind in ("Deployment", "Job"):
        assert container(run, kind)["securityContext"] == RESTRICTED, kind
        assert container(run, kind)["resources"] == resources, kind


def test_read_only_root_filesystem_and_resources_are_configurable():
    run = color(readOnlyRootFilesystem=True, cpuRequest="250m", cpuLimit="", memoryRequest="128Mi",
                memoryLimit="1Gi", migrateCommand="npm run migrate")
    assert run.error is None
    for kind in ("Deployment", "Job"):
        assert container(run, kind)["securityContext"]["readOnlyRootFilesystem"] is True
        assert container(run, kind)["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"},
                                                     "limits": {"memory": "1Gi"}}


@pytest.mark.parametrize("key, value, problem", [
    ("memoryLimit", "256", "between 4Mi and 4Ti"),  # bytes: the unit was forgotten
    ("memoryRequest", "8Ti", "between 4Mi and 4Ti"),
    ("cpuRequest", "0.0001", "between 1m and 1000"),
    ("cpuLimit", "1.5 cores", "Kubernetes quantity"),
    ("cpuLimit", "-1", "Kubernetes quantity"),
    ("cpuLimit", "1\n", "Kubernetes quantity"),
    ("cpuRequest", "2", "more than bluegreen:cpuLimit"),
    ("memoryRequest", "1Gi", "more than bluegreen:memoryLimit"),
])
def test_a_bad_resource_quantity_is_refused(key, value, problem):
    message = refusal(color(**{key: value}))
    assert message.startswith(f"bluegreen:{key} is {value!r}:") and problem in message
    assert f"pulumi config set {key} " in message


@pytest.mark.parametrize("quantity", ["500m", "0.5", ".5", "2", "2e0", "1k"])
def test_cpu_quantities_in_every_kubernetes_form_are_accepted(quantity):
    settings = parse_settings({**COLOR, "cpuLimit": quantity, "cpuRequest": "1m"}, "blue", defaults=DEFAULTS)
    assert settings.limits["cpu"] == quantity


@pytest.mark.parametrize("key, value, resource, bounds", [
    ("memoryRequest", "1E", "memory", "4Mi and 4Ti"),
    ("memoryLimit", "1E", "memory", "4Mi and 4Ti"),
    ("cpuRequest", "1E", "cpu", "1m and 1000 (cores)"),
    ("memoryRequest", "1Ei", "memory", "4Mi and 4Ti"),
    ("cpuLimit", "2Ei", "cpu", "1m and 1000 (cores)"),
])
def test_exa_quantities_are_read_as_kubernetes_reads_them_and_refused_as_too_large(key, value, resource, bounds):
    # E and Ei are suffixes (exa, exbi) to Kubernetes, not an exponent without digits: a range refusal, not a crash.
    with pytest.raises(SettingsError) as caught:
        parse_settings({**COLOR, key: value}, "blue", defaults=DEFAULTS)
    example = DEFAULTS[key]
    assert str(caught.value) == (f"bluegreen:{key} is {value!r}: it must be a Kubernetes quantity of {resource} "
                                 f"between {bounds}, e.g. {example}. Fix: pulumi config set {key} {example} -s blue")


def test_quantity_suffixes_mean_what_they_mean_to_kubernetes():
    assert parse_quantity("1E") == 10 ** 18 and parse_quantity("1.5E") == 15 * 10 ** 17
    assert parse_quantity("1Ei") == 2 ** 60 and parse_quantity("2Ei") == 2 ** 61
    assert parse_quantity("1E3") == 1000 and parse_quantity("5e-1") == Decimal("0.5")
    assert parse_quantity("1e") is None and parse_quantity("1Ee") is None


def test_a_color_with_several_pods_gets_a_disruption_budget_over_exactly_its_pods():
    run = color(replicas=3)
    assert run.error is None
    assert_schema_valid(run)
    budget = run.one("PodDisruptionBudget")
    assert budget.k8s_name == "myapp-blue"
    assert budget.inputs["spec"] == {"maxUnavailable": 1,
                                     "selector": {"matchLabels": {"app": "myapp", "color": "blue"}}}
    pod_labels = run.one("Deployment").inputs["spec"]["template"]["metadata"]["labels"]
    assert budget.inputs["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("replicas", [0, 1])
def test_no_disruption_budget_for_a_single_pod(replicas):
    # With one pod, a budget could only block every node drain.
    run = color(replicas=replicas)
    assert run.error is None and run.of_kind("PodDisruptionBudget") == []


def test_pods_spread_over_nodes_without_blocking_a_small_cluster():
    spec = color(replicas=2).one("Deployment").inputs["spec"]["template"]["spec"]
    assert spec["topologySpreadConstraints"] == [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "myapp", "color": "blue"}},
    }]


@pytest.mark.parametrize("image", ["registry.example.com/myapp", "registry.example.com/myapp:latest",
                                   "localhost:5000/myapp"])
def test_an_image_without_a_fixed_release_is_refused_unless_allowed(image):
    message = refusal(color(image=image))
    assert message.startswith(f"bluegreen:image is {image!r}: it names no fixed release")
    assert "pulumi config set allowMutableImage true -s blue" in message
    run = color(image=image, allowMutableImage=True)
    assert run.error is None and run.outputs["release"] == "latest"


@pytest.mark.parametrize("image, release", [("registry.example.com/myapp@" + DIGEST, "0123456789ab"),
                                            ("registry.example.com/myapp:latest@" + DIGEST, "0123456789ab"),
                                            ("registry.example.com/myapp:v1.0.0@" + DIGEST, "v1.0.0")])
def test_an_image_pinned_by_digest_is_accepted_and_released_as_its_tag_else_its_short_digest(image, release):
    run = color(image=image)
    assert run.error is None
    assert run.outputs["release"] == release
    assert container(run)["image"] == image


def test_a_tag_that_is_no_label_value_is_refused_naming_the_image():
    message = refusal(color(image="registry.example.com/myapp:v1_"))
    assert message.startswith("bluegreen:image is") and "pulumi config set release" in message


# --- Gateway ---------------------------------------------------------------------------------------------------


def servers(run) -> list:
    return run.one("Gateway").inputs["spec"]["servers"]


def test_without_tls_the_gateway_serves_plain_http():
    assert servers(routing()) == [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]


def test_tls_serves_https_and_redirects_http_for_every_host():
    run = routing(hosts=["app.example.com", "www.example.com"], tls={"credentialName": "myapp-tls"})
    assert run.error is None
    assert_schema_valid(run)
    hosts = ["app.example.com", "www.example.com"]
    assert servers(run) == [
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts, "tls": {"httpsRedirect": True}},
        {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": hosts,
         "tls": {"mode": "SIMPLE", "credentialName": "myapp-tls"}},
    ]


def test_tls_hosts_may_narrow_https_to_hosts_the_routes_answer_for():
    run = routing(hosts=["*.example.com"], tls={"credentialName": "myapp-tls", "hosts": ["app.example.com"]})
    assert run.error is None and servers(run)[1]["hosts"] == ["app.example.com"]


@pytest.mark.parametrize("tls, key, problem", [
    ({"credentialName": "myapp-tls", "hosts": ["other.org"]}, "tls.hosts", "would reach no route"),
    ({"credentialName": "myapp-tls", "hosts": []}, "tls.hosts", "at least one host"),
    ({"credentialName": "My_TLS"}, "tls.credentialName", "Kubernetes TLS Secret"),
    ({"hosts": ["app.example.com"]}, "tls.credentialName", "Kubernetes TLS Secret"),
    ({"credentialName": "myapp-tls", "credentialname": "x"}, "tls", "credentialname"),
    (["myapp-tls"], "tls", "an object"),
])
def test_a_bad_tls_setting_is_refused(tls, key, problem):
    message = refusal(routing(hosts=["app.example.com"], tls=tls))
    assert message.startswith(f"bluegreen:{key} ") and problem in message and "Fix: pulumi config" in message


# --- Timeouts and retries --------------------------------------------------------------------------------------


def test_both_routes_share_the_default_timeout_and_retries():
    for route in http_of(routing(test="green")):
        assert route["timeout"] == "30s"
        assert route["retries"] == {"attempts": 2, "retryOn": "connect-failure,refused-stream"}


def test_configured_timeout_and_retries_apply_to_both_routes_the_same_way():
    run = with_token(timeout="1m30s", retryAttempts=3, retryPerTryTimeout="1500ms", retryOn="5xx,reset")
    assert run.error is None
    assert_schema_valid(run)
    routes = http_of(run)
    assert [r["name"] for r in routes] == ["myapp-test", "myapp-default"]
    for route in routes:
        assert route["timeout"] == "90s"
        assert route["retries"] == {"attempts": 3, "retryOn": "5xx,reset", "perTryTimeout": "1500ms"}


def test_no_retries_and_no_timeout():
    for route in http_of(routing(test="green", retryAttempts=0, timeout="")):
        assert "timeout" not in route
        assert route["retries"] == {"attempts": 0}  # Istio refuses conditions or per-try timeouts with none


@pytest.mark.parametrize("config, key", [
    ({"timeout": "10"}, "timeout"),
    ({"timeout": "1 s"}, "timeout"),
    ({"timeout": "0s"}, "timeout"),
    ({"timeout": "-1s"}, "timeout"),
    ({"timeout": "1d"}, "timeout"),
    ({"timeout": "2562048h"}, "timeout"),  # past Go's time.Duration, which Istio reads it with
    ({"timeout": "1.5ms"}, "timeout"),
    ({"timeout": "2s\n"}, "timeout"),
    ({"retryPerTryTimeout": "40s"}, "retryPerTryTimeout"),  # longer than the 30s timeout
    ({"retryOn": "5xx,bogus"}, "retryOn"),
    ({"retryOn": "5xx, reset"}, "retryOn"),
    ({"retryOn": ""}, "retryOn"),
    ({"retryAttempts": 11}, "retryAttempts"),
    ({"retryAttempts": -1}, "retryAttempts"),
])
def test_a_bad_timeout_or_retry_setting_is_refused(config, key):
    message = refusal(routing(**config))
    assert message.startswith(f"bluegreen:{key} is") and "Fix: pulumi config" in message


@pytest.mark.parametrize("text, rendered", [("500ms", "500ms"), ("2s", "2s"), ("1m", "60s"), ("1h", "3600s"),
                                            ("1.5s", "1500ms"), ("1m30s", "90s"), ("24h", "86400s")])
def test_durations_render_in_the_units_istio_reads(text, rendered):
    assert parse_settings({"active": "blue", "timeout": text}, "routing", defaults=DEFAULTS).timeout == rendered


# --- Everything at once ----------------------------------------------------------------------------------------


def test_every_option_together_renders_schema_valid_objects():
    run = with_token(hosts=["app.example.com"], tls={"credentialName": "myapp-tls"}, testCookie="qa=1",
                     timeout="10s", retryAttempts=1, retryPerTryTimeout="5s", retryOn="gateway-error")
    assert run.error is None
    assert_schema_valid(run)
    run = run_stack("blue", {**COLOR, "image": "myapp", "allowMutableImage": True, "replicas": 4,
                             "readOnlyRootFilesystem": True, "migrateCommand": "npm run migrate", "cpuRequest": "0.5",
                             "cpuLimit": "2", "memoryRequest": "1Gi", "memoryLimit": "2Gi",
                             "secretEnv": {"DB_PASSWORD": "pw"}}, secret_keys={"secretEnv"})
    assert run.error is None
    assert_schema_valid(run)


def test_a_routing_stack_file_with_an_encrypted_token_plans_offline(tmp_path):
    # Offline, an encrypted value cannot be read; the stack must still plan, its routes kept secret.
    stack_file = tmp_path / "Pulumi.routing.yaml"
    stack_file.write_text("config:\n  bluegreen:active: blue\n  bluegreen:test: green\n"
                          "  bluegreen:testToken:\n    secure: v1:abc==\n")
    config, secret_keys = stack_file_config(stack_file)
    run = run_stack("routing", config, secret_keys, deployed())
    assert run.error is None and run.warnings == []
    assert isinstance(run.one("VirtualService").inputs["spec"], SecretValue)
