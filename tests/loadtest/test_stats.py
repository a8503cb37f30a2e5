"""The load test's maths: nearest-rank percentiles, distributions, error groups, the summary."""

from __future__ import annotations

import math

import pytest

from ollama_fleet.checks.model import FailureClass, fail
from ollama_fleet.loadtest.model import LoadRun, LoadSettings, RequestOutcome
from ollama_fleet.loadtest.stats import distribution, error_groups, percentile, summarize

TEN = [float(v) for v in range(10, 110, 10)]  # 10, 20, ... 100


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0, 10.0),
        (10, 10.0),
        (11, 20.0),
        (50, 50.0),
        (51, 60.0),
        (90, 90.0),
        (95, 100.0),
        (100, 100.0),
    ],
)
def test_nearest_rank_on_ten_values(p: float, expected: float) -> None:
    assert percentile(TEN, p) == expected


def test_the_order_of_the_values_does_not_matter() -> None:
    assert percentile(list(reversed(TEN)), 50) == 50.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_a_percentile_is_always_a_measured_value() -> None:
    values = [1.0, 1000.0]
    assert percentile(values, 50) == 1.0  # not 500.5: nothing took 500 ms
    assert percentile(values, 51) == 1000.0


def test_p99_of_a_hundred_values_is_the_99th() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 95), percentile(values, 99), percentile(values, 100)) == (
        95,
        99,
        100,
    )


def test_one_value_is_every_percentile() -> None:
    assert {percentile([7.0], p) for p in (0, 50, 99, 100)} == {7.0}


@pytest.mark.parametrize("p", [-1, 101])
def test_a_percentile_outside_0_100_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="outside 0..100"):
        percentile(TEN, p)


def test_no_values_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_distribution() -> None:
    d = distribution(TEN)
    assert (d.count, d.mean, d.p50, d.p95, d.p99, d.max) == (10, 55.0, 50.0, 100.0, 100.0, 100.0)


def test_an_empty_distribution_has_no_numbers() -> None:
    d = distribution([math.nan, math.inf])
    assert (d.count, d.mean, d.p50, d.max) == (0, None, None, None)


def _ok(index: int, latency: float, tokens: int, ttft: float | None = None) -> RequestOutcome:
    return RequestOutcome(index=index, latency_ms=latency, first_token_ms=ttft, tokens=tokens)


def _failed(index: int, klass: FailureClass, message: str) -> RequestOutcome:
    return RequestOutcome(index=index, latency_ms=1.0, failure=fail(klass, message))


def test_error_groups_count_by_class_most_frequent_first() -> None:
    outcomes = [
        _ok(0, 100, 10),
        _failed(1, FailureClass.SERVER_ERROR, "first 500"),
        _failed(2, FailureClass.OVERLOAD, "first 503"),
        _failed(3, FailureClass.OVERLOAD, "second 503"),
    ]
    groups = error_groups(outcomes)

    assert [(g.failure_class, g.count, g.example) for g in groups] == [
        (FailureClass.OVERLOAD, 2, "first 503"),
        (FailureClass.SERVER_ERROR, 1, "first 500"),
    ]
    assert "sheds load" in groups[0].hint


def _run(*outcomes: RequestOutcome, wall_ms: float = 2000.0) -> LoadRun:
    settings = LoadSettings(url="http://x", model="m", requests=len(outcomes))
    return LoadRun(settings=settings, started_at="t", wall_ms=wall_ms, outcomes=outcomes)


def test_summary_of_a_mixed_run() -> None:
    run = _run(
        _ok(0, 100.0, 10, ttft=20.0),
        _ok(1, 200.0, 10, ttft=40.0),
        _ok(2, 400.0, 20, ttft=60.0),
        _failed(3, FailureClass.OVERLOAD, "503"),
    )
    s = summarize(run)

    assert (s.requests, s.ok, s.failed) == (4, 3, 1)
    # times and rates over the successful requests only
    assert (s.latency_ms.p50, s.latency_ms.max, s.latency_ms.count) == (200.0, 400.0, 3)
    assert (s.first_token_ms.p50, s.first_token_ms.p99) == (40.0, 60.0)
    # per request: 10 / 0.1 s, 10 / 0.2 s, 20 / 0.4 s
    assert (s.tokens_per_s.p50, s.tokens_per_s.mean) == (50.0, (100 + 50 + 50) / 3)
    assert s.total_tokens == 40
    assert s.total_tokens_per_s == 20.0  # 40 tokens over 2 s of wall time
    assert s.throughput_rps == 1.5  # 3 successful requests over 2 s
    assert not s.unreachable


def test_only_refusals_is_unreachable() -> None:
    s = summarize(_run(*(_failed(i, FailureClass.REFUSED, "refused") for i in range(3))))
    assert s.unreachable
    assert (s.throughput_rps, s.total_tokens_per_s, s.latency_ms.p50) == (None, None, None)


def test_one_answer_is_not_unreachable() -> None:
    mixed = _run(
        _failed(0, FailureClass.REFUSED, "refused"), _failed(1, FailureClass.OVERLOAD, "x")
    )
    assert not summarize(mixed).unreachable
    assert not summarize(_run(_ok(0, 1.0, 1), _failed(1, FailureClass.REFUSED, "r"))).unreachable


def test_tokens_per_s_of_a_request() -> None:
    assert _ok(0, 250.0, 10).tokens_per_s == 40.0
    assert RequestOutcome(index=0, latency_ms=5.0).tokens_per_s is None
