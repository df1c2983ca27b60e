"""Stack settings: the config keys of the design, their defaults and their validation.

Pure logic: no Pulumi engine is needed. The program, the offline plan and the tests
all parse config through `parse_settings`, so a value is refused the same way
everywhere, before any object is declared.
"""

from __future__ import annotations

import copy
import difflib
import functools
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from . import contract
from .stackfile import StackFileError, load_yaml, read_text

PROJECT = "bluegreen"
COLORS = ("blue", "green")

# Keys the project schema cannot declare (objects); every other key is in Pulumi.yaml.
OBJECT_KEYS = ("env", "secretEnv", "tls")
# Keys whose values must be Pulumi secrets; a message never shows their value, secret or not.
SECRET_KEYS = frozenset({"secretEnv", "testToken"})
COMMON_KEYS = frozenset({"app", "namespace"})
COLOR_KEYS = frozenset(
    {"color", "image", "release", "replicas", "port", "readinessPath", "env", "secretEnv",
     "routingStack", "allowLiveUpdate", "migrateCommand", "allowMutableImage", "cpuRequest", "cpuLimit",
     "memoryRequest", "memoryLimit", "readOnlyRootFilesystem"}
)
ROUTING_KEYS = frozenset(
    {"active", "test", "testCookie", "testToken", "hosts", "blueStack", "greenStack", "tls", "timeout",
     "retryAttempts", "retryPerTryTimeout", "retryOn"}
)

# Every pattern ends in \Z, not $: `$` also matches before a trailing newline.
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")  # RFC 1035 label, as Service names need
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")  # RFC 1123 label
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_STACK_NAME = re.compile(r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+\Z")
_HOST_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")  # RFC 1123 label, in lowercase
# RFC 6265: a cookie name is an HTTP token; a value is cookie-octets (no space, DQUOTE, comma, semicolon, backslash).
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+\Z")

# The grammar of an image reference (distribution/reference): [domain[:port]/]path[:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?\Z",
    re.ASCII,  # a tag is ASCII: \w must not take other scripts' letters
)

# Istio's validating webhook (istio/istio pkg/config/validation) and what its sidecar needs, mirrored here so that
# `pulumi up` and the plan refuse a value before anything is declared, instead of the API server refusing an object
# half-way through an update. Each check below names the rule it mirrors.
MAX_HOST_LENGTH = 253  # Istio: agent.CheckDNS1123Preconditions refuses over 255; a DNS name is at most 253 (RFC 1035)
MAX_HOST_LABEL = 63  # Istio: labels.IsDNS1123Label / IsWildcardDNS1123Label (DNS1123LabelMaxLength)
MAX_ISTIO_REGEX = 1024  # Istio: validateStringRegexp, "regex is too large, max length allowed is 1024"
# Ports the Istio sidecar (Envoy and pilot-agent) listens on in every pod of the mesh: istio.io, "Application
# Requirements", Ports used by Istio ("applications should not use any of the ports used by Envoy"), and
# istio/istio pilot/cmd/pilot-agent/status/server.go istioReservedPorts; 15009 is HBONE's in ambient mode.
ISTIO_RESERVED_PORTS = {
    15000: "Envoy's admin port", 15001: "Envoy's outbound traffic capture", 15002: "failure detection",
    15004: "the debug port", 15006: "Envoy's inbound traffic capture", 15008: "the HBONE mTLS tunnel",
    15009: "HBONE in ambient mode", 15020: "the merged Prometheus telemetry", 15021: "the health checks",
    15053: "the DNS proxy", 15090: "Envoy's Prometheus telemetry",
}
# An image digest's algorithm and the length of its lowercase hex: OCI image-spec descriptor.md ("Registered
# algorithms": sha256, sha512) and opencontainers/go-digest (sha384), which registries and runtimes enforce.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

MAX_APP_LENGTH = 40  # keeps `<app>-green-migrate` and pod names inside Kubernetes' 63-character limits

MIN_TOKEN_LENGTH = 16  # 16 random characters are out of reach of guessing through the gateway
MAX_TOKEN_LENGTH = 256  # a cookie header stays far below the gateway's header size limit
TEST_TOKEN_FIX = "pulumi config set --secret testToken \"$(openssl rand -hex 24)\" -s {stack}"

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")

# A Kubernetes quantity (resource.Quantity), positive: number, then a binary, decimal or exponent suffix.
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][-+]?[0-9]{1,3})?\Z")
_QUANTITY_SCALE = {"": 1, "m": Decimal("0.001"), **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
                   **{s + "i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")}}
# config keys of each resource, and the amounts a container may sensibly ask for
_RESOURCES = (("cpu", "cpuRequest", "cpuLimit", Decimal("0.001"), Decimal(1000), "1m and 1000 (cores)"),
              ("memory", "memoryRequest", "memoryLimit", Decimal(4 * 2**20), Decimal(4 * 2**40), "4Mi and 4Ti"))

