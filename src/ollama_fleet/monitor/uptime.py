"""Uptime and uptime bars from samples or hourly counts: pure arithmetic, no I/O.

Windows and buckets are half-open on the left: a window of `w` seconds ending at `now`
holds what happened in (now - w, now], so a sample exactly on a boundary belongs to the
older bucket, and one exactly at `now` to the newest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.model import UPTIME_WINDOWS, Sample

STATUS_BY_RANK: Mapping[int, Status] = {status.rank: status for status in Status}


@dataclass(frozen=True, slots=True, kw_only=True)
class Tally:
    """Results counted at one moment: one sample, or an hour of them rolled up.

    `up` counts results that were not fail (a warn is up); `worst` is the worst status.
    """

    at: float
    total: int
    up: int
    worst: Status

    @classmethod
    def of(cls, sample: Sample) -> Tally:
        return cls(at=sample.at, total=1, up=int(sample.up), worst=sample.status)


def uptime(
    items: Iterable[Sample | Tally],
    *,
    now: float,
    windows: Iterable[tuple[str, float]] = UPTIME_WINDOWS,
) -> dict[str, float | None]:
    """{window name: share of up results in (now - seconds, now]}; None with no result there."""
    tallies = [_tally(item) for item in items]
    shares: dict[str, float | None] = {}
    for name, seconds in windows:
        inside = [t for t in tallies if now - seconds < t.at <= now]
        total = sum(t.total for t in inside)
        shares[name] = sum(t.up for t in inside) / total if total else None
    return shares


def bars(
    items: Iterable[Sample | Tally], *, now: float, span_s: float, count: int
) -> tuple[Status | None, ...]:
    """The worst status in each of `count` equal buckets of (now - span_s, now], oldest first.

    A bucket with no result is None.
    """
    if count <= 0 or span_s <= 0:
        return ()
    width = span_s / count
    start = now - span_s
    worst: list[int | None] = [None] * count
    for item in items:
        tally = _tally(item)
        if not start < tally.at <= now:
            continue
        # (start + i*width, start + (i+1)*width] is bucket i: ceil puts a boundary sample
        # into the older bucket
        index = min(count - 1, max(0, math.ceil((tally.at - start) / width) - 1))
        rank = tally.worst.rank
        current = worst[index]
        if current is None or rank > current:
            worst[index] = rank
    return tuple(None if rank is None else STATUS_BY_RANK[rank] for rank in worst)


def _tally(item: Sample | Tally) -> Tally:
    return item if isinstance(item, Tally) else Tally.of(item)
