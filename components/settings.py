"""Stack settings: a stack's config read, typed and validated, before any object is declared.

Pure logic: no Pulumi engine is needed. The program, the offline plan and the tests all parse config through
`parse_settings`, so a value is refused the same way everywhere. The keys are declared in config_keys.py, the
types in domain.py, Istio's and Kubernetes' rules in rules.py, the routing stack's keys in routing_settings.py.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import shlex
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping, Optional

from . import rules
from .config_keys import BY_KEY, COLOR_KEYS, COMMON_KEYS, OBJECT_KEYS, ROUTING_KEYS, SECRET_KEYS
# Also the names the scripts and tests import from here: the types and the cookie parser.
from .domain import (COLORS, PROJECT, ColorSettings, Cookie, RoutingSettings, Settings, SettingsError,  # noqa: F401
                     env_value_text, other_color, show)
from .routing_settings import routing_settings
from .rules import parse_cookie  # noqa: F401
from .stackfile import StackFileError, load_yaml, read_text

# config keys of each resource, and the amounts a container may sensibly ask for
_RESOURCES = (("cpu", "cpuRequest", "cpuLimit", Decimal("0.001"), Decimal(1000), "1m and 1000 (cores)"),
              ("memory", "memoryRequest", "memoryLimit", Decimal(4 * 2**20), Decimal(4 * 2**40), "4Mi and 4Ti"))


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



class Reader:
    """Typed access to raw config values (strings, as Pulumi passes them), with defaults."""

    def __init__(self, raw: Mapping[str, Any], secret_keys: frozenset[str], stack: str, defaults: Mapping[str, Any]):
        self.raw = raw
        self.secret_keys = secret_keys
        self.stack = stack
        self.defaults = {**defaults, **{key: {} for key in OBJECT_KEYS}}  # objects, which Pulumi.yaml cannot declare

    def fail(self, key: str, value: Any, problem: str, fix: Optional[str] = None) -> SettingsError:
        """The refusal of a value; the fix is the key's own (config_keys.KEYS) unless given."""
        shown = "[secret]" if key in self.secret_keys or key in SECRET_KEYS else show(value)
        return SettingsError(f"{PROJECT}:{key} is {shown}: {problem}. Fix: {fix or self.fix(key)}")

    def fix(self, key: str) -> str:
        return BY_KEY[key.partition(".")[0]].fix.format(stack=self.stack)

    def fix_set(self, key: str, example: str) -> str:
        return f"pulumi config set {key} {example} -s {self.stack}"

    def is_set(self, key: str) -> bool:
        """Set to something other than empty or the default (the CLI passes defaults as set values)."""
        value = self.raw.get(key)
        return value is not None and value != "" and parsed_value(value) != parsed_value(self.defaults.get(key))

    def string(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None:
            value = self.defaults.get(key)
        return "" if value is None else str(value)

    def given(self, key: str) -> Any:
        """The value set for a number or a switch; unset or empty means the default."""
        value = self.raw.get(key)
        return self.defaults.get(key) if value is None or value == "" else value

    def integer(self, key: str) -> int:
        value, (low, high) = self.given(key), BY_KEY[key].bounds
        try:
            number = int(str(value).strip())
        except ValueError:
            raise self.fail(key, value, "it must be a whole number") from None
        if not low <= number <= high:
            raise self.fail(key, value, f"it must be between {low} and {high}")
        return number

    def boolean(self, key: str) -> bool:
        value = self.given(key)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise self.fail(key, value, "it must be true or false")

    def structured(self, key: str, kind: type) -> Any:
        """An object or list key: Pulumi passes it as JSON text."""
        value = self.raw.get(key)
        if value is None or value == "":
            return self.defaults.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):  # not JSON, or nested too deep to read
                raise self.fail(key, value, f"it must be {'an object' if kind is dict else 'a list'}") from None
        if not isinstance(value, kind):
            raise self.fail(key, value, f"it must be {'an object' if kind is dict else 'a list'}")
        return value


    def color(self, key: str, example: Optional[str] = None) -> str:
        value = self.string(key)
        if value not in COLORS:
            raise self.fail(key, value, "it must be blue or green", example and self.fix_set(key, example))
        return value

def parsed_value(value: Any) -> Any:
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
    reader = Reader(raw, frozenset(secret_keys), stack, defaults)
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
    if not rules.DNS_LABEL.match(app) or len(app) > rules.MAX_APP_LENGTH:
        raise reader.fail("app", app, f"it must be a DNS label: lowercase letters, digits and '-', starting with "
                          f"a letter, at most {rules.MAX_APP_LENGTH} characters (Job <app>-green-migrate is a 63-character label)")
    namespace = reader.string("namespace")
    if not rules.DNS1123_LABEL.match(namespace) or len(namespace) > rules.MAX_LABEL_LENGTH:
        raise reader.fail("namespace", namespace, "it must be a Kubernetes namespace name (lowercase letters, "
                          "digits and '-', at most 63 characters)")
    if has_color:
        _refuse_keys_of_other_role(reader, ROUTING_KEYS, "a color stack")
        return _color_settings(reader, app, namespace)
    _refuse_keys_of_other_role(reader, COLOR_KEYS, "the routing stack")
    return routing_settings(reader, app, namespace)