# An Istio duration: numbers with units, e.g. 500ms, 2s, 1m30s (units longest first, so ms is not m then s).
_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:h|ms|m|s))+\Z")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)")
_DURATION_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
MAX_DURATION_MS = 24 * 3_600_000
# Envoy's retry conditions, as Istio's validation accepts them (x-envoy-retry-on, then x-envoy-retry-grpc-on).
RETRY_ON = ("5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
            "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
            "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
            "unavailable")


def other_color(color: str) -> str:
    """The other of blue and green."""
    return COLORS[1 - COLORS.index(color)]


class SettingsError(ValueError):
    """A config value the program refuses; the message names the key, the value and the fix."""


def show(value: Any, limit: int = 60) -> str:
    """A config value as it may appear in a message: quoted, escaped, and cut if long."""
    try:
        text = value if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError, RecursionError):  # nested too deep, or not data
        return f"(a {type(value).__name__} too deeply nested to show)"
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def declared_defaults(project_file: Path) -> dict[str, Any]:
    """The default of every key a Pulumi project file declares (Pulumi.yaml: the one place that defines them).

    Read as the CLI reads it (components/stackfile.py); a file it could not read is a SettingsError."""
    try:
        project = _project_file(read_text(project_file))
    except StackFileError as error:
        raise SettingsError(f"{project_file.name} cannot be read as the Pulumi project file: {error}. Fix: "
                            f"restore it (git checkout -- {project_file.name})") from None
    config = project.get("config") if isinstance(project, dict) else None
    if not isinstance(config, dict) or not all(isinstance(spec, dict) for spec in config.values()):
        raise SettingsError(f"{project_file.name} has no config: mapping of keys to their type, description and "
                            f"default. Fix: restore it (git checkout -- {project_file.name})")
    return {key: copy.deepcopy(spec.get("default")) for key, spec in config.items()}


@functools.lru_cache(maxsize=4)
def _project_file(text: str) -> Any:
    """A project file's data, parsed once per text: plan.py and its tests read the same Pulumi.yaml for every
    stack they plan, and parsing it is most of the cost (the caller copies what it hands out)."""
    return load_yaml(text)


@dataclass(frozen=True)
class Cookie:
    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


@dataclass(frozen=True)
class Tls:
    """HTTPS on the gateway: the Kubernetes TLS Secret (in the ingress gateway's namespace) and its hosts."""

    credential_name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ColorSettings:
    """A color stack: the Deployment of one color and what it needs."""

    stack: str
    app: str
    namespace: str
    color: str
    image: str
    release: str
    replicas: int
    port: int
    readiness_path: str
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env_names: tuple[str, ...] = ()
    migrate_command: tuple[str, ...] = ()
    routing_stack: Optional[str] = None
    allow_live_update: bool = False
    requests: Mapping[str, str] = field(default_factory=dict)  # resource -> quantity, e.g. {"cpu": "100m"}
    limits: Mapping[str, str] = field(default_factory=dict)
    read_only_root_filesystem: bool = False

    @property
    def deployment_name(self) -> str:
        return contract.deployment_name(self.app, self.color)


@dataclass(frozen=True)
class RoutingSettings:
    """The routing stack: the gateway, the subsets and which color each route sends to."""

    stack: str
    app: str
    namespace: str
    active: str
    test: Optional[str]
    test_cookie: Cookie
    hosts: tuple[str, ...]
    color_stacks: Mapping[str, str]
    # Whether testToken is set; its value stays a Pulumi secret, read by the program, never kept here.
    test_token_set: bool = False
    tls: Optional[Tls] = None
    timeout: Optional[str] = None  # both routes' timeout, an Istio duration
    retries: Optional[Mapping[str, Any]] = None  # both routes' HTTPRetry

    @property
    def routed_colors(self) -> tuple[str, ...]:
        """The colors someone reaches: the active one, then the one under test."""
        return (self.active,) + ((self.test,) if self.test else ())


Settings = Union[ColorSettings, RoutingSettings]


