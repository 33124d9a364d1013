"""Durations written the way people write them: ``"30s"``, ``"15m"``, ``"1h"``, ``"7d"``,
``"2w"``."""

from __future__ import annotations

import re

from vigil._errors import DefinitionError

_UNITS_US = {
    "s": 1_000_000,
    "m": 60 * 1_000_000,
    "h": 3_600 * 1_000_000,
    "d": 86_400 * 1_000_000,
    "w": 7 * 86_400 * 1_000_000,
}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> int:
    """Microseconds in a duration such as ``"90m"``; raises :class:`~vigil.DefinitionError`.

    >>> parse_duration("1h")
    3600000000
    >>> parse_duration("7d") == 7 * 86_400 * 10**6
    True
    """
    if not isinstance(text, str):
        raise DefinitionError(f"window {text!r} is not a duration; use e.g. '15m', '1h', '7d'")
    match = _PATTERN.match(text)
    if not match:
        raise DefinitionError(
            f"window '{text}' is not a duration; use a whole number and a unit among "
            "s, m, h, d, w, e.g. '15m', '1h', '7d'"
        )
    value = int(match.group(1))
    if value <= 0:
        raise DefinitionError(f"window '{text}' must be longer than zero")
    return value * _UNITS_US[match.group(2)]


def canonical_duration(text: str) -> str:
    """The duration as it appears in feature names: ``" 24 h"`` becomes ``"24h"``."""
    parse_duration(text)
    match = _PATTERN.match(text)
    assert match is not None
    return f"{int(match.group(1))}{match.group(2)}"
