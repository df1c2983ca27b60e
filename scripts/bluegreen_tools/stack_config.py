"""A stack file's config as the Pulumi engine would pass it to the program, read without the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from components.settings import PROJECT
from components.stackfile import StackFileError, read_text, stack_config

# What an encrypted stack-file value becomes offline: valid wherever a secret is (a 16+ character testToken).
UNDECRYPTED = "undecrypted-secret-value"


def config_text(value: Any) -> str:
    """A config value as Pulumi passes it to a program: text, with JSON for objects and lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, allow_nan=False)


def with_declared_defaults(config: Mapping[str, str], defaults: Mapping[str, Any]) -> dict[str, str]:
    """A stack's config as the CLI passes it to the program: the stack's keys, and the default of every other key
    Pulumi.yaml declares (`defaults`, from components/settings.declared_defaults), as text. A key declared without
    a default is one the CLI requires of the stack, so it has nothing to inject."""
    injected = {key: config_text(value) for key, value in defaults.items() if value is not None and key not in config}
    return {**injected, **config}


def _without_secure(value: Any) -> tuple[Any, bool]:
    """A config value with each `secure:` leaf (undecryptable offline) as UNDECRYPTED."""
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):  # what Pulumi takes for a secret
            return UNDECRYPTED, True
        items = {k: _without_secure(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
    if isinstance(value, list):
        items = [_without_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def stack_file_config(path: Path) -> tuple[dict[str, str], frozenset[str]]:
    """A stack file's `bluegreen:` config as the engine would pass it, and its secret keys.

    Read as the CLI reads it (components/stackfile.py): a scalar is passed as written, an object as JSON.
    Secret values cannot be decrypted without the CLI; they become UNDECRYPTED (masked as [secret]).
    Raises StackFileError, one line naming the problem, for a file the CLI could not read.
    """
    raw, secret = {}, set()
    for key, value in stack_config(read_text(path)).items():
        namespace, colon, name = key.partition(":")
        if not colon or not namespace or not name:
            raise StackFileError(f"its config key {key[:60]!r} is not of the form namespace:key (Pulumi refuses it); "
                                 f"this program's keys are {PROJECT}:<key>")
        if namespace != PROJECT:
            continue
        name = name.removeprefix("config:")  # the CLI's pre-1.0 form, <namespace>:config:<key>
        value, is_secret = _without_secure(value)
        raw[name] = config_text(value)
        if is_secret:
            secret.add(name)
    return raw, frozenset(secret)
