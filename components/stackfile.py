"""Pulumi's YAML files (Pulumi.yaml, Pulumi.<stack>.yaml) read the way the CLI reads them, and safely.

The CLI reads them with Go's yaml.v3 into `config.Value`s (pulumi/pulumi, sdk/go/common/resource/config/value.go):
a scalar config value is passed to the program as its text, exactly as written (`1.0`, `yes`, `2024-01-01`
stay text, and an empty value is ""), and an object or a list as JSON, its values typed by YAML 1.2's core
schema (only true/false are booleans; a date stays text; NaN and infinities cannot be JSON). Duplicate keys
are an error there, and so they are here.

A file is untrusted input (a pull request edits it): it must be UTF-8 text of at most MAX_FILE_BYTES, nested at
most MAX_DEPTH deep, and at most MAX_NODES values once its aliases are expanded, so a "billion laughs" file is
refused after reading its few lines, never expanded. Every refusal is a StackFileError with one line that
names the problem and where it is, never the file's content.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent, ScalarEvent)

MAX_FILE_BYTES = 1 << 20  # a stack file is a few hundred bytes; this is far above any real one
MAX_DEPTH = 32  # config objects are two or three levels deep
MAX_NODES = 100_000  # values in the document, counting each alias as the values it stands for

_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z")


class StackFileError(ValueError):
    """The file cannot be read as Pulumi reads it; the message is one line, without the file's content."""


# libyaml's parser when PyYAML has it (its wheels do): the same events, twenty times faster than PyYAML's own.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """YAML 1.2's core schema, as yaml.v3 resolves untagged scalars, and nothing beyond JSON's types."""

    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        None, None, "a key that is a list or an object", key_node.start_mark) from None
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {_shown_key(key)} is given twice", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)\Z", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)\Z", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT.pattern, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT.pattern, "-+0123456789."),
    ("tag:yaml.org,2002:merge", r"^(?:<<)\Z", "<"),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    if not _INT.match(text):
        raise yaml.constructor.ConstructorError(None, None, "a value tagged !!int that is not a number", node.start_mark)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 16) if text.startswith("0x") else int(text, 10)


def _construct_float(loader, node):
    text = loader.construct_scalar(node)
    if not _FLOAT.match(text):
        raise yaml.constructor.ConstructorError(None, None, "a value tagged !!float that is not a number", node.start_mark)
    if text.lower().lstrip("+-") == ".inf":
        return -math.inf if text.startswith("-") else math.inf
    return math.nan if text.lower() == ".nan" else float(text)


def _unsupported(loader, node):
    raise yaml.constructor.ConstructorError(None, None, f"the tag {node.tag.replace('tag:yaml.org,2002:', '!!')}, "
                                            f"which a Pulumi config value cannot hold", node.start_mark)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
for _name in ("binary", "timestamp", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_name}", _unsupported)


def _shown_key(key: Any) -> str:
    text = repr(go_text(key))
    return text if len(text) <= 40 else text[:36] + "...'"


