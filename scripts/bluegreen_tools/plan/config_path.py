"""`--set` in the path form of `pulumi config set --path` (e.g. tls.credentialName, analysis.queries[0].max): the
same meaning as the CLI's, so that a plan shows what the command the README teaches would configure.

What the CLI does, as its documentation and its config code say: the key is a property path (names joined by '.',
`[N]` list indexes, `["any text"]` for a name with dots or brackets); its first segment is the config key. A path
of one segment sets that key as it is. A longer one sets a value inside the key's object or list, creating the
objects and lists it needs; a list index may be at most the list's length (that length appends). Inside an object,
"true" and "false" become booleans, a whole number without a leading zero becomes a number, and anything else stays
text. A top-level value that is not an object or a list is replaced. Pure logic: no engine, no files.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Union

Segment = Union[str, int]
_NAME_END = re.compile(r"[.\[]")
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+\Z")
_INT64 = 2**63


class PathError(ValueError):
    """A path the CLI would refuse, or cannot set; the message says why and how to write it."""


def is_path(key: str) -> bool:
    """Whether a --set key is a path (no key of this project has a '.' or a '[' in its name)."""
    return "." in key or "[" in key


def parse_path(text: str) -> list[Segment]:
    """The segments of a property path: names (str) and list indexes (int)."""
    segments: list[Segment] = []
    rest = text
    while rest:
        if rest[0] == ".":
            rest = rest[1:]
        elif rest[0] == "[":
            if rest[1:2] == '"':
                name, rest = _quoted(rest)
                segments.append(name)
            else:
                end = rest.find("]")
                if end < 0:
                    raise PathError("a '[' has no closing ']'")
                index = rest[1:end]
                if not _WHOLE_NUMBER.match(index):
                    raise PathError(f"[{index[:20]}] is not a list index (a whole number) nor a quoted name "
                                    f"like [\"name.with.dots\"]")
                segments.append(int(index))
                rest = rest[end + 1:]
        else:
            end = _NAME_END.search(rest)
            cut = end.start() if end else len(rest)
            segments.append(rest[:cut])
            rest = rest[cut:]
    if not segments or not isinstance(segments[0], str) or not segments[0]:
        raise PathError("a path starts with the config key's name, e.g. tls.credentialName")
    return segments


def _quoted(rest: str) -> tuple[str, str]:
    """A `["name"]` segment at the start of `rest` (a backslash escapes a quote): the name and what follows."""
    name, i = [], 2
    while True:
        if i >= len(rest):
            raise PathError("a quoted name has no closing quote")
        if rest[i] == '"':
            break
        if rest[i] == "\\" and rest[i + 1:i + 2] == '"':
            name.append('"')
            i += 2
        else:
            name.append(rest[i])
            i += 1
    if rest[i + 1:i + 2] != "]":
        raise PathError("a quoted name is not followed by ']'")
    return "".join(name), rest[i + 2:]


def typed(text: str) -> Any:
    """A value set inside an object or a list, typed as the CLI types it."""
    if text in ("true", "false"):
        return text == "true"
    if (len(text) > 1 and text[0] == "0") or not _WHOLE_NUMBER.match(text):
        return text
    number = int(text)
    return number if -_INT64 <= number < _INT64 else text


def spelled(segments: list[Segment]) -> str:
    """A path written back, as a message shows it."""
    out = ""
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$-]*", segment):
            out += f".{segment}" if out else segment
        else:
            out += "[" + json.dumps(segment) + "]"
    return out


def set_at_path(current: Optional[str], segments: list[Segment], value: str) -> str:
    """The key's new value (JSON text, as the engine passes objects) after setting `value` at `segments`.

    `current` is the key's value now, as the engine would pass it (None when unset)."""
    existing = _container(current)
    root: dict[str, Any] = {segments[0]: existing}
    holder: Any = root
    for depth, (key, inner) in enumerate(zip(segments, segments[1:]), 1):
        child = _get(holder, key, segments[:depth])
        if child is None:
            child = [] if isinstance(inner, int) else {}
            _put(holder, key, child, segments[:depth])
        elif isinstance(inner, int) and not isinstance(child, list):
            raise PathError(f"{spelled(segments[:depth])} is {_kind(child)}, so it has no index [{inner}]; "
                            f"name a field instead, e.g. {spelled(segments[:depth])}.<field>")
        elif isinstance(inner, str) and not isinstance(child, dict):
            raise PathError(f"{spelled(segments[:depth])} is {_kind(child)}, so it has no field {inner!r}; "
                            + (f"index it instead, e.g. {spelled(segments[:depth])}[0]" if isinstance(child, list)
                               else f"set {spelled(segments[:depth])} as a whole"))
        holder = child
    _put(holder, segments[-1], typed(value), segments)
    return json.dumps(root[segments[0]], ensure_ascii=False)


def _container(current: Optional[str]) -> Any:
    """The key's object or list now; None for anything else, which the CLI replaces."""
    if current is None:
        return None
    try:
        parsed = json.loads(current)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else f"the value {value!r}"[:60]


def _get(holder: Any, key: Segment, at: list[Segment]) -> Any:
    if isinstance(holder, list):
        _check_index(holder, key, at)
        return holder[key] if key < len(holder) else None
    return holder.get(key)


def _put(holder: Any, key: Segment, value: Any, at: list[Segment]) -> None:
    if isinstance(holder, list):
        _check_index(holder, key, at)
        if key == len(holder):
            holder.append(value)
        else:
            holder[key] = value
    else:
        holder[key] = value


def _check_index(items: list, index: Segment, at: list[Segment]) -> None:
    assert isinstance(index, int)  # a list is only ever created for, or checked against, an index
    parent = spelled(at[:-1])
    if index < 0:
        raise PathError(f"index {index} of {parent} is negative; the first entry is {parent}[0]")
    if index > len(items):
        raise PathError(f"index {index} is past the end of {parent} ({len(items)} "
                        f"entr{'y' if len(items) == 1 else 'ies'}): a list grows one entry at a time, so the next "
                        f"one is {parent}[{len(items)}]")