class _Reader:
    """Typed access to raw config values (strings, as Pulumi passes them), with defaults."""

    def __init__(self, raw: Mapping[str, Any], secret_keys: frozenset[str], stack: str, defaults: Mapping[str, Any]):
        self.raw = raw
        self.secret_keys = secret_keys
        self.stack = stack
        self.defaults = {**defaults, **{key: {} for key in OBJECT_KEYS}}  # objects, which Pulumi.yaml cannot declare

    def fail(self, key: str, value: Any, problem: str, fix: str) -> SettingsError:
        shown = "[secret]" if key in self.secret_keys or key in SECRET_KEYS else show(value)
        return SettingsError(f"{PROJECT}:{key} is {shown}: {problem}. Fix: {fix}")

    def fix_set(self, key: str, example: str) -> str:
        return f"pulumi config set {key} {example} -s {self.stack}"

    def is_set(self, key: str) -> bool:
        """Set to something other than empty or the default (the CLI passes defaults as set values)."""
        value = self.raw.get(key)
        return value is not None and value != "" and _parsed(value) != _parsed(self.defaults.get(key))

    def string(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            value = self.defaults.get(key)
        return "" if value is None else str(value)

    def given(self, key: str) -> Any:
        """The value set for a number or a switch; unset or empty means the default."""
        value = self.raw.get(key)
        return self.defaults.get(key) if value is None or value == "" else value

    def integer(self, key: str, low: int, high: int, example: str) -> int:
        value = self.given(key)
        try:
            number = int(str(value).strip())
        except ValueError:
            raise self.fail(key, value, "it must be a whole number", self.fix_set(key, example)) from None
        if not low <= number <= high:
            raise self.fail(key, value, f"it must be between {low} and {high}", self.fix_set(key, example))
        return number

    def boolean(self, key: str) -> bool:
        value = self.given(key)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise self.fail(key, value, "it must be true or false", self.fix_set(key, "true"))

    def structured(self, key: str, kind: type, example: str) -> Any:
        """An object or list key: Pulumi passes it as JSON text."""
        value = self.raw.get(key)
        if value is None or value == "":
            return self.defaults.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):  # not JSON, or nested too deep to read
                raise self.fail(key, value, f"it must be {'an object' if kind is dict else 'a list'}", example) from None
        if not isinstance(value, kind):
            raise self.fail(key, value, f"it must be {'an object' if kind is dict else 'a list'}", example)
        return value