def _refuse_unknown_keys(reader: Reader) -> None:
    known = COMMON_KEYS | COLOR_KEYS | ROUTING_KEYS
    for key in sorted(set(reader.raw) - known):
        guess = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"did you mean {PROJECT}:{guess[0]}? " if guess else ""
        raise SettingsError(
            f"{PROJECT}:{key} is not a setting of this program ({hint}the keys are listed in the README's "
            f"config reference). Fix: pulumi config rm {key} -s {reader.stack}"
        )


def _refuse_secrets_shown_in_plain_text(reader: Reader) -> None:
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


def _refuse_keys_of_other_role(reader: Reader, keys: frozenset[str], role: str) -> None:
    for key in sorted(keys):
        if reader.is_set(key):
            raise SettingsError(
                f"{PROJECT}:{key} is set on stack {reader.stack}, which is {role}; the key does nothing "
                f"there. Fix: pulumi config rm {key} -s {reader.stack}"
            )


def _check_digest(reader: Reader, image: str, digest: Optional[str]) -> None:
    problem = digest and rules.digest_problem(digest)
    if problem:
        raise reader.fail("image", image, problem, reader.fix_set(
            "image", "registry.example.com/myapp@sha256:<64 hex digits>") + " (the digest `docker buildx "
            "imagetools inspect` or the registry shows)")


def _color_settings(reader: Reader, app: str, namespace: str) -> ColorSettings:
    color = reader.color("color")
    image = reader.string("image")
    if not image:
        raise reader.fail("image", image, "a color stack needs the image to run")
    parsed = rules.parse_image(image)
    if parsed is None:
        raise reader.fail("image", image, "it is not an image reference ([registry/]name[:tag][@digest], "
                          "lowercase name)")
    if rules.is_mutable_image(parsed) and not reader.boolean("allowMutableImage"):
        raise reader.fail("image", image, "it names no fixed release (tag 'latest', or no tag): each pull may run "
                          "other code, and the release label cannot tell releases apart",
                          reader.fix("image") + " (a version tag or an @sha256: digest), or, to run it anyway: "
                          + reader.fix("allowMutableImage"))
    _check_digest(reader, image, parsed["digest"])
    explicit_release = reader.string("release")
    release = explicit_release or rules.default_release(parsed)
    if not rules.is_label_value(release):
        rule = ("a Kubernetes label value (letters, digits, '-', '_', '.', at most 63 characters, starting and "
                "ending with a letter or digit)")
        if explicit_release:
            raise reader.fail("release", release, f"it must be {rule}")
        raise reader.fail("image", image, f"the release taken from its tag, {show(release)}, is not {rule}",
                          reader.fix("release"))
    replicas = reader.integer("replicas")
    port = reader.integer("port")
    if port in rules.ISTIO_RESERVED_PORTS:
        raise reader.fail("port", reader.given("port"), f"Istio's sidecar listens on {port} in every pod of the mesh "
                          f"({rules.ISTIO_RESERVED_PORTS[port]}), so the app would clash with it; Istio reserves "
                          f"{', '.join(map(str, rules.ISTIO_RESERVED_PORTS))}")
    readiness_path = reader.string("readinessPath")
    if not readiness_path.startswith("/") or any(c.isspace() or not c.isprintable() for c in readiness_path):
        raise reader.fail("readinessPath", readiness_path, "it must be a URL path starting with '/', without "
                          "spaces")
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
        raise reader.fail("migrateCommand", migrate, f"it cannot be split into arguments ({error})") from None
    routing_stack = reader.string("routingStack") or None
    if routing_stack is not None and not rules.STACK_NAME.match(routing_stack):
        raise reader.fail("routingStack", routing_stack, "it must be a stack name like "
                          "organization/bluegreen/routing")
    requests, limits = _resources(reader)
    return ColorSettings(
        stack=reader.stack, app=app, namespace=namespace, color=color, image=image, release=release,
        replicas=replicas, port=port, readiness_path=readiness_path, env=env,
        secret_env_names=tuple(sorted(secret_env)), migrate_command=migrate_command,
        routing_stack=routing_stack, allow_live_update=reader.boolean("allowLiveUpdate"),
        requests=requests, limits=limits, read_only_root_filesystem=reader.boolean("readOnlyRootFilesystem"),
    )


def _resources(reader: Reader) -> tuple[dict[str, str], dict[str, str]]:
    """The container's CPU and memory requests and limits; an empty value leaves one out."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for resource, request_key, limit_key, low, high, bounds in _RESOURCES:
        amounts = {}
        for key, into in ((request_key, requests), (limit_key, limits)):
            text = reader.string(key)
            if not text:
                continue
            amount = rules.parse_quantity(text)
            if amount is None or not low <= amount <= high:
                raise reader.fail(key, text, f"it must be a Kubernetes quantity of {resource} between {bounds}, "
                                  f"e.g. {BY_KEY[key].example}")
            into[resource], amounts[key] = text, amount
        if len(amounts) == 2 and amounts[request_key] > amounts[limit_key]:
            raise reader.fail(request_key, requests[resource], f"it is more than {PROJECT}:{limit_key} "
                              f"({show(limits[resource])}), and a container may never use more than its limit",
                              reader.fix_set(request_key, limits[resource]))
    return requests, limits


def _env_object(reader: Reader, key: str, secret: bool) -> dict[str, str]:
    example = reader.fix(key)
    value = reader.structured(key, dict)
    env: dict[str, str] = {}
    for name, item in value.items():
        if not rules.ENV_NAME.match(name):
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
