"""The program's copies of Istio's and Kubernetes' rules (components/rules.py) held to the real ones.

Each case is one value of one config key that reaches an object. The real program (the offline engine) either
refuses it, or renders the stack's objects; those objects, or for a refused value the objects it would have
written (a valid rendering with the value put where the key lands), go to the sandbox's API server as a
server-side dry run: its schema and CEL rules, then istiod's validating webhook. A value the program accepts and
the server refuses would fail a `pulumi up` half way: never allowed. A value the program refuses and the server
admits is allowed only in STRICTER, with the reason, which the program's message must give.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest

from bluegreen_tools.secret_values import reveal
from harness.stacks import BLUE_STACK, GREEN_STACK, color_outputs, run_stack
from components.domain import Cookie
from components.routes import cookie_regex

NAMESPACE = "rules-webhook-e2e"
APP = "myapp"
HOST = "shop.example.com"
REQUEST_TIMEOUT = 10  # seconds for one dry run
# Where each kind is served (the kinds the program declares).
PATHS = {"Service": "api/v1/namespaces/{ns}/services", "Secret": "api/v1/namespaces/{ns}/secrets",
         "Deployment": "apis/apps/v1/namespaces/{ns}/deployments", "Job": "apis/batch/v1/namespaces/{ns}/jobs",
         "PodDisruptionBudget": "apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
         **{kind: f"apis/networking.istio.io/v1/namespaces/{{ns}}/{kind.lower()}s"
            for kind in ("Gateway", "VirtualService", "DestinationRule")}}


@dataclass(frozen=True)
class Case:
    key: str
    value: Any


def routes(objects: list[dict]) -> list[dict]:
    (service,) = [o for o in objects if o["kind"] == "VirtualService"]
    return service["spec"]["http"]


def set_in_routes(field: str) -> Callable[[list[dict], Any], None]:
    def inject(objects: list[dict], value: Any) -> None:
        for route in routes(objects):
            if field == "timeout":
                route["timeout"] = value
            else:
                route["retries"] = {"attempts": 2, "retryOn": "connect-failure", **route.get("retries", {}),
                                    field: value}
    return inject


def set_hosts(objects: list[dict], value: Any) -> None:
    for item in objects:
        if item["kind"] == "VirtualService":
            item["spec"]["hosts"] = value
        elif item["kind"] == "Gateway":
            for server in item["spec"]["servers"]:
                server["hosts"] = value


def set_cookie(objects: list[dict], value: str) -> None:
    name, _, cookie = value.partition("=")
    for route in routes(objects):
        if "match" in route:
            route["match"] = [{"headers": {"cookie": {"regex": cookie_regex(Cookie(name, cookie))}}}]


def set_app(objects: list[dict], value: str) -> None:
    """The objects as named for another app: every name, label and host the program derives from `app`."""
    objects[:] = json.loads(json.dumps(objects).replace(APP, value))


def set_port(objects: list[dict], value: Any) -> None:
    for item in objects:
        for container in item["spec"]["template"]["spec"]["containers"] if item["kind"] == "Deployment" else ():
            for port in container.get("ports", ()):
                port["containerPort"] = value
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if "httpGet" in container.get(probe, {}):
                    container[probe]["httpGet"]["port"] = value


# Where each key lands; the stack whose objects it reaches.
INJECT = {"timeout": set_in_routes("timeout"), "retryPerTryTimeout": set_in_routes("perTryTimeout"),
          "retryOn": set_in_routes("retryOn"), "retryAttempts": set_in_routes("attempts"), "hosts": set_hosts,
          "testCookie": set_cookie, "app": set_app, "port": set_port}
COLOR_KEYS = {"app", "port"}

CASES = [Case(key, value) for key, values in {
    "timeout": ["1ms", "500ms", "30s", "1m30s", "24h", "1000us", "1000000ns", "1000\u00b5s", ".5s", "1.s", "+2s",
                "1.5s", "1.5ms", "999us", "0s", "0", "-1s", "1d", "10", "1 s", "25h", "2562047h"],
    "retryPerTryTimeout": ["100ms", "1ms", "0.5s", "1500us", "0s", "-5s", "40s"],
    "retryOn": ["5xx", "connect-failure,refused-stream", "gateway-error,reset,retriable-4xx", "unavailable",
                "cancelled,deadline-exceeded,internal,resource-exhausted", "envoy-ratelimited",
                "http3-post-connect-failure,reset-before-request,retriable-headers", "retriable-status-codes,503",
                "503", "503,504", "+503", "425", "999", "-503", "306", "bogus", "5xx,,reset", "5xx, reset", "5XX",
                "5xx,"],
    "retryAttempts": [1, 10, 11],
    "hosts": [["*"], [HOST], ["*.example.com"], ["a.b.c.example.com"], ["1.2.3.4"], ["::ffff:1.2.3.4"],
              ["2001:db8::1.2.3.4"], ["::1"], ["shop"], ["example.123"], ["*.*.example.com"], ["sh*p.example.com"],
              ["a" * 63 + ".com"], ["a" * 64 + ".com"], [("a" * 62 + ".") * 4 + "com"], ["shop.example.com."],
              ["Shop.Example.com"], ["shop_1.example.com"], ["-shop.example.com"], ["*", HOST],
              ["*.example.com", HOST], [HOST, "www.example.com"], [""]],
    "testCookie": ["test=true", "qa=1", "!#$%&'*+-.^_`|~=x", "a=" + "b" * 900, "a=" + "b" * 1024,
                   "a" * 1000 + "=1", "a b=1", "test=", "test=a;b"],
    "app": ["a", "myapp", "shop-2", "a" * 40, "a" * 41, "a" * 49, "a" * 50, "a" * 63, "MyApp", "1app", "my_app",
            "app-", "my.app"],
    "port": [1, 80, 3000, 65535, 15000, 15021, 15090],
}.items() for value in values]

# The program refuses these although the API server and Istio admit them, each for the reason its message gives.
STRICTER = {
    ("retryPerTryTimeout", "40s"): "no retry could run",  # longer than the route's 30s timeout
    ("hosts", "shop.example.com."): "no request would match it",  # a Host header never ends with a dot
    ("hosts", "Shop.Example.com"): "lowercase",  # the gateway lowercases its domains: one spelling only
    ("hosts", ("a" * 62 + ".") * 4 + "com"): "a DNS name is at most 253",  # Istio stops at 255
    ("testCookie", "a b=1"): "HTTP token",  # RFC 6265: a browser would never send it
    ("testCookie", "test="): "non-empty",
    ("testCookie", "test=a;b"): "semicolons",
    # Service <app> as a DNS-1035 label: Kubernetes before RelaxedServiceNameValidation (the sandbox's v1.36 has
    # it) refuses a Service name starting with a digit, and users' clusters may be older
    ("app", "1app"): "starting with a letter",
    ("port", 15000): "Istio reserves",  # Envoy's own ports in the pod: the app would clash with the sidecar
    ("port", 15021): "Istio reserves",
    ("port", 15090): "Istio reserves",
    # Istio takes any number of attempts; each one multiplies the load on an app that already fails (a retry storm)
    ("retryAttempts", 11): "between 0 and 10",
}
# Over-refusals fixed in rules.py that a caller still refuses: each must stay refused until its caller takes
# rules.py's rule; then the case moves out of here (the test says so). None is left.
AWAITING_CALLER: set = set()


def key_of(case: Case) -> tuple[str, Any]:
    value = case.value[0] if case.key == "hosts" and len(case.value) == 1 else case.value
    return case.key, value if not isinstance(value, list) else tuple(value)


def base_configs(key: str, namespace: str) -> list[tuple[str, dict]]:
    """The stacks whose objects the key reaches, each with a valid config."""
    both = [base_config("port", namespace), base_config("timeout", namespace)]
    return both if key == "app" else [base_config(key, namespace)]


def base_config(key: str, namespace: str) -> tuple[str, dict]:
    if key in COLOR_KEYS:
        return "green", {"color": "green", "image": f"registry.example.com/{APP}:v1.0.0", "namespace": namespace,
                        "migrateCommand": "npm run migrate", "replicas": 2}
    return "routing", {"active": "blue", "test": "green", "namespace": namespace, "hosts": [HOST],
                       "tls": {"credentialName": f"{APP}-tls"}}


def render(stack: str, config: dict) -> tuple[Optional[str], list[dict]]:
    """The program's refusal, or the Kubernetes objects it declares."""
    app = config.get("app", APP)
    outputs = {BLUE_STACK: color_outputs("blue", "v1.0.0", app=app),
               GREEN_STACK: color_outputs("green", "v1.1.0", app=app)}
    run = run_stack(stack, config, frozenset(), outputs)
    if run.error is not None:
        return str(run.error), []
    return None, [reveal(declared.inputs) for declared in run.kubernetes_objects]