def _parsed(value: Any) -> Any:
    """A config value as data: Pulumi passes numbers, booleans and lists as their JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            return value
    return value


def parse_settings(raw: Mapping[str, Any], stack: str, secret_keys: frozenset[str] = frozenset(), *,
                   defaults: Mapping[str, Any]) -> Settings:
    """Validate one stack's config (keys without the `bluegreen:` prefix) and return its settings.

    `defaults` are Pulumi.yaml's (declared_defaults): a key missing from `raw` falls back to its default, and
    a key whose value is its default counts as not set, since the CLI passes every default as a set value.

    Raises SettingsError, naming the key, the value and the fix, for anything the program would
    otherwise turn into a broken or unsafe object. Secret values never appear in a message.
    """
    reader = _Reader(raw, frozenset(secret_keys), stack, defaults)
    _refuse_unknown_keys(reader)
    _refuse_secrets_shown_in_plain_text(reader)
    has_color, has_active = reader.is_set("color"), reader.is_set("active")
    if has_color and has_active:
        raise SettingsError(
            f"{PROJECT}:color and {PROJECT}:active are both set on stack {stack}: a stack is either a color "
            f"stack (color) or the routing stack (active), never both. Fix: pulumi config rm color -s {stack} "
            f"on the routing stack, or pulumi config rm active -s {stack} on a color stack"
        )
    if not has_color and not has_active:
        raise SettingsError(
            f"neither {PROJECT}:color nor {PROJECT}:active is set on stack {stack}: the program does not "
            f"know this stack's role. Fix: pulumi config set color blue -s {stack} (a color stack) or "
            f"pulumi config set active blue -s {stack} (the routing stack)"
        )
    app = reader.string("app")
    if not _DNS_LABEL.match(app) or len(app) > MAX_APP_LENGTH:
        raise reader.fail("app", app, f"it must be a DNS label: lowercase letters, digits and '-', starting with "
                          f"a letter, at most {MAX_APP_LENGTH} characters", reader.fix_set("app", "myapp"))
    namespace = reader.string("namespace")
    if not _NAMESPACE.match(namespace) or len(namespace) > 63:
        raise reader.fail("namespace", namespace, "it must be a Kubernetes namespace name (lowercase letters, "
                          "digits and '-', at most 63 characters)", reader.fix_set("namespace", "default"))
    if has_color:
        _refuse_keys_of_other_role(reader, ROUTING_KEYS, "a color stack")
        return _color_settings(reader, app, namespace)
    _refuse_keys_of_other_role(reader, COLOR_KEYS, "the routing stack")
    return _routing_settings(reader, app, namespace)


def _refuse_unknown_keys(reader: _Reader) -> None:
    known = COMMON_KEYS | COLOR_KEYS | ROUTING_KEYS
    for key in sorted(set(reader.raw) - known):
        guess = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"did you mean {PROJECT}:{guess[0]}? " if guess else ""
        raise SettingsError(
            f"{PROJECT}:{key} is not a setting of this program ({hint}the keys are listed in the README's "
            f"config reference). Fix: pulumi config rm {key} -s {reader.stack}"
        )


def _refuse_secrets_shown_in_plain_text(reader: _Reader) -> None:
    """Only secretEnv and testToken stay secret in what the program declares; any other key stored with --secret
    would end up in plain text in objects, outputs and the plan, so it is refused rather than silently unmasked."""
    for key in sorted(reader.secret_keys - SECRET_KEYS):
        if key not in reader.raw:
            continue
        where = ("keep secret variables in bluegreen:secretEnv: pulumi config set --secret --path "
                 f"'secretEnv.NAME' <value> -s {reader.stack}" if key == "env" else
                 "only bluegreen:secretEnv and bluegreen:testToken are kept secret")
        raise SettingsError(
            f"{PROJECT}:{key} is stored as a secret on stack {reader.stack}, but the program writes it in plain text "
            f"into the objects it declares and its outputs, so it would not stay secret. Fix: pulumi config set "
            f"{key} <value> -s {reader.stack} (without --secret); {where}"
        )


def _refuse_keys_of_other_role(reader: _Reader, keys: frozenset[str], role: str) -> None:
    for key in sorted(keys):
        if reader.is_set(key):
            raise SettingsError(
                f"{PROJECT}:{key} is set on stack {reader.stack}, which is {role}; the key does nothing "
                f"there. Fix: pulumi config rm {key} -s {reader.stack}"
            )


def _color(reader: _Reader, key: str, example: str) -> str:
    value = reader.string(key)
    if value not in COLORS:
        raise reader.fail(key, value, "it must be blue or green", reader.fix_set(key, example))
    return value


def parse_image(image: str) -> Optional[re.Match]:
    """The parts of an image reference (domain, path, tag, digest), or None when it is not one."""
    return _IMAGE.match(image) if len(image) <= 255 else None


def default_release(image: re.Match) -> str:
    """The release an image stands for: its tag, else (no tag, or `latest`) the first 12 hex digits of its digest."""
    if image["digest"] and image["tag"] in (None, "latest"):
        return image["digest"].split(":", 1)[1][:12]
    return image["tag"] or "latest"  # a reference without tag or digest means :latest to the runtime


def is_mutable_image(image: re.Match) -> bool:
    """True when the reference names no fixed content: no digest, and tag `latest` or none."""
    return not image["digest"] and image["tag"] in (None, "latest")


def _check_digest(reader: _Reader, image: str, digest: Optional[str]) -> None:
    """A digest names content only with a registered algorithm and its exact length of lowercase hex."""
    if not digest:
        return
    algorithm, _, encoded = digest.partition(":")
    fix = reader.fix_set("image", "registry.example.com/myapp@sha256:<64 hex digits>") + " (the digest " \
        "`docker buildx imagetools inspect` or the registry shows)"
    if algorithm not in DIGEST_HEX_LENGTHS:
        raise reader.fail("image", image, f"its digest algorithm {show(algorithm)} is not one that registries and "
                          f"container runtimes accept ({', '.join(DIGEST_HEX_LENGTHS)})", fix)
    length = DIGEST_HEX_LENGTHS[algorithm]
    if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise reader.fail("image", image, f"a {algorithm} digest is exactly {length} lowercase hex digits, and this "
                          f"one has {len(encoded)}" + ("" if encoded == encoded.lower() else ", some uppercase"), fix)


def _color_settings(reader: _Reader, app: str, namespace: str) -> ColorSettings:
    color = _color(reader, "color", "blue")
    image = reader.string("image")
    if not image:
        raise reader.fail("image", image, "a color stack needs the image to run",
                          reader.fix_set("image", "registry.example.com/myapp:v1.0.0"))
    parsed = parse_image(image)
    if parsed is None:
        raise reader.fail("image", image, "it is not an image reference ([registry/]name[:tag][@digest], "
                          "lowercase name)", reader.fix_set("image", "registry.example.com/myapp:v1.0.0"))
    if is_mutable_image(parsed) and not reader.boolean("allowMutableImage"):
        raise reader.fail("image", image, "it names no fixed release (tag 'latest', or no tag): each pull may run "
                          "other code, and the release label cannot tell releases apart",
                          reader.fix_set("image", "registry.example.com/myapp:v1.0.0") + " (a version tag or "
                          "an @sha256: digest), or, to run it anyway: " + reader.fix_set("allowMutableImage", "true"))
    _check_digest(reader, image, parsed["digest"])
    explicit_release = reader.string("release")
    release = explicit_release or default_release(parsed)
    if not _LABEL_VALUE.match(release) or len(release) > 63:
        rule = ("a Kubernetes label value (letters, digits, '-', '_', '.', at most 63 characters, starting and "
                "ending with a letter or digit)")
        if explicit_release:
            raise reader.fail("release", release, f"it must be {rule}", reader.fix_set("release", "v1.0.0"))
        raise reader.fail("image", image, f"the release taken from its tag, {show(release)}, is not {rule}",
                          reader.fix_set("release", "v1.0.0"))
    replicas = reader.integer("replicas", 0, 1000, "2")
    port = reader.integer("port", 1, 65535, "3000")
    if port in ISTIO_RESERVED_PORTS:
        raise reader.fail("port", reader.given("port"), f"Istio's sidecar listens on {port} in every pod of the mesh "
                          f"({ISTIO_RESERVED_PORTS[port]}), so the app would clash with it; Istio reserves "
                          f"{', '.join(map(str, ISTIO_RESERVED_PORTS))}", reader.fix_set("port", "3000"))
    readiness_path = reader.string("readinessPath")
    if not readiness_path.startswith("/") or any(c.isspace() or not c.isprintable() for c in readiness_path):
        raise reader.fail("readinessPath", readiness_path, "it must be a URL path starting with '/', without "
                          "spaces", reader.fix_set("readinessPath", "/ready"))
    env = _env_object(reader, "env", secret=False)
    secret_env = _env_object(reader, "secretEnv", secret=True)
    if secret_env and "secretEnv" not in reader.secret_keys:
        raise SettingsError(
            f"{PROJECT}:secretEnv is stored in plain text on stack {reader.stack}: its values would be "
            f"readable in the stack file. Fix: set each value again as a secret, e.g. pulumi config set "
            f"--secret --path 'secretEnv.{sorted(secret_env)[0]}' <value> -s {reader.stack}"
        )
    both = sorted(set(env) & set(secret_env))
    if both:
        raise SettingsError(
            f"{PROJECT}:env and {PROJECT}:secretEnv both set {', '.join(both)}: the container would get two "
            f"values for one variable. Fix: pulumi config rm --path 'env.{both[0]}' -s {reader.stack}"
        )
    migrate = reader.string("migrateCommand")
    try:
        migrate_command = tuple(shlex.split(migrate))
    except ValueError as error:
        raise reader.fail("migrateCommand", migrate, f"it cannot be split into arguments ({error})",
                          reader.fix_set("migrateCommand", "'npm run migrate'")) from None
    routing_stack = reader.string("routingStack") or None
    if routing_stack is not None and not _STACK_NAME.match(routing_stack):
        raise reader.fail("routingStack", routing_stack, "it must be a stack name like "
                          "organization/bluegreen/routing", reader.fix_set("routingStack",
                                                                         "organization/bluegreen/routing"))
    requests, limits = _resources(reader)
    return ColorSettings(
        stack=reader.stack, app=app, namespace=namespace, color=color, image=image, release=release,
        replicas=replicas, port=port, readiness_path=readiness_path, env=env,
        secret_env_names=tuple(sorted(secret_env)), migrate_command=migrate_command,
        routing_stack=routing_stack, allow_live_update=reader.boolean("allowLiveUpdate"),
        requests=requests, limits=limits, read_only_root_filesystem=reader.boolean("readOnlyRootFilesystem"),
    )


def parse_quantity(text: str) -> Optional[Decimal]:
    """The amount a Kubernetes quantity stands for (cores, bytes), or None when it is not one."""
    match = _QUANTITY.match(text)
    if match is None:
        return None
    number, suffix = match[1], match[2] or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(number).scaleb(int(suffix[1:]))
    return Decimal(number) * _QUANTITY_SCALE[suffix]


def _resources(reader: _Reader) -> tuple[dict[str, str], dict[str, str]]:
    """The container's CPU and memory requests and limits; an empty value leaves one out."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for resource, request_key, limit_key, low, high, bounds in _RESOURCES:
        amounts = {}
        for key, into in ((request_key, requests), (limit_key, limits)):
            text = reader.string(key)
            if not text:
                continue
            amount = parse_quantity(text)
            if amount is None or not low <= amount <= high:
                raise reader.fail(key, text, f"it must be a Kubernetes quantity of {resource} between {bounds}, "
                                  f"e.g. {reader.defaults[key]}", reader.fix_set(key, reader.defaults[key]))
            into[resource], amounts[key] = text, amount
        if len(amounts) == 2 and amounts[request_key] > amounts[limit_key]:
            raise reader.fail(request_key, requests[resource], f"it is more than {PROJECT}:{limit_key} "
                              f"({show(limits[resource])}), and a container may never use more than its limit",
                              reader.fix_set(request_key, limits[resource]))
    return requests, limits


