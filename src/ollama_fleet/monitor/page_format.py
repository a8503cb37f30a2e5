"""Numbers and times as the status page shows them to a person: 12 min ago, 340 ms, 1.2 GiB."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from .status_facts import iso_utc, markup

_UNITS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0))


def span(seconds: float) -> str:
    """A duration in its largest whole unit: 45 s, 12 min, 3 h, 2 d."""
    seconds = abs(seconds) if math.isfinite(seconds) else 0.0
    for unit, size in _UNITS:
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return "0 s"


def ago(at: float, *, now: float) -> str:
    """When `at` was, seen from `now`: just now, 45 s ago, 3 h ago (in 2 min for a later clock)."""
    delta = now - at
    if abs(delta) < 1:
        return "just now"
    return f"{span(delta)} ago" if delta > 0 else f"in {span(delta)}"


def clock(at: float, *, with_date: bool = True) -> str:
    """Unix seconds as a UTC wall-clock time: 2025-01-01 12:00 UTC (or 12:00 UTC)."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC" if with_date else "%H:%M UTC")


def milliseconds(value: float) -> str:
    """A latency: 3.4 ms, 120 ms, 1500 ms (charts and checks speak ms throughout)."""
    if not math.isfinite(value) or value < 0:
        return "–"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def size(n_bytes: int) -> str:
    """Bytes in binary units: 512 MiB, 1.2 GiB."""
    value = float(max(n_bytes, 0))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def days_left(days: float) -> str:
    """A certificate's remaining validity: 42 days left, 1 day left, expired 3 days ago."""
    if days < 0:
        n = math.ceil(-days)
        return f"expired {n} day{'s' if n != 1 else ''} ago"
    n = math.floor(days)
    return f"{n} day{'s' if n != 1 else ''} left"


def time_tag(at: float, *, now: float) -> str:
    """A relative time a person reads at a glance, the exact one on hover and in datetime."""
    return f'<time datetime="{iso_utc(at)}" title="{clock(at)}">{markup(ago(at, now=now))}</time>'
