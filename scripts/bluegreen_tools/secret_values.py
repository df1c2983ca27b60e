"""Values the program marked secret, as the offline engine gives them: kept apart so they print as [secret]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SECRET_PLACEHOLDER = "[secret]"


@dataclass(frozen=True)
class SecretValue:
    """A value the program marked secret; it prints as [secret]."""

    value: Any

    def __repr__(self) -> str:
        return SECRET_PLACEHOLDER

    __str__ = __repr__


def reveal(value: Any) -> Any:
    """The plain data inside SecretValues (for checks that need the values themselves)."""
    if isinstance(value, SecretValue):
        return reveal(value.value)
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def mask(value: Any, secret: bool = False) -> Any:
    """The same data, keys sorted, with every leaf inside a secret as the placeholder.

    The shape stays (a Secret's keys remain visible), so a masked manifest is still a valid object.
    """
    if isinstance(value, SecretValue):
        return mask(value.value, True)
    if isinstance(value, dict):
        return {k: mask(value[k], secret) for k in sorted(value)}
    if isinstance(value, list):
        return [mask(v, secret) for v in value]
    return SECRET_PLACEHOLDER if secret else value
