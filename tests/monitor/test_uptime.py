"""Uptime shares and uptime bars: exact values, empty windows and samples on boundaries."""

from __future__ import annotations

import pytest

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.model import Sample
from ollama_fleet.monitor.uptime import Tally, bars, hour_start, slot_end, uptime

NOW = 100_000.0
OK, WARN, FAIL = Status.OK, Status.WARN, Status.FAIL
WINDOWS = (("1m", 60.0), ("10m", 600.0))


def at(offset: float, status: Status) -> Sample:
    """A sample `offset` seconds before NOW."""
    return Sample(target="t", check="c", at=NOW - offset, status=status, elapsed_ms=1.0)


def test_shares_per_window_count_warn_as_up() -> None:
    samples = [at(10, OK), at(20, WARN), at(30, FAIL), at(40, OK), at(300, FAIL)]
    assert uptime(samples, now=NOW, windows=WINDOWS) == {"1m": 0.75, "10m": 0.6}


def test_no_samples_is_none_not_zero() -> None:
    assert uptime([], now=NOW, windows=WINDOWS) == {"1m": None, "10m": None}
    assert uptime([at(300, OK)], now=NOW, windows=WINDOWS) == {"1m": None, "10m": 1.0}


def test_window_boundaries_are_open_on_the_left() -> None:
    # exactly 60 s old: outside the 1 m window; exactly now: inside
    samples = [at(60, FAIL), at(0, OK)]
    assert uptime(samples, now=NOW, windows=WINDOWS) == {"1m": 1.0, "10m": 0.5}


def test_future_samples_do_not_count() -> None:
    assert uptime([at(-1, FAIL)], now=NOW, windows=WINDOWS) == {"1m": None, "10m": None}


def test_counts_and_samples_mix() -> None:
    hour = Tally(at=NOW - 300, total=9, up=6, worst=FAIL)
    assert uptime([hour, at(10, OK)], now=NOW, windows=WINDOWS) == {"1m": 1.0, "10m": 0.7}


def test_default_windows_are_the_status_pages() -> None:
    assert list(uptime([], now=NOW)) == ["1h", "24h", "7d", "30d"]


def test_bars_worst_per_bucket_oldest_first() -> None:
    samples = [at(55, OK), at(45, WARN), at(44, OK), at(25, FAIL), at(24, WARN), at(1, OK)]
    # six buckets of 10 s over (NOW-60, NOW]
    assert bars(samples, now=NOW, span_s=60, count=6) == (OK, WARN, None, FAIL, None, OK)


def test_bars_on_boundaries() -> None:
    samples = [at(60, FAIL), at(50, WARN), at(0, FAIL)]
    # 60 s old: outside; 50 s old: the end of the first bucket; now: the last bucket
    assert bars(samples, now=NOW, span_s=60, count=6) == (WARN, None, None, None, None, FAIL)


def test_bars_without_samples() -> None:
    assert bars([], now=NOW, span_s=60, count=3) == (None, None, None)


@pytest.mark.parametrize(("span_s", "count"), [(60, 0), (0, 5)])
def test_bars_degenerate(span_s: float, count: int) -> None:
    assert bars([at(1, OK)], now=NOW, span_s=span_s, count=count) == ()


def test_bars_take_a_tallys_worst() -> None:
    hour = Tally(at=NOW - 30, total=60, up=59, worst=FAIL)
    assert bars([hour, at(29, OK)], now=NOW, span_s=60, count=2) == (FAIL, OK)


def test_a_result_counts_into_the_five_minutes_that_end_at_or_after_it() -> None:
    assert [slot_end(at) for at in (0.5, 600.0, 600.001, 1199.9)] == [600, 600, 1200, 1200]
    assert [hour_start(at) for at in (3599.9, 3600.0)] == [0, 3600]
