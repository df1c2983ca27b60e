"""The program's config keys, declared once: each key's role, how it is read, the fix a message names.

The key sets of each role, the secret and object keys, and the check that Pulumi.yaml declares every key
with the type its reader expects are all derived from KEYS. The defaults stay in Pulumi.yaml, which the CLI
reads: a key's `example` is the value a fix sets, not its default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

COMMON, COLOR, ROUTING = "common", "color", "routing"
# How a key is read (settings._Reader) and the project schema type Pulumi.yaml declares it with;
# an object has no schema type, so Pulumi.yaml documents it in a comment only.
SCHEMA_TYPES = {"string": "string", "integer": "integer", "boolean": "boolean", "list": "array", "object": None}


@dataclass(frozen=True)
class ConfigKey:
    key: str
    role: str  # COMMON, COLOR or ROUTING: the stacks whose program reads it
    parser: str  # a key of SCHEMA_TYPES
    fix: str  # the command a message names to set a good value, `{stack}` for the stack
    secret: bool = False  # stored with --secret; a message never shows its value
    bounds: Optional[tuple[int, int]] = None  # an integer's range
    example: str = ""  # a good value, as the fix sets it

    @property
    def schema_type(self) -> Optional[str]:
        return SCHEMA_TYPES[self.parser]


def _set(key: str, example: str) -> str:
    return f"pulumi config set {key} {example} -s {{stack}}"


def _entry(key: str, role: str, parser: str = "string", example: str = "", **more: Any) -> ConfigKey:
    return ConfigKey(key, role, parser, more.pop("fix", None) or _set(key, example), example=example, **more)


TEST_TOKEN_FIX = "pulumi config set --secret testToken \"$(openssl rand -hex 24)\" -s {stack}"
_STACK_EXAMPLE = "organization/bluegreen/"

KEYS: tuple[ConfigKey, ...] = (
    _entry("app", COMMON, example="myapp"),
    _entry("namespace", COMMON, example="default"),
    _entry("color", COLOR, example="blue"),
    _entry("image", COLOR, example="registry.example.com/myapp:v1.0.0"),
    _entry("release", COLOR, example="v1.0.0"),
    _entry("replicas", COLOR, "integer", "2", bounds=(0, 1000)),
    _entry("port", COLOR, "integer", "3000", bounds=(1, 65535)),
    _entry("readinessPath", COLOR, example="/ready"),
    _entry("env", COLOR, "object", fix="pulumi config set --path 'env.DB_USER' <value> -s {stack}"),
    _entry("secretEnv", COLOR, "object", secret=True,
           fix="pulumi config set --secret --path 'secretEnv.DB_USER' <value> -s {stack}"),
    _entry("migrateCommand", COLOR, example="'npm run migrate'"),
    _entry("routingStack", COLOR, example=_STACK_EXAMPLE + "routing"),
    _entry("allowLiveUpdate", COLOR, "boolean", "true"),
    _entry("allowMutableImage", COLOR, "boolean", "true"),
    _entry("cpuRequest", COLOR, example="100m"),
    _entry("cpuLimit", COLOR, example="1"),
    _entry("memoryRequest", COLOR, example="256Mi"),
    _entry("memoryLimit", COLOR, example="256Mi"),
    _entry("readOnlyRootFilesystem", COLOR, "boolean", "true"),
    _entry("active", ROUTING, example="blue"),
    _entry("test", ROUTING, example="green"),
    _entry("testCookie", ROUTING, example="test=true"),
    # Secret, but not declared `secret: true` in Pulumi.yaml: the CLI then refuses its empty default.
    _entry("testToken", ROUTING, secret=True, fix=TEST_TOKEN_FIX),
    _entry("hosts", ROUTING, "list", fix="pulumi config set --path 'hosts[0]' example.com -s {stack}"),
    _entry("blueStack", ROUTING, example=_STACK_EXAMPLE + "blue"),
    _entry("greenStack", ROUTING, example=_STACK_EXAMPLE + "green"),
    _entry("tls", ROUTING, "object", fix="pulumi config set --path tls.credentialName myapp-tls -s {stack}"),
    _entry("timeout", ROUTING, example="15s"),
    _entry("retryAttempts", ROUTING, "integer", "2", bounds=(0, 10)),
    _entry("retryPerTryTimeout", ROUTING, example="15s"),
    _entry("retryOn", ROUTING, example="connect-failure,refused-stream"),
    # Istio's request metrics in Prometheus gate the flip and trigger the rollback (components/analysis.py).
    _entry("analysis", ROUTING, "object",
           fix="pulumi config set --path 'analysis.prometheusUrl' http://prometheus.istio-system:9090 -s {stack}"),
)
BY_KEY: Mapping[str, ConfigKey] = {entry.key: entry for entry in KEYS}


def keys_of(role: str) -> frozenset[str]:
    return frozenset(entry.key for entry in KEYS if entry.role == role)


COMMON_KEYS, COLOR_KEYS, ROUTING_KEYS = keys_of(COMMON), keys_of(COLOR), keys_of(ROUTING)
SECRET_KEYS = frozenset(entry.key for entry in KEYS if entry.secret)
OBJECT_KEYS = tuple(entry.key for entry in KEYS if entry.schema_type is None)  # Pulumi.yaml cannot declare them


def declaration_problems(declared: Mapping[str, Any]) -> list[str]:
    """What Pulumi.yaml's `config:` (key -> spec) gets wrong against KEYS: a key missing, unknown, of another
    type, or without a description or a default (without one the CLI would require the key on every stack)."""
    problems = [f"{key} is not a key of the program" for key in sorted(set(declared) - set(BY_KEY))]
    for entry in KEYS:
        spec = declared.get(entry.key)
        if entry.schema_type is None:
            if spec is not None:
                problems.append(f"{entry.key} holds an object, which the project schema cannot declare")
            continue
        if not isinstance(spec, dict):
            problems.append(f"{entry.key} is not declared")
            continue
        if spec.get("type") != entry.schema_type:
            problems.append(f"{entry.key} is declared as {spec.get('type')!r}, not {entry.schema_type!r}")
        if not spec.get("description"):
            problems.append(f"{entry.key} has no description")
        if "default" not in spec:
            problems.append(f"{entry.key} has no default, so the CLI would require it on every stack")
    return problems
