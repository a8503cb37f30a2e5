"""Probe details as a small tree of display nodes (key/value tables, chips, bars) for HTML."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._common import html_safe

__all__ = ["Node", "details_node", "number"]


@dataclass(frozen=True, slots=True)
class Bar:
    """One timing of a timings block: label, formatted value, bar length in percent."""

    label: str
    text: str
    percent: float


@dataclass(frozen=True, slots=True)
class Node:
    """A details value ready for display.

    kind is one of: text (a scalar), map (key/value table), chips (a list of short scalars),
    list (a list of anything), table (a list of flat records), bars (a timings block).
    """

    kind: str
    text: str = ""
    muted: bool = False
    items: tuple[tuple[str, Node], ...] = ()
    elements: tuple[Node, ...] = ()
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Node, ...], ...] = ()
    bars: tuple[Bar, ...] = ()


_NONE = Node(kind="text", text="—", muted=True)


def _bytes(n: float) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def number(value: int | float, key: str) -> str:
    """A number for display, by what its key says it is: `*_ms` as ms, `*_bytes` humanised."""
    if key.endswith("_ms"):
        return f"{value:,.1f} ms" if isinstance(value, float) else f"{value:,} ms"
    if key.endswith("_bytes") or key in ("size", "bytes"):
        return f"{_bytes(value)} ({value:,} B)" if abs(value) >= 1024 else f"{value:,} B"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def _scalar(value: Any, key: str) -> Node:
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return Node(kind="text", text="yes" if value else "no")
    if isinstance(value, int | float):
        return Node(kind="text", text=number(value, key))
    return Node(kind="text", text=html_safe(str(value)))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _timings(value: Mapping[str, Any]) -> Node | None:
    """A mapping of *_ms numbers (connect_ms, tls_ms, ...) as a bar chart, else None."""
    if len(value) < 2 or not all(
        k.endswith("_ms") and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        return None
    longest = max((float(v) for v in value.values()), default=0.0)
    bars = tuple(
        Bar(
            label=html_safe(k.removesuffix("_ms").replace("_", " ")),
            text=number(v, k),
            percent=round(100 * max(float(v), 0.0) / longest, 1) if longest > 0 else 0.0,
        )
        for k, v in value.items()
    )
    return Node(kind="bars", bars=bars)


def details_node(value: Any, key: str = "") -> Node:
    """The display tree of a JSON-ready details value; `key` says how to format a number."""
    if _is_scalar(value):
        return _scalar(value, key)
    if isinstance(value, Mapping):
        if not value:
            return _NONE
        return _timings(value) or Node(
            kind="map",
            items=tuple((html_safe(k), details_node(v, k)) for k, v in value.items()),
        )
    if isinstance(value, Sequence):
        if not value:
            return Node(kind="text", text="none", muted=True)
        if all(_is_scalar(v) for v in value):
            return Node(kind="chips", elements=tuple(_scalar(v, key) for v in value))
        if all(isinstance(v, Mapping) and all(_is_scalar(x) for x in v.values()) for v in value):
            columns = tuple(dict.fromkeys(k for v in value for k in v))
            rows = tuple(tuple(_scalar(v.get(c), c) for c in columns) for v in value)
            return Node(kind="table", columns=tuple(html_safe(c) for c in columns), rows=rows)
        return Node(kind="list", elements=tuple(details_node(v, key) for v in value))
    return Node(kind="text", text=html_safe(str(value)))