class ApiServer:
    """Server-side dry runs (dryRun=All: admission runs, webhooks included, nothing is stored)."""

    def __init__(self, kubeconfig: dict):
        cluster, user = kubeconfig["clusters"][0]["cluster"], kubeconfig["users"][0]["user"]
        self.server, self.token = cluster["server"], user["token"]
        self.context = ssl.create_default_context(cafile=cluster["certificate-authority"])

    def refusal(self, item: dict) -> Optional[str]:
        path = PATHS[item["kind"]].format(ns=item["metadata"]["namespace"])
        request = urllib.request.Request(f"{self.server}/{path}?dryRun=All&fieldValidation=Strict",
                                         data=json.dumps(item).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT, context=self.context):
                return None
        except urllib.error.HTTPError as error:
            return f"{item['kind']} {item['metadata']['name']}: " + json.loads(error.read()).get("message", "")

    def refusals(self, objects: list[dict]) -> list[str]:
        return [problem for problem in map(self.refusal, objects) if problem]


@dataclass
class Verdict:
    case: Case
    program: Optional[str]  # the program's refusal
    server: list[str]  # the API server's or Istio's refusals of what was sent


@pytest.fixture(scope="module")
def verdicts(sandbox_env) -> dict[tuple, Verdict]:
    kubeconfig = json.loads(open(sandbox_env["KUBECONFIG"]).read())
    api = ApiServer(kubeconfig)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    request = urllib.request.Request(f"{api.server}/api/v1/namespaces", data=json.dumps(namespace).encode(),
                                     method="POST", headers={"Authorization": f"Bearer {api.token}",
                                                             "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT, context=api.context).close()
    except urllib.error.HTTPError as error:
        assert error.code == 409, error.read()  # already there: another run of this module on the same sandbox
    bases = {}
    for stack_key in ("timeout", "app"):  # the routing stack, and a color stack
        stack, config = base_config(stack_key, NAMESPACE)
        problem, objects = render(stack, config)
        assert problem is None, problem
        assert api.refusals(objects) == [], "the valid base rendering is refused"
        bases[stack] = objects

    def rendered(case: Case) -> tuple[Case, Optional[str], list[dict]]:
        first_problem, every_object = None, []
        for stack, config in base_configs(case.key, NAMESPACE):
            problem, objects = render(stack, {**config, case.key: case.value})
            if problem is not None:  # what it would have written: the base, with the value where the key lands
                objects = json.loads(json.dumps(bases[stack]))
                INJECT[case.key](objects, case.value)
            first_problem, every_object = first_problem or problem, every_object + objects
        return case, first_problem, every_object

    start = time.monotonic()
    table = [rendered(case) for case in CASES]  # one program at a time: Pulumi's runtime state is global
    with ThreadPoolExecutor(max_workers=8) as pool:  # the dry runs, side by side
        found = {key_of(case): Verdict(case, problem, refusals)
                 for (case, problem, _), refusals in zip(table, pool.map(lambda row: api.refusals(row[2]), table))}
    both = sum(1 for v in found.values() if (v.program is None) == (not v.server))
    print(f"\n{len(found)} cases judged by the program and the API server in {time.monotonic() - start:.1f} s: "
          f"{both} agree, {len(STRICTER)} stricter on purpose, {len(AWAITING_CALLER)} awaiting their caller")
    return found


def test_nothing_the_program_accepts_is_refused_by_the_api_server_or_istio(verdicts):
    under = [f"{v.case.key}={v.case.value!r}: {v.server}" for v in verdicts.values() if v.program is None and v.server]
    assert under == [], "accepted by the program, refused at admission (a `pulumi up` would fail half way):\n" + \
        "\n".join(under)


def test_the_program_refuses_more_only_where_listed_and_says_why(verdicts):
    over = {key for key, v in verdicts.items() if v.program is not None and not v.server}
    unexplained = sorted(over - set(STRICTER) - AWAITING_CALLER, key=str)
    assert unexplained == [], "refused by the program, admitted by Istio and Kubernetes, with no reason listed:\n" + \
        "\n".join(f"{key}: {verdicts[key].program}" for key in unexplained)
    for key, reason in STRICTER.items():
        verdict = verdicts[key]
        assert verdict.program is not None and not verdict.server, f"{key} is no longer a deliberate difference"
        assert reason in verdict.program, f"{key}: the message does not say why ({reason!r}): {verdict.program}"


def test_over_refusals_awaiting_their_caller_are_still_the_only_ones(verdicts):
    fixed = sorted((key for key in AWAITING_CALLER if verdicts[key].program is None), key=str)
    assert fixed == [], f"now accepted, as Istio does: remove {fixed} from AWAITING_CALLER"
    assert all(not verdicts[key].server for key in AWAITING_CALLER), "Istio refuses a case listed as awaiting"


def test_both_refuse_the_rest_and_the_table_covers_every_key(verdicts):
    refused_by_both = [v for v in verdicts.values() if v.program is not None and v.server]
    assert {v.case.key for v in refused_by_both} >= {"timeout", "retryPerTryTimeout", "retryOn", "hosts", "app",
                                                     "testCookie"}
    assert len(verdicts) == len(CASES), "two cases of the table are the same"
