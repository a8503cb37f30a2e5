"""Durations as monitor.yml writes them ("500ms", "30s", "5m", "1h", "2d", or seconds) and back.

Pure functions: `parse_duration` reads one into seconds, `format_duration` writes seconds the
way the docs and the `--check-config` summary show them.
"""

from __future__ import annotations

import re
from typing import Any

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
EXAMPLES = "e.g. 30s, 5m, 1h"
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)")


def parse_duration(value: Any) -> float | None:
    """`value` in seconds; None when it is no duration (a negative one included).

    A bare number is seconds; a string is a number and one unit of ms, s, m, h or d.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        return None
    number, unit = match.groups()
    return float(number) * UNITS[unit]


def format_duration(seconds: float) -> str:
    """The largest unit that writes `seconds` as a whole number: 30s, 5m, 1h, 400d, 500ms."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        size = UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    milliseconds = seconds * 1000
    if milliseconds.is_integer():
        return f"{int(milliseconds)}ms"
    return f"{seconds:g}s"