def _env_object(reader: _Reader, key: str, secret: bool) -> dict[str, str]:
    example = f"pulumi config set {'--secret ' if secret else ''}--path '{key}.DB_USER' <value> -s {reader.stack}"
    value = reader.structured(key, dict, example)
    env: dict[str, str] = {}
    for name, item in value.items():
        if not _ENV_NAME.match(name):
            raise SettingsError(
                f"{PROJECT}:{key} has the variable name {show(name)}: an environment variable name is letters, "
                f"digits and '_', not starting with a digit. Fix: pulumi config rm --path '{key}.{name}' "
                f"-s {reader.stack}, then set it under a valid name"
            )
        item = env_value_text(item)
        if not isinstance(item, str):
            shown = "" if secret else f" {show(item)}"
            raise SettingsError(
                f"{PROJECT}:{key}.{name} is{shown or ' [secret]'}: a variable's value must be text, not an object "
                f"or a list. Fix: {example.replace('DB_USER', name)}"
            )
        env[name] = item
    return env


def env_value_text(item: Any) -> Any:
    """A variable's value as the container gets it: YAML numbers and booleans become text."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return str(item)
    return item


def _routing_settings(reader: _Reader, app: str, namespace: str) -> RoutingSettings:
    active = _color(reader, "active", "blue")
    test = reader.string("test") or None
    if test is not None:
        test = _color(reader, "test", other_color(active))
        if test == active:
            other = other_color(active)
            raise reader.fail("test", test, f"it is also the active color ({PROJECT}:active), and users are on "
                              f"{active}: a release is never tested in the live color",
                              f"pulumi config set test {other} -s {reader.stack} (deploy the release there first), "
                              f"or pulumi config rm test -s {reader.stack}")
    test_cookie = parse_cookie(reader.string("testCookie"),
                               lambda problem: reader.fail("testCookie", reader.string("testCookie"), problem,
                                                           reader.fix_set("testCookie", "test=true")))
    test_token_set = _test_token_set(reader)
    _check_cookie_regex(reader, test_cookie)
    hosts = _hosts(reader, "hosts", reader.structured("hosts", list, f"pulumi config set --path 'hosts[0]' "
                                                                      f"example.com -s {reader.stack}"))
    color_stacks = {}
    for color in COLORS:
        key = f"{color}Stack"
        name = reader.string(key)
        if not _STACK_NAME.match(name):
            raise reader.fail(key, name, "it must be a stack name like organization/bluegreen/" + color,
                              reader.fix_set(key, "organization/bluegreen/" + color))
        color_stacks[color] = name
    if color_stacks["blue"] == color_stacks["green"]:
        raise reader.fail("greenStack", color_stacks["green"], f"it is also {PROJECT}:blueStack, and blue and green "
                          f"must be different stacks", reader.fix_set("greenStack", "organization/bluegreen/green"))
    timeout = _duration(reader, "timeout")
    return RoutingSettings(
        stack=reader.stack, app=app, namespace=namespace, active=active, test=test, test_cookie=test_cookie,
        hosts=hosts, color_stacks=color_stacks, test_token_set=test_token_set, tls=_tls(reader, hosts),
        timeout=timeout, retries=_retries(reader, timeout),
    )


def host_problem(host: Any) -> Optional[str]:
    """Why a host of the Gateway and the VirtualService would be refused, or None: Istio's rules for both
    (agent.ValidateWildcardDomain, and for a Gateway validateSidecarOrGatewayHostnamePart), a little stricter."""
    if not isinstance(host, str):
        return "it is not text"
    if host == "*":
        return None
    if not host:
        return "it is empty"  # CheckDNS1123Preconditions: "empty domain name not allowed"
    if len(host) > MAX_HOST_LENGTH:
        return f"it is {len(host)} characters long, and a DNS name is at most {MAX_HOST_LENGTH}"
    if "*" in host[1:] or (host.startswith("*") and not host.startswith("*.")):
        # ValidatePartialWildCard: "partial wildcard not allowed"; IsWildcardDNS1123Label: only the first label
        return "a wildcard may only be the whole first label ('*.example.com') or the whole host ('*')"
    if host.endswith("."):
        return "it ends with '.', and a request's Host header never does, so no request would match it"
    if host != host.lower():
        return "it has uppercase letters; write it in lowercase, as requests are matched"
    if "." not in host:
        # validateSidecarOrGatewayHostnamePart: "short names (non FQDN) are not allowed" in a Gateway
        return "it is a short name (no dot), which an Istio Gateway refuses; write the full name, e.g. myapp.example.com"
    name = host[2:] if host.startswith("*.") else host
    if host == name and _is_ipv4(host):
        return None  # Istio accepts an IP address as a host of a Gateway and of a VirtualService
    labels = name.split(".")
    for label in labels:
        if not label:
            return "it has an empty label (two dots in a row, or a dot at the start)"
        if len(label) > MAX_HOST_LABEL:
            return f"its label {show(label)} is {len(label)} characters long, over the {MAX_HOST_LABEL} a DNS label may have"
        if not _HOST_LABEL.match(label):
            return (f"its label {show(label)} is not a DNS label (letters a-z, digits and '-', not starting or ending "
                    f"with '-')")
    if labels[-1].isdigit():  # ValidateDNS1123Labels: "top level domain cannot be all-numeric"
        return f"its top-level domain {show(labels[-1])} is all digits, which Istio refuses unless the host is an IP address"
    return None


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def hosts_overlap(first: str, second: str) -> bool:
    """Whether two hosts take some request in common: Istio's host.Name.Matches (pkg/config/host/name.go)."""
    if first.startswith("*") and second.startswith("*"):
        shorter, longer = sorted((first, second), key=len)
        return longer[1:].endswith(shorter[1:])
    if first.startswith("*"):
        return second.endswith(first[1:])
    if second.startswith("*"):
        return first.endswith(second[1:])
    return first == second


