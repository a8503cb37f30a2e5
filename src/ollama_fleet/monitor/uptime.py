"""Uptime, uptime bars and chart series: the maths, as SQL for the store and as pure Python.

Windows and buckets are half-open on the left: a window of `w` seconds ending at `now`
holds what happened in (now - w, now], so a sample exactly on a boundary belongs to the
older bucket, and one exactly at `now` to the newest.

The store asks each question once for the whole fleet: the statements here group by series
in SQL and return a row per series (or per series and bar), never a row per sample. The
pure functions say the same in Python; the tests hold the two together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.model import UPTIME_WINDOWS, Sample

STATUS_BY_RANK: Mapping[int, Status] = {status.rank: status for status in Status}
HOUR_S = 3600
DAY_S = 86400
# The bars' roll-up: ten minutes of a series in one row. A bar counts each ten minutes at
# their end (the ten minutes running now at `now`), so a result shows at most this late.
SLOT_S = 600
SERIES_FIELDS = ("elapsed_ms", "first_token_ms", "tokens_per_s")
FAIL_RANK = Status.FAIL.rank
Key = tuple[str, str]  # (target, check)

# Series first, then each one's samples through samples_by_series: CROSS JOIN keeps SQLite
# from reading every check's samples by time and throwing most of them away.
_SAMPLES_OF_SERIES = "FROM series s CROSS JOIN samples ON samples.series = s.id"


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


def hour_start(at: float) -> int:
    """The hour roll-up `at` counts into, by its start (Unix seconds)."""
    return int(at // HOUR_S) * HOUR_S


def slot_end(at: float) -> int:
    """The ten-minute roll-up `at` counts into, by its end: (end - SLOT_S, end]."""
    return math.ceil(at / SLOT_S) * SLOT_S


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


# -- the same questions as SQL over the whole fleet ------------------------------------------


def raw_uptime_query(
    now: float, seconds: float, series: int | None = None
) -> tuple[str, tuple[object, ...]]:
    """(series id, total, up) per series from raw samples in (now - seconds, now]."""
    sql = (
        f"SELECT s.id, count(*), sum(samples.status < ?) {_SAMPLES_OF_SERIES}"
        " WHERE samples.at > ? AND samples.at <= ?"
        + ("" if series is None else " AND s.id = ?")
        + " GROUP BY s.id"
    )
    return sql, (FAIL_RANK, now - seconds, now, *_one(series))


def hourly_uptime_query(
    now: float, windows: Iterable[tuple[str, float]], series: int | None = None
) -> tuple[str, tuple[object, ...]]:
    """(window index, series id, total, up) per window and series, from the hour roll-ups.

    An hour counts into a window when its start lies inside it. A window reads the hours
    before the first day that starts inside it, then whole days: the same hours, summed.
    """
    parts: list[str] = []
    args: list[object] = []
    one = "" if series is None else " AND series = ?"
    for index, (_, seconds) in enumerate(windows):
        first_day = (math.floor((now - seconds) / DAY_S) + 1) * DAY_S
        parts.append(
            "SELECT ?, series, sum(total), sum(up) FROM rollups"
            f" WHERE hour > ? AND hour < ? AND hour <= ?{one} GROUP BY series"
        )
        args += [index, now - seconds, first_day, now, *_one(series)]
        parts.append(
            f"SELECT ?, series, sum(total), sum(up) FROM days WHERE day >= ? AND day <= ?{one}"
            " GROUP BY series"
        )
        args += [index, first_day, now, *_one(series)]
    return " UNION ALL ".join(parts), tuple(args)


def day_start(at: float) -> int:
    """The day roll-up (UTC) `at` counts into, by its start."""
    return int(at // DAY_S) * DAY_S


def bars_query(
    now: float, span_s: float, count: int, series: int | None = None
) -> tuple[str, tuple[object, ...]]:
    """(series id, bar index, worst rank) per series and bar, from the ten-minute slots.

    The same rule as `bars` over each slot counted at min(its end, now): the bucket index is
    ceil(x) - 1 of x = (at - start) / width, written without ceil (not every SQLite has it).
    """
    width, start = span_s / count, now - span_s
    x = "((min(slot, ?) - ?) / ?)"
    sql = (
        f"SELECT series, min(?, CAST({x} AS INTEGER) - (CAST({x} AS INTEGER) = {x})) AS bar,"
        " max(worst) FROM slots WHERE slot > ? AND slot < ?"
        + ("" if series is None else " AND series = ?")
        + " GROUP BY series, bar"
    )
    return sql, (count - 1, *(now, start, width) * 3, start, now + SLOT_S, *_one(series))


def series_query(
    check: str,
    since: float,
    field: str,
    *,
    until: float | None = None,
    max_points: int | None = None,
) -> tuple[str, tuple[object, ...]]:
    """(target, at, value) of `field` per target of `check`, oldest first, NULLs left out.

    With `max_points`, [since, until] is cut into that many slices and each keeps its
    highest point (SQLite gives the row of the max), so a spike is never thinned away.
    """
    if field not in SERIES_FIELDS:
        raise ValueError(f"unknown series field {field!r}; one of {', '.join(SERIES_FIELDS)}")
    if max_points is not None and (until is None or max_points < 1):
        raise ValueError("thinning to max_points needs until and max_points >= 1")
    where = f" WHERE s.check_name = ? AND samples.at >= ? AND samples.{field} IS NOT NULL"
    args: list[object] = [check, since]
    if until is not None:
        where += " AND samples.at <= ?"
        args.append(until)
    value, group = f"samples.{field}", ""
    if max_points is not None and until is not None:
        value = f"max({value})"
        group = " GROUP BY s.id, min(?, CAST((samples.at - ?) / ? AS INTEGER))"
        args += [max_points - 1, since, max(until - since, 1e-9) / max_points]
    sql = (
        f"SELECT s.target, samples.at, {value} {_SAMPLES_OF_SERIES}"
        + where
        + group
        + " ORDER BY s.id, samples.at"
    )
    return sql, tuple(args)


def _one(series: int | None) -> tuple[int, ...]:
    return () if series is None else (series,)


def _tally(item: Sample | Tally) -> Tally:
    return item if isinstance(item, Tally) else Tally.of(item)
