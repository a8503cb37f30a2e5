"""Timing bars: which timings count, how the phases stack, how bars of one check compare."""

from __future__ import annotations

from typing import Any

import pytest

from ollama_fleet.checks.reports._timing import Timings, scales, timing_bar, timings_of


def _phases(timings: Timings, scale_ms: float = 0.0) -> list[tuple[str, float, float]]:
    bar = timing_bar(timings, scale_ms=scale_ms)
    return [(s.phase, s.ms, s.percent) for s in bar.segments]


def test_phases_stack_end_to_end() -> None:
    timings = timings_of(
        {
            "timings": {
                "connect_ms": 10.0,
                "tls_ms": 20.0,
                "first_byte_ms": 50.0,
                "first_token_ms": 150.0,
                "total_ms": 200.0,
            }
        }
    )
    assert timings is not None
    # connect and TLS are how long each took; first byte and first token are times since the
    # start, so their segments are the waits after the phase before
    assert _phases(timings) == [
        ("connect", 10.0, 5.0),
        ("tls", 20.0, 10.0),
        ("first-byte", 20.0, 10.0),
        ("first-token", 100.0, 50.0),
        ("rest", 50.0, 25.0),
    ]
    bar = timing_bar(timings, scale_ms=400.0)
    assert [s.percent for s in bar.segments] == [2.5, 5.0, 5.0, 25.0, 12.5]
    assert [(s.label, s.value) for s in bar.legend] == [
        ("connect", "10.0 ms"),
        ("TLS", "20.0 ms"),
        ("first byte", "50.0 ms"),
        ("first token", "150.0 ms"),
    ]
    assert bar.summary == (
        "connect 10.0 ms, TLS 20.0 ms, first byte 50.0 ms, first token 150.0 ms, total 200.0 ms"
    )
    assert bar.segments[3].title == "first streamed token at 150.0 ms (waited 100.0 ms)"


def test_the_chat_probes_top_level_first_token_counts() -> None:
    assert timings_of({"first_token_ms": 420, "model": "m"}) == Timings(first_token_ms=420.0)
    # the timings block wins over the top level
    both = {"first_token_ms": 1.0, "timings": {"first_token_ms": 2.0, "total_ms": 3.0}}
    assert timings_of(both) == Timings(first_token_ms=2.0, total_ms=3.0)
    # a block that has no first token of its own keeps the top-level one
    empty = {"first_token_ms": 7.0, "timings": {"first_token_ms": None, "connect_ms": 1.0}}
    assert timings_of(empty) == Timings(connect_ms=1.0, first_token_ms=7.0)


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"timings": None},
        {"timings": "fast"},
        {"timings": {"total_ms": 95.0}},  # no phase measured: no bar
        {"timings": {"connect_ms": None, "tls_ms": None, "first_byte_ms": None}},
        {"timings": {"connect_ms": True, "tls_ms": "30", "first_byte_ms": -1.0}},
        {"timings": {"connect_ms": float("nan"), "first_byte_ms": float("inf")}},
        {"first_token_ms": None},
    ],
)
def test_no_bar_without_a_measured_phase(details: dict[str, Any]) -> None:
    assert timings_of(details) is None


def test_a_reused_connection_has_no_connect_or_tls() -> None:
    timings = timings_of(
        {"timings": {"connect_ms": None, "tls_ms": None, "first_byte_ms": 8.0, "total_ms": 9.0}}
    )
    assert timings is not None
    assert _phases(timings) == [("first-byte", 8.0, 88.89), ("rest", 1.0, 11.11)]
    assert [s.label for s in timing_bar(timings, scale_ms=0).legend] == ["first byte"]


def test_a_milestone_inside_an_earlier_phase_takes_no_room() -> None:
    # first byte reported before connect + TLS ended (clock skew between the measures)
    timings = Timings(connect_ms=10.0, tls_ms=10.0, first_byte_ms=15.0)
    assert _phases(timings) == [("connect", 10.0, 50.0), ("tls", 10.0, 50.0)]
    # but the legend still says when the first byte came
    legend = timing_bar(timings, scale_ms=0).legend
    assert [(s.label, s.value) for s in legend][-1] == ("first byte", "15.0 ms")


def test_bars_of_one_check_share_the_widest_scale() -> None:
    fast = Timings(connect_ms=5.0, first_byte_ms=10.0, total_ms=20.0)
    slow = Timings(connect_ms=50.0, first_byte_ms=100.0, total_ms=200.0)
    chat = Timings(first_token_ms=900.0)
    widest = scales([("connectivity", fast), ("connectivity", slow), ("chat", chat)])
    assert widest == {"connectivity": 200.0, "chat": 900.0}
    assert sum(s.percent for s in timing_bar(fast, scale_ms=widest["connectivity"]).segments) == 10
    assert sum(s.percent for s in timing_bar(slow, scale_ms=widest["connectivity"]).segments) == 100
