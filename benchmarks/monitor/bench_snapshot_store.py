"""Benchmark: what the status page asks the store, series by series vs for the whole fleet.

Fills a store in a temporary directory with TARGETS x 6 checks x HOURS of samples at the
default intervals (connectivity 30 s, models 60 s, chat, auth and exposure 5 min, tls 1 h),
then times, in the same run, the two ways of getting what one snapshot shows: uptime per
window, 48 half-hour bars of the last 24 h, and the last 6 h of response and first-token
times for the charts.

- per series: what the status page did before, a query per (target, check) and the rows
  turned into Sample objects, the maths in Python (uptime.uptime / uptime.bars);
- bulk: Store.uptime_all, Store.bars_all and Store.series_all (thinned to 120 points).

    .venv/bin/python benchmarks/monitor/bench_snapshot_store.py [--targets 300] [--hours 48]
        [--rounds 3] [--rollup-days 0]

--rollup-days adds that many days of hour roll-ups before the raw samples (a store that
has run for a month), which is what the 7 d and 30 d windows read.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.model import UPTIME_WINDOWS, Sample
from ollama_fleet.monitor.settings import DEFAULT_INTERVALS
from ollama_fleet.monitor.store import Store
from ollama_fleet.monitor.uptime import HOUR_S, STATUS_BY_RANK, Tally, bars, day_start, uptime

NOW = 1_750_000_000.0
BARS, BARS_SPAN_S, CHART_SPAN_S, CHART_POINTS = 48, 24 * 3600.0, 6 * 3600.0, 120
STATUSES = (Status.OK,) * 18 + (Status.WARN, Status.FAIL)
GOAL_RATIO = 10.0


def fill(store: Store, *, targets: int, hours: float, rollup_days: int) -> int:
    """Samples at the default intervals, jittered; returns how many."""
    rng = random.Random(9)
    count = 0
    for index in range(targets):
        name = f"gpu-{index:03d}"
        batch = []
        for check, interval in DEFAULT_INTERVALS.items():
            at = NOW - hours * 3600 + rng.uniform(0, interval)
            while at <= NOW:
                batch.append(
                    Sample(
                        target=name,
                        check=check,
                        at=at,
                        status=rng.choice(STATUSES),
                        elapsed_ms=rng.uniform(5, 900),
                        first_token_ms=rng.uniform(50, 400) if check == "chat" else None,
                    )
                )
                at += interval
        store.add_samples(batch)
        count += len(batch)
    if rollup_days:
        _old_hours(store, hours=hours, days=rollup_days)
    return count


def _old_hours(store: Store, *, hours: float, days: int) -> None:
    # straight into the roll-ups: raw samples that old would have been pruned long ago
    db = store._db
    first = int((NOW - hours * 3600) // HOUR_S) * HOUR_S
    ids = [series for (series,) in db.execute("SELECT id FROM series")]
    db.execute("BEGIN")
    old = [(series, first - h * HOUR_S) for series in ids for h in range(1, days * 24 + 1)]
    db.executemany("INSERT OR IGNORE INTO rollups VALUES (?, ?, 12, 11, 2)", old)
    db.executemany(
        "INSERT INTO days VALUES (?, ?, 12, 11) ON CONFLICT DO UPDATE"
        " SET total = total + 12, up = up + 11",
        [(series, day_start(hour)) for series, hour in old],
    )
    db.execute("COMMIT")


def per_series(store: Store, keys: list[tuple[str, str]]) -> int:
    """The status page's old way: raw samples and hours per series, the maths in Python."""
    (shortest, shortest_s), *longer = UPTIME_WINDOWS
    oldest = max(seconds for _, seconds in longer)
    seen = 0
    for target, check in keys:
        shares = uptime(store.samples(target, check, NOW - shortest_s), now=NOW,
                        windows=[(shortest, shortest_s)])  # fmt: skip
        shares |= uptime(_hours(store, target, check, NOW - oldest), now=NOW, windows=longer)
        raw = store.samples(target, check, NOW - BARS_SPAN_S)
        seen += len(bars(raw, now=NOW, span_s=BARS_SPAN_S, count=BARS)) + len(shares)
    for target in sorted({target for target, _ in keys}):
        since = NOW - CHART_SPAN_S
        response = [(s.at, s.elapsed_ms) for s in store.samples(target, "connectivity", since)]
        first = [
            (s.at, s.first_token_ms)
            for s in store.samples(target, "chat", since)
            if s.first_token_ms is not None
        ]
        seen += len(response[:: max(1, len(response) // CHART_POINTS)]) + len(first)
    return seen


def _hours(store: Store, target: str, check: str, after: float) -> list[Tally]:
    rows = store._db.execute(
        "SELECT hour, total, up, worst FROM rollups JOIN series ON series.id = rollups.series"
        " WHERE target = ? AND check_name = ? AND hour > ? AND hour <= ? ORDER BY hour",
        (target, check, after, NOW),
    )
    return [Tally(at=float(h), total=t, up=u, worst=STATUS_BY_RANK[w]) for h, t, u, w in rows]


def bulk(store: Store, keys: list[tuple[str, str]]) -> int:
    """The whole fleet in a few statements."""
    shares = store.uptime_all(NOW)
    bars_all = store.bars_all(NOW, BARS_SPAN_S, BARS)
    since = NOW - CHART_SPAN_S
    series = [
        store.series_all(check, since, field, until=NOW, max_points=CHART_POINTS)
        for check, field in (("connectivity", "elapsed_ms"), ("chat", "first_token_ms"))
    ]
    return len(shares) + len(bars_all) + sum(len(points) for s in series for points in s.values())


def timed(run: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--hours", type=float, default=48.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rollup-days", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp)) as store:
        started = time.perf_counter()
        samples = fill(store, targets=args.targets, hours=args.hours, rollup_days=args.rollup_days)
        filled = time.perf_counter() - started
        keys = [(f"gpu-{i:03d}", check) for i in range(args.targets) for check in DEFAULT_INTERVALS]
        print(f"store: {len(keys)} series, {samples} samples over {args.hours:g} h"
              f" (+{args.rollup_days} d of hours), filled in {filled:.1f} s")  # fmt: skip
        old = timed(lambda: per_series(store, keys), max(1, args.rounds // 2))
        new = timed(lambda: bulk(store, keys), args.rounds)
    ratio = old / new if new else float("inf")
    print(f"per series: {old:.3f} s per snapshot")
    print(f"bulk:       {new:.3f} s per snapshot")
    print(f"ratio:      {ratio:.1f}x faster (goal {GOAL_RATIO:g}x)")
    return 0 if ratio >= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