def _hosts(reader: _Reader, key: str, hosts: Any) -> tuple[str, ...]:
    fix = f"pulumi config set --path '{key}[0]' example.com -s {reader.stack}"
    if not isinstance(hosts, list) or not hosts:
        raise reader.fail(key, hosts, "it must be a list of at least one host", fix)
    for host in hosts:
        problem = host_problem(host)
        if problem:
            raise reader.fail(key, host, f"each host must be '*', a DNS name or '*.' and a DNS name, in lowercase; "
                              f"{problem}", fix)
    for index, host in enumerate(hosts):
        other = next((o for o in hosts[index + 1:] if hosts_overlap(host, o)), None)
        if other is not None:
            # ValidateVirtualService: "duplicate hosts in virtual service" (a wildcard and a name it covers count)
            wider = max(host, other, key=lambda h: (h.startswith("*"), -len(h)))
            raise reader.fail(key, hosts, f"{show(host)} and {show(other)} overlap, and Istio refuses a VirtualService "
                              f"whose hosts do", f"list each host once and drop the hosts {show(wider)} already "
                              f"covers: pulumi config set --path '{key}[0]' {wider} -s {reader.stack}, then "
                              f"pulumi config rm --path '{key}[1]' -s {reader.stack}")
    return tuple(hosts)


