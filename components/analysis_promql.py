"""The PromQL sanity check of a custom analysis query, and its placeholders (`{{ app }}`, `{{ interval }}`, ...).

A sanity check, not a parser: it catches what is plainly broken (empty, unbalanced brackets, braces or quotes, an
unknown placeholder) before anything changes. Prometheus itself is the final judge of a query; the e2e tier sends
every shipped and configured query to a real one.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Optional

PLACEHOLDERS = ("namespace", "app", "color", "release", "interval")
MAX_QUERY_LENGTH = 8000
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_CLOSERS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class Placeholder:
    start: int
    end: int
    name: str
    quote: Optional[str]  # the string literal it sits in ('"', "'" or '`'), None outside one


def placeholders(template: str) -> tuple[Placeholder, ...]:
    """Every `{{ name }}` in a query template, with the string literal around it (how its value is escaped)."""
    masked, found = _masked(template)
    strings = list(_lex(masked)[1])
    result = []
    for start, end, name in found:
        quote = next((q for (s, e, q) in strings if s < start < e), None)
        result.append(Placeholder(start, end, name, quote))
    return tuple(result)


def _masked(template: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The template with each placeholder overwritten by as many x's (positions kept), and the placeholders."""
    found = [(m.start(), m.end(), m.group(1).strip()) for m in _PLACEHOLDER.finditer(template)]
    masked = _PLACEHOLDER.sub(lambda m: "x" * len(m.group(0)), template)
    return masked, found


def _lex(text: str) -> tuple[Optional[str], list[tuple[int, int, str]], bool]:
    """(the first structural problem or None, the string literals as (start, end, quote), whether any token)."""
    stack: list[tuple[str, int]] = []
    strings: list[tuple[int, int, str]] = []
    tokens, i, n = False, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":  # a comment, to the end of the line
            while i < n and text[i] != "\n":
                i += 1
            continue
        if ch.isspace():
            i += 1
            continue
        tokens = True
        if ch in "\"'`":
            j = i + 1
            while j < n and text[j] != ch:
                if ch != "`" and text[j] == "\n":
                    return f"the string opened with {ch} at character {i + 1} runs past the end of its line", strings, tokens
                j += 2 if ch != "`" and text[j] == "\\" else 1
            if j >= n:
                return f"the string opened with {ch} at character {i + 1} is never closed", strings, tokens
            strings.append((i, j + 1, ch))
            i = j + 1
            continue
        if ch in "([{":
            stack.append((ch, i))
        elif ch in ")]}":
            if not stack or stack[-1][0] != _CLOSERS[ch]:
                problem = (f"does not close the {stack[-1][0]!r} at character {stack[-1][1] + 1}" if stack
                           else f"has no {_CLOSERS[ch]!r} before it")
                return f"{ch!r} at character {i + 1} {problem}", strings, tokens
            opener, at = stack.pop()
            if ch == "]" and not text[at + 1:i].strip():
                return (f"the range [] at character {at + 1} is empty; write a window, e.g. [{{{{ interval }}}}]",
                        strings, tokens)
        i += 1
    if stack:
        return f"{stack[-1][0]!r} at character {stack[-1][1] + 1} is never closed", strings, tokens
    return None, strings, tokens


def promql_problem(template: str) -> Optional[str]:
    """Why a query template is plainly not PromQL, or None. A sanity check only: Prometheus is the final judge."""
    if not isinstance(template, str):
        return "it is not text"
    if len(template) > MAX_QUERY_LENGTH:
        return f"it is {len(template)} characters long, over {MAX_QUERY_LENGTH}"
    if any(ord(ch) < 32 and ch not in "\t\n\r" or ord(ch) == 127 for ch in template):
        return "it holds a control character"
    masked, found = _masked(template)
    for _, _, name in found:
        if name not in PLACEHOLDERS:
            close = difflib.get_close_matches(name, PLACEHOLDERS, n=1)
            hint = f" (did you mean {{{{ {close[0]} }}}}?)" if close else ""
            return (f"{{{{ {name} }}}} is not a placeholder{hint}; the placeholders are "
                    + ", ".join(f"{{{{ {p} }}}}" for p in PLACEHOLDERS))
    if "{{" in masked or "}}" in masked:
        return "it has a '{{' or '}}' that is not part of a placeholder like {{ app }}"
    problem, strings, tokens = _lex(masked)
    if problem:
        return problem
    if not tokens:
        return "it is empty"
    for start, _, name in found:
        if name != "interval" and not any(s < start < e for s, e, _ in strings):
            return (f"{{{{ {name} }}}} at character {start + 1} is outside quotes; label values go in a string, "
                    f"e.g. destination_workload=\"{{{{ app }}}}-{{{{ color }}}}\"")
    return None
