"""Every string of a diagnosis passed through the redactor, before any report renders it.

Reports escape text in their own ways (HTML entities, Markdown backslashes), which a
redactor run on the rendered text could miss; this runs on the records themselves, and the
CLI still runs the redactor over the rendered text as a backstop.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def redact_records(value: T, redact: Callable[[str], str]) -> T:
    """A copy of `value` (frozen dataclasses, tuples, lists, mappings, sets) with every
    string redacted; other values as they are."""
    return _walk(value, redact)  # type: ignore[no-any-return]


def _walk(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, enum.Enum):  # a StrEnum is a str: it stays the member it is
        return value
    if isinstance(value, str):
        return redact(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _walk(getattr(value, f.name), redact)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_walk(item, redact) for item in value)
    if isinstance(value, list):
        return [_walk(item, redact) for item in value]
    if isinstance(value, frozenset):
        return frozenset(_walk(item, redact) for item in value)
    if isinstance(value, Mapping):
        return {_walk(k, redact): _walk(v, redact) for k, v in value.items()}
    return value
