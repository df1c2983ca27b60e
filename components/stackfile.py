"""Pulumi's YAML files (Pulumi.yaml, Pulumi.<stack>.yaml) read the way the CLI reads them, and safely.

The CLI reads them with Go's yaml.v3 into `config.Value`s (pulumi/pulumi, sdk/go/common/resource/config/value.go):
a scalar config value is passed to the program as its text, exactly as written (`1.0`, `yes`, `2024-01-01`
stay text, and an empty value is ""), and an object or a list as JSON, its values typed by YAML 1.2's core
schema (only true/false are booleans; a date stays text; NaN and infinities cannot be JSON). Duplicate keys
are an error there, and so they are here. ruamel.yaml reads YAML 1.2 and refuses duplicate keys.

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

from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode
from ruamel.yaml.parser import Parser
from ruamel.yaml.resolver import BaseResolver

MAX_FILE_BYTES = 1 << 20  # a stack file is a few hundred bytes; this is far above any real one
MAX_DEPTH = 32  # config objects are two or three levels deep
MAX_NODES = 100_000  # values in the document, counting each alias as the values it stands for

_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z")


class StackFileError(ValueError):
    """The file cannot be read as Pulumi reads it; the message is one line, without the file's content."""


class _CoreResolver(BaseResolver):
    """YAML 1.2's core schema, as yaml.v3 resolves untagged scalars: ruamel's own 1.2 resolver also reads dates,
    `1_000` and `0b1` as data, which Pulumi passes as text."""

    def __init__(self, version: Any = None, loader: Any = None):
        super().__init__(loader)
        self._loader_version = version  # ruamel makes a new resolver whenever this differs from the YAML's

    @property
    def processing_version(self) -> tuple[int, int]:
        return (1, 2)  # the parser's rules (e.g. `key:value` without a space) are 1.2's


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)\Z", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)\Z", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT.pattern, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT.pattern, "-+0123456789."),
    ("tag:yaml.org,2002:merge", r"^(?:<<)\Z", "<"),
):
    _CoreResolver.add_implicit_resolver_base(_tag, re.compile(_pattern), list(_first))


class _Constructor(SafeConstructor):
    """JSON's types only; a key given twice named in the message without its value (ruamel's shows both values)."""

    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> bool:
        if not isinstance(key_node, ScalarNode):
            raise ConstructorError(None, None, "a key that is a list or an object", key_node.start_mark)
        if key in mapping:
            raise ConstructorError(None, None, f"the key {_shown_key(key)} is given twice", key_node.start_mark)
        return True

    def flatten_mapping(self, node: Any) -> Any:
        """ruamel checks no key of a mapping with a merge key (<<) in it; yaml.v3 still refuses its own keys twice."""
        own = [key for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"]
        if len(own) < len(node.value):
            seen: dict = {}
            for key_node in own:
                key = self.construct_object(key_node, deep=True)
                if self.check_mapping_key(node, key_node, seen, key, None):
                    seen[key] = None
        return super().flatten_mapping(node)


def _construct_int(constructor: _Constructor, node: ScalarNode) -> int:
    text = constructor.construct_scalar(node)
    if not _INT.match(text):
        raise ConstructorError(None, None, "a value tagged !!int that is not a number", node.start_mark)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 16) if text.startswith("0x") else int(text, 10)


def _construct_float(constructor: _Constructor, node: ScalarNode) -> float:
    text = constructor.construct_scalar(node)
    if not _FLOAT.match(text):
        raise ConstructorError(None, None, "a value tagged !!float that is not a number", node.start_mark)
    if text.lower().lstrip("+-") == ".inf":
        return -math.inf if text.startswith("-") else math.inf
    return math.nan if text.lower() == ".nan" else float(text)


def _unsupported(constructor: _Constructor, node: Any) -> Any:
    raise ConstructorError(None, None, f"the tag {str(node.tag).replace('tag:yaml.org,2002:', '!!')}, "
                           f"which a Pulumi config value cannot hold", node.start_mark)


_Constructor.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Constructor.add_constructor("tag:yaml.org,2002:float", _construct_float)
for _name in ("binary", "timestamp", "set", "omap", "pairs"):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_name}", _unsupported)


