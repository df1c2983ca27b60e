"""The program's own error diagnostics from a failed `pulumi up` or `preview`, as one line: from the engine's
JSON events (`--json`: one engine event a line, `diagnosticEvent`s), the preview digest (`preview --json`:
its `diagnostics`), or the text display's "Diagnostics:" section (a header line per resource, its messages
indented under it), with the CLI's own `error:` lines as the last resort. Secrets are masked, then cut.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

from .cli import printable, redact

LIMIT = 400  # characters of the one line
MASK = "[secret]"
# The engine's own closing line when the program failed: it says nothing when the program said why.
GENERIC = ("an unhandled error occurred: program exited with non-zero exit code",
           "update failed", "preview failed")
UNHANDLED = "Program failed with an unhandled exception:"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_HEADER = re.compile(r"^  (\S.*\(.*\)):$")  # "  pulumi:pulumi:Stack (bluegreen-routing):"
_SEVERITY = re.compile(r"^(error|warning|info|info#err): ", re.I)


@dataclass(frozen=True)
class Diagnostic:
    resource: Optional[str]  # "pulumi:pulumi:Stack (bluegreen-routing)", or None (none named)
    message: str

    def line(self) -> str:
        return f"{self.resource}: error: {self.message}" if self.resource else f"error: {self.message}"


def _label(urn: Optional[str]) -> Optional[str]:
    """"urn:pulumi:STACK::PROJECT::TYPE::NAME" as the display names it: "TYPE (NAME)"."""
    parts = (urn or "").split("::")
    return f"{parts[-2].rpartition('$')[2]} ({parts[-1]})" if len(parts) >= 4 else None


def condense(message: str) -> str:
    """A diagnostic's text in one line: an unhandled exception as its first line and the exception itself."""
    lines = [line.strip() for line in _ANSI.sub("", message).splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith(UNHANDLED) or any(line.startswith("Traceback (most recent call last)") for line in lines):
        return f"{lines[0]} {lines[-1]}" if lines[-1] != lines[0] else lines[0]
    return " ".join(lines)


def _from_events(text: str) -> Optional[list[Diagnostic]]:
    found, any_event = [], False
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(event, dict) or "sequence" not in event:
            continue
        any_event = True
        diag = event.get("diagnosticEvent")
        if isinstance(diag, dict) and diag.get("severity") == "error" and not diag.get("ephemeral"):
            found.append(Diagnostic(_label(diag.get("urn")), condense(str(diag.get("message", "")))))
    return found if any_event else None


def _from_digest(text: str) -> Optional[list[Diagnostic]]:
    start = text.find("{")
    if start < 0:
        return None
    try:
        digest, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    if not isinstance(digest, dict) or not isinstance(digest.get("diagnostics", []), list):
        return None
    if "diagnostics" not in digest and "steps" not in digest:
        return None
    return [Diagnostic(_label(d.get("urn")), condense(_SEVERITY.sub("", str(d.get("message", "")))))
            for d in digest.get("diagnostics", []) if isinstance(d, dict) and d.get("severity") == "error"]


def _section(text: str) -> Iterator[tuple[Optional[str], list[str]]]:
    """The Diagnostics section's resources and their indented lines."""
    lines = _ANSI.sub("", text).splitlines()
    try:
        start = max(i for i, line in enumerate(lines) if line.rstrip() == "Diagnostics:")
    except ValueError:
        return
    resource, body = None, []
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith(" "):  # "Resources:", "Outputs:", "Duration:": the section ended
            break
        header = _HEADER.match(line.rstrip())
        if header:
            if body:
                yield resource, body
            resource, body = header.group(1), []
        else:
            body.append(line[4:] if line.startswith("    ") else line.strip())
    if body:
        yield resource, body


def _from_section(text: str) -> list[Diagnostic]:
    found = []
    for resource, body in _section(text):
        message: Optional[list[str]] = None
        for line in body + [""]:
            severity = _SEVERITY.match(line)
            if severity or not line.strip() and message is not None:
                if message:
                    found.append(Diagnostic(resource, condense("\n".join(message))))
                message = [line[severity.end():]] if severity and severity.group(1).lower() == "error" else None
            elif message is not None:
                message.append(line)
    return found


def _from_cli_lines(text: str) -> list[Diagnostic]:
    return [Diagnostic(None, line.strip()[len("error: "):]) for line in _ANSI.sub("", text).splitlines()
            if line.strip().startswith("error: ")]


def diagnostics(output: str) -> list[Diagnostic]:
    """The error diagnostics in a pulumi command's output (stdout and stderr together), first to last."""
    for source in (_from_events, _from_digest):
        found = source(output)
        if found is not None:
            return found + [d for d in _from_cli_lines(_outside_json(output)) if d not in found]
    return _from_section(output) or _from_cli_lines(output)


def _outside_json(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("{", "}", '"', "[", "]")))


def program_error(output: str, secrets: Iterable[str] = (), limit: int = LIMIT) -> Optional[str]:
    """The errors the program (or a provider) reported, in one line, secrets masked: None if none was."""
    found = [d for d in diagnostics(output) if d.message]
    specific = [d for d in found if not d.message.rstrip(": 0123456789").endswith(GENERIC)
                and not any(d.message.startswith(g) for g in GENERIC)]
    chosen = specific or found
    if not chosen:
        return None
    unique = list(dict.fromkeys(d.line() for d in chosen))
    return printable(redact("; ".join(unique), {s for s in secrets if s}), limit)
