"""Timing bars: a check's connect, TLS, first byte and first token as one stacked bar.

The probes record `details["timings"]` = {connect_ms, tls_ms, first_byte_ms, first_token_ms,
total_ms} (any of them None or absent); the chat probe used to record `first_token_ms` at the
top level of its details, which counts too. connect_ms and tls_ms are how long each phase
took; first_byte_ms, first_token_ms and total_ms are times since the request started. The bar
lays them end to end: connect, then TLS, then the wait for the first byte, then for the first
token, then the rest up to the total.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Segment", "TimingBar", "Timings", "format_ms", "scales", "timing_bar", "timings_of"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timings:
    """What a check measured, in ms; None where it was not measured."""

    connect_ms: float | None = None
    tls_ms: float | None = None
    first_byte_ms: float | None = None
    first_token_ms: float | None = None
    total_ms: float | None = None

    @property
    def end_ms(self) -> float:
        """Where the bar ends: the total, or the last milestone when there is no total."""
        spans = (self.connect_ms or 0.0) + (self.tls_ms or 0.0)
        marks = (self.first_byte_ms, self.first_token_ms, self.total_ms)
        return max([spans, *(m for m in marks if m is not None)])


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One phase of the bar: `phase` (connect, tls, first-byte, first-token, rest) for CSS."""

    phase: str
    label: str
    value: str  # what the legend shows, e.g. "12.4 ms"
    title: str  # the tooltip, saying what the number measures
    ms: float  # how long the phase took
    percent: float  # its width, in percent of the widest bar of the same check


@dataclass(frozen=True, slots=True, kw_only=True)
class TimingBar:
    """The segments of one check's bar, and the legend entries (phases that were measured)."""

    segments: tuple[Segment, ...]
    legend: tuple[Segment, ...]
    total: str | None
    summary: str  # the whole bar in words, for screen readers and for text


def _ms(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def timings_of(details: Mapping[str, Any]) -> Timings | None:
    """The timings recorded in a check's details, or None if it measured no phase at all."""
    raw = details.get("timings")
    block: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    first_token = block.get("first_token_ms")
    if first_token is None:  # absent, or None in the block while the top level has it
        first_token = details.get("first_token_ms")
    timings = Timings(
        connect_ms=_ms(block.get("connect_ms")),
        tls_ms=_ms(block.get("tls_ms")),
        first_byte_ms=_ms(block.get("first_byte_ms")),
        first_token_ms=_ms(first_token),
        total_ms=_ms(block.get("total_ms")),
    )
    phases = (timings.connect_ms, timings.tls_ms, timings.first_byte_ms, timings.first_token_ms)
    return None if all(p is None for p in phases) else timings


def format_ms(ms: float) -> str:
    """`12.4 ms`, `1,210.5 ms`."""
    return f"{ms:,.1f} ms"


def timing_bar(timings: Timings, *, scale_ms: float) -> TimingBar:
    """The stacked bar of `timings`, its widths relative to `scale_ms` (the widest bar)."""
    scale = max(scale_ms, timings.end_ms)
    segments: list[Segment] = []
    legend: list[Segment] = []
    at = 0.0

    def add(phase: str, label: str, ms: float, value: float, title: str) -> None:
        segment = Segment(
            phase=phase,
            label=label,
            value=format_ms(value),
            title=title,
            ms=round(ms, 2),
            percent=round(100 * ms / scale, 2) if scale > 0 else 0.0,
        )
        if phase != "rest":
            legend.append(segment)
        if ms > 0:
            segments.append(segment)

    if timings.connect_ms is not None:
        add("connect", "connect", timings.connect_ms, timings.connect_ms, "TCP connect")
        at += timings.connect_ms
    if timings.tls_ms is not None:
        add("tls", "TLS", timings.tls_ms, timings.tls_ms, "TLS handshake")
        at += timings.tls_ms
    for phase, label, mark, what in (
        ("first-byte", "first byte", timings.first_byte_ms, "first byte of the answer"),
        ("first-token", "first token", timings.first_token_ms, "first streamed token"),
    ):
        if mark is not None:
            wait = max(mark - at, 0.0)
            add(phase, label, wait, mark, f"{what} at {format_ms(mark)} (waited {format_ms(wait)})")
            at = max(at, mark)
    if timings.total_ms is not None and timings.total_ms > at:
        rest = timings.total_ms - at
        add(
            "rest", "rest", rest, timings.total_ms, f"the rest, up to {format_ms(timings.total_ms)}"
        )
    total = None if timings.total_ms is None else format_ms(timings.total_ms)
    words = [f"{s.label} {s.value}" for s in legend] + ([f"total {total}"] if total else [])
    return TimingBar(
        segments=tuple(segments), legend=tuple(legend), total=total, summary=", ".join(words)
    )


def scales(pairs: Iterable[tuple[str, Timings]]) -> dict[str, float]:
    """The widest bar per check name, so bars of the same check compare across hosts."""
    widest: dict[str, float] = {}
    for check, timings in pairs:
        widest[check] = max(widest.get(check, 0.0), timings.end_ms)
    return widest