class _ShapedParser(Parser):
    """Refuses deep nesting and alias expansion beyond the limits while parsing, before the composer builds (and
    recurses into) the document: each alias counts as the values its anchor holds, and is never expanded."""

    def __init__(self, loader: Any):
        super().__init__(loader)
        self.sizes: dict[str, int] = {}
        self.open_collections: list[list] = []  # [anchor, values so far]
        self.total = 0

    def get_event(self) -> Any:
        event = super().get_event()
        size = 0
        if isinstance(event, CollectionStartEvent):
            if len(self.open_collections) >= MAX_DEPTH:
                raise StackFileError(f"it is nested more than {MAX_DEPTH} levels deep ({_where(event.start_mark)})")
            self.open_collections.append([event.anchor, 1])
        elif isinstance(event, CollectionEndEvent):
            anchor, size = self.open_collections.pop()
            if anchor:
                self.sizes[anchor] = size
        elif isinstance(event, ScalarEvent):
            size = 1
            if event.anchor:
                self.sizes[event.anchor] = 1
        elif isinstance(event, AliasEvent):
            if any(anchor == event.anchor for anchor, _ in self.open_collections):
                # yaml.v3: "anchor '...' value contains itself"; the value would be infinite
                raise StackFileError(f"it has an alias inside the value it stands for ({_where(event.start_mark)})")
            size = self.sizes.get(event.anchor, 1)  # an alias to no anchor: the composer names it
        if size:
            self._count(event, size)
        return event

    def _count(self, event: Any, size: int) -> None:
        if self.open_collections:
            self.open_collections[-1][1] += size
            count = self.open_collections[-1][1]
        else:
            self.total += size
            count = self.total
        if count > MAX_NODES:
            where = _where(event.start_mark if isinstance(event, NodeEvent) else None)
            raise StackFileError(f"it holds more than {MAX_NODES} values once its aliases are expanded ({where}): "
                                 f"write the values out instead of repeating aliases")


def _yaml() -> YAML:
    """A reader of one document (ruamel's YAML objects keep per-document state, so one per read)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Resolver, yaml.Constructor, yaml.Parser = _CoreResolver, _Constructor, _ShapedParser
    return yaml


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


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"


def _refusal(error: YAMLError) -> StackFileError:
    if isinstance(error, MarkedYAMLError):
        problem = "; ".join(filter(None, (error.context, error.problem))) or "not YAML"
        return StackFileError(f"it is not valid YAML: {problem} ({_where(error.problem_mark)})")
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__  # the reader's: a bad character
    return StackFileError(f"it is not valid YAML ({detail})")


def load_yaml(text: str) -> Any:
    """One YAML document as Pulumi's CLI would read it (JSON's types only), or StackFileError."""
    try:
        return _yaml().load(text)
    except YAMLError as error:
        raise _refusal(error) from None


def _value_nodes(yaml: YAML, mapping: MappingNode) -> dict[str, Any]:
    """A constructed mapping node's value nodes by key as text (its merged keys first, as the constructor put them)."""
    return {go_text(yaml.constructor.construct_object(key)): value for key, value in mapping.value}


def stack_config(text: str) -> dict[str, Any]:
    """The `config:` of a stack file, key -> value: a scalar as its text, as written (an empty one as ""),
    an object or a list as its data (mapping keys as text). StackFileError when the CLI could not read it."""
    yaml = _yaml()
    try:
        root = yaml.compose(text)
        data = yaml.constructor.construct_document(root) if root is not None else None
    except YAMLError as error:
        raise _refusal(error) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StackFileError("it is not a Pulumi stack file (its top level must be a mapping, with config: in it)")
    config = next((value for key, value in data.items() if go_text(key) == "config"), None)
    if config is None:
        return {}
    if not isinstance(config, dict):
        where = _where(_value_nodes(yaml, root)['config'].start_mark)
        raise StackFileError(f"its config: is not a mapping of namespace:key to value ({where})")
    nodes = _value_nodes(yaml, _value_nodes(yaml, root)['config'])
    result = {}
    for key, value in config.items():
        key = go_text(key)
        if isinstance(value, (dict, list)):
            result[key] = config_value(value)
        else:
            result[key] = "" if value is None else nodes[key].value  # the text as written, not the YAML value
    return result


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