def _check_cookie_regex(reader: _Reader, cookie: Cookie) -> None:
    """The test route matches the cookie with a header regex, which Istio refuses over MAX_ISTIO_REGEX characters
    (validateStringRegexp): checked for the cookie as configured and, with a test token, for the token's cookie."""
    from .routes import cookie_regex  # routes builds on this module's types; the regex is built in one place

    length = len(cookie_regex(cookie))
    if length > MAX_ISTIO_REGEX:
        raise reader.fail("testCookie", str(cookie), f"the header regex that matches it would be {length} characters, "
                          f"and Istio refuses a regex longer than {MAX_ISTIO_REGEX}",
                          reader.fix_set("testCookie", "test=true"))
    token = reader.string("testToken")
    if token and len(cookie_regex(Cookie(cookie.name, token))) > MAX_ISTIO_REGEX:
        raise reader.fail("testToken", token, f"with the cookie name {show(cookie.name)} ({PROJECT}:testCookie), the "
                          f"header regex that matches the test cookie would be longer than the {MAX_ISTIO_REGEX} "
                          f"characters Istio accepts", f"a shorter cookie name: {reader.fix_set('testCookie', 'test=true')}"
                          f", or a shorter token: {TEST_TOKEN_FIX.format(stack=reader.stack)}")


def _test_token_set(reader: _Reader) -> bool:
    """Validate testToken without keeping it: the program reads it again as a Pulumi secret."""
    token = reader.string("testToken")
    if not token:
        return False
    fix = TEST_TOKEN_FIX.format(stack=reader.stack)
    if "testToken" not in reader.secret_keys:
        raise SettingsError(f"{PROJECT}:testToken is stored in plain text on stack {reader.stack}: anyone who reads "
                            f"the stack file could reach the release under test. Fix: {fix}")
    if len(token) < MIN_TOKEN_LENGTH:
        raise reader.fail("testToken", token, f"it is shorter than {MIN_TOKEN_LENGTH} characters, so it could be "
                          f"guessed", fix)
    if len(token) > MAX_TOKEN_LENGTH or not _COOKIE_VALUE.match(token):
        raise reader.fail("testToken", token, f"it must be a cookie value of at most {MAX_TOKEN_LENGTH} characters "
                          f"(letters, digits and punctuation except quotes, commas, semicolons and backslashes)", fix)
    return True