def go_text(value: Any) -> str:
    """A YAML scalar as Go's fmt prints it, which is how Pulumi turns an object's keys into text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"


def _check_shape(text: str) -> None:
    """Refuse deep nesting and alias expansion beyond the limits, from the event stream (no recursion, no
    expansion): each alias counts as the values its anchor holds."""
    sizes: dict[str, int] = {}
    open_collections: list[list] = []  # [anchor, values so far]
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, CollectionStartEvent):
            if len(open_collections) >= MAX_DEPTH:
                raise StackFileError(f"it is nested more than {MAX_DEPTH} levels deep ({_where(event.start_mark)})")
            open_collections.append([event.anchor, 1])
            continue
        if isinstance(event, CollectionEndEvent):
            anchor, size = open_collections.pop()
            if anchor:
                sizes[anchor] = size
        elif isinstance(event, ScalarEvent):
            size = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, AliasEvent):
            size = sizes.get(event.anchor, 1)  # an alias to no anchor: the composer names it below
        else:
            continue
        if open_collections:
            open_collections[-1][1] += size
            count = open_collections[-1][1]
        else:
            total += size
            count = total
        if count > MAX_NODES:
            where = _where(event.start_mark if isinstance(event, NodeEvent) else None)
            raise StackFileError(f"it holds more than {MAX_NODES} values once its aliases are expanded ({where}): "
                                 f"write the values out instead of repeating aliases")


def _refusal(error: yaml.YAMLError) -> StackFileError:
    if isinstance(error, yaml.MarkedYAMLError):
        problem = "; ".join(filter(None, (error.context, error.problem))) or "not YAML"
        return StackFileError(f"it is not valid YAML: {problem} ({_where(error.problem_mark)})")
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__  # the reader's: a bad character
    return StackFileError(f"it is not valid YAML ({detail})")


def load_yaml(text: str) -> Any:
    """One YAML document as Pulumi's CLI would read it (JSON's types only), or StackFileError."""
    try:
        _check_shape(text)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader with fewer types
    except yaml.YAMLError as error:
        raise _refusal(error) from None


def _pairs(loader: _Loader, node: yaml.MappingNode):
    """(key as text, key node, value node) of a mapping node, merges applied, a key given twice refused."""
    loader.flatten_mapping(node)
    seen = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(None, None, "a key that is a list or an object", key_node.start_mark)
        key = go_text(loader.construct_object(key_node, deep=True))
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"the key {_shown_key(key)} is given twice",
                                                    key_node.start_mark)
        seen.add(key)
        yield key, key_node, value_node


def stack_config(text: str) -> dict[str, Any]:
    """The `config:` of a stack file, key -> value: a scalar as its text, as written (an empty one as ""),
    an object or a list as its data (mapping keys as text). StackFileError when the CLI could not read it."""
    loader = None
    try:
        _check_shape(text)
        loader = _Loader(text)
        root = loader.get_single_node()
        if root is None or (isinstance(root, yaml.ScalarNode) and loader.construct_object(root) is None):
            return {}
        if not isinstance(root, yaml.MappingNode):
            raise StackFileError("it is not a Pulumi stack file (its top level must be a mapping, with config: in it)")
        config = next((value for key, _, value in _pairs(loader, root) if key == "config"), None)
        if config is None or (isinstance(config, yaml.ScalarNode) and loader.construct_object(config) is None):
            return {}
        if not isinstance(config, yaml.MappingNode):
            raise StackFileError(f"its config: is not a mapping of namespace:key to value ({_where(config.start_mark)})")
        result = {}
        for key, key_node, value_node in _pairs(loader, config):
            value = loader.construct_object(value_node, deep=True)
            if isinstance(value_node, yaml.ScalarNode):
                result[key] = "" if value is None else value_node.value
            else:
                result[key] = config_value(value)
        return result
    except yaml.YAMLError as error:
        raise _refusal(error) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_text(path: Path) -> str:
    """A file's text: UTF-8, at most MAX_FILE_BYTES (read no further, so /dev/zero is refused at once)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise StackFileError(f"it cannot be read ({error.strerror or type(error).__name__})") from None
    if len(data) > MAX_FILE_BYTES:
        raise StackFileError(f"it is larger than {MAX_FILE_BYTES // 1024} KiB, which no stack file is")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StackFileError(f"it is not UTF-8 text (byte {error.start + 1} is not)") from None
    if "\x00" in text:
        raise StackFileError("it is not text (it holds a NUL byte)")
    return text.removeprefix("\ufeff")


def read_yaml(path: Path) -> Any:
    return load_yaml(read_text(path))


def config_value(value: Any) -> Any:
    """A config value's data with every mapping key as text (Pulumi's fix-up of yaml.v3's maps); StackFileError
    for what JSON cannot hold."""
    if isinstance(value, dict):
        return {go_text(k): config_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [config_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise StackFileError(f"a value is {go_text(value)}, which JSON (and so a Pulumi config object) cannot hold")
    return value