def _tls(reader: _Reader, hosts: tuple[str, ...]) -> Optional[Tls]:
    fix = f"pulumi config set --path tls.credentialName myapp-tls -s {reader.stack}"
    tls = reader.structured("tls", dict, fix)
    if not tls:
        return None
    for key in tls:
        if key not in ("credentialName", "hosts"):
            raise SettingsError(f"{PROJECT}:tls has the field {show(key)}, which is not one of credentialName and "
                                f"hosts. Fix: pulumi config rm --path 'tls.{key}' -s {reader.stack}")
    name = tls.get("credentialName")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        raise reader.fail("tls.credentialName", name, "it must name the Kubernetes TLS Secret that holds the "
                          "certificate, in the ingress gateway's namespace (lowercase letters, digits, '-' and '.')",
                          fix)
    tls_hosts = _hosts(reader, "tls.hosts", tls["hosts"]) if "hosts" in tls else hosts
    for host in tls_hosts:
        if not any(_covers(pattern, host) for pattern in hosts):
            raise reader.fail("tls.hosts", host, f"the routes answer only for {PROJECT}:hosts {show(list(hosts))}, "
                              f"so HTTPS for this host would reach no route",
                              f"pulumi config rm --path tls.hosts -s {reader.stack} (HTTPS for every host)")
    return Tls(name, tls_hosts)


def _covers(pattern: str, host: str) -> bool:
    """Whether an Istio host pattern ('*', '*.example.com' or a name) takes requests for `host`."""
    return pattern in ("*", host) or (pattern.startswith("*.") and host.endswith(pattern[1:]))


def duration_ms(text: str) -> Optional[Decimal]:
    """The milliseconds an Istio duration (500ms, 2s, 1m30s) stands for, or None when it is not one."""
    if not _DURATION.match(text):
        return None
    return sum((Decimal(number) * _DURATION_MS[unit] for number, unit in _DURATION_PART.findall(text)), Decimal(0))


def _duration(reader: _Reader, key: str) -> Optional[str]:
    """An Istio duration, written in whole seconds or milliseconds (e.g. 1m30s as 90s); None when empty."""
    text = reader.string(key)
    if not text:
        return None
    ms = duration_ms(text)
    if ms is None or not 1 <= ms <= MAX_DURATION_MS or ms != ms.to_integral_value():
        raise reader.fail(key, text, "it must be a duration of whole milliseconds from 1ms to 24h, like 500ms, 2s, "
                          "1m or 1m30s (empty for none)", reader.fix_set(key, "15s"))
    ms = int(ms)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _retries(reader: _Reader, timeout: Optional[str]) -> dict[str, Any]:
    """The HTTPRetry both routes share; attempts 0 turns retries off (Istio's own default retries too)."""
    attempts = reader.integer("retryAttempts", 0, 10, "2")
    retry_on = reader.string("retryOn")
    unknown = [condition for condition in retry_on.split(",") if condition not in RETRY_ON]
    if retry_on and unknown or attempts and not retry_on:
        problem = f"{show(unknown[0])} is not one of them" if retry_on else "it is empty, but retryAttempts is not 0"
        raise reader.fail("retryOn", retry_on, f"it must list, comma-separated without spaces, Envoy's retry "
                          f"conditions ({', '.join(RETRY_ON)}); {problem}",
                          reader.fix_set("retryOn", "connect-failure,refused-stream"))
    per_try_timeout = _duration(reader, "retryPerTryTimeout")
    if per_try_timeout and timeout and duration_ms(per_try_timeout) > duration_ms(timeout):
        raise reader.fail("retryPerTryTimeout", reader.string("retryPerTryTimeout"), f"it is longer than "
                          f"{PROJECT}:timeout ({timeout}), which ends the request first, so no retry could run",
                          f"pulumi config rm retryPerTryTimeout -s {reader.stack} (a try may then last the whole "
                          f"timeout), or set it to at most {timeout}")
    if attempts == 0:
        return {"attempts": 0}  # Istio refuses retry conditions or a per-try timeout with no attempts
    retries: dict[str, Any] = {"attempts": attempts, "retryOn": retry_on}
    if per_try_timeout:
        retries["perTryTimeout"] = per_try_timeout
    return retries


def parse_cookie(text: str, fail=None) -> Cookie:
    """`name=value` as a Cookie; a name or value that is not a valid cookie token is refused."""

    def refuse(problem: str) -> SettingsError:
        return fail(problem) if fail else SettingsError(f"cookie {show(text)}: {problem}")

    name, sep, value = text.partition("=")
    if not sep:
        raise refuse("it must be name=value")
    if not _COOKIE_NAME.match(name):
        raise refuse("the cookie name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)")
    if not _COOKIE_VALUE.match(value):
        raise refuse("the cookie value must be non-empty, without spaces, quotes, commas, semicolons or "
                     "backslashes")
    return Cookie(name, value)
