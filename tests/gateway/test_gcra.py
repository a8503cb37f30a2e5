"""GCRA arithmetic with an injected clock: bursts, pacing, token costs, settling."""

from __future__ import annotations

import pytest

from ollama_fleet.gateway.gcra import Gcra

FRESH = 0.0  # any TAT at or before now is a full bucket


def test_rpm_60_lets_a_full_minute_through_at_once_then_paces() -> None:
    gcra = Gcra.per_minute(60)
    tat = FRESH
    for n in range(60):
        decision = gcra.decide(tat, now=0.0, cost=1)
        assert decision.allowed, n
        tat = decision.new_tat
    refused = gcra.decide(tat, now=0.0, cost=1)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(1.0)
    assert refused.new_tat == tat
    assert not gcra.decide(tat, now=0.999, cost=1).allowed
    again = gcra.decide(tat, now=1.0, cost=1)
    assert again.allowed
    assert not gcra.decide(again.new_tat, now=1.0, cost=1).allowed


def test_remaining_and_reset_count_down_from_a_full_bucket() -> None:
    gcra = Gcra.per_minute(60)
    assert gcra.peek(FRESH, now=100.0) == (60, 0.0)
    first = gcra.decide(FRESH, now=100.0, cost=1)
    assert (first.remaining, first.reset_s) == pytest.approx((59, 1.0))
    tenth = gcra.decide(first.new_tat, now=100.0, cost=9)
    assert (tenth.remaining, tenth.reset_s) == pytest.approx((50, 10.0))


def test_an_idle_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    gcra = Gcra.per_minute(60)
    emptied = gcra.decide(FRESH, now=0.0, cost=60).new_tat
    assert gcra.peek(emptied, now=30.0) == pytest.approx((30, 30.0))
    assert gcra.peek(emptied, now=600.0) == (60, 0.0)
    assert not gcra.decide(emptied, now=600.0, cost=61).allowed


def test_token_costs_wait_for_exactly_the_missing_tokens() -> None:
    gcra = Gcra.per_minute(600)  # 10 tokens a second
    tat = gcra.decide(FRESH, now=0.0, cost=500).new_tat
    refused = gcra.decide(tat, now=0.0, cost=200)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(10.0)
    assert refused.remaining == 100
    assert gcra.decide(tat, now=10.0, cost=200).allowed


def test_a_cost_above_the_whole_burst_is_refused_for_good() -> None:
    gcra = Gcra.per_minute(1000)
    too_large = gcra.decide(FRESH, now=0.0, cost=1001)
    assert not too_large.allowed
    assert too_large.too_large
    assert too_large.retry_after_s is None
    exactly = gcra.decide(FRESH, now=0.0, cost=1000)
    assert exactly.allowed
    assert not exactly.too_large
    assert exactly.remaining == 0


def test_many_small_costs_add_up_to_the_limit_without_float_drift() -> None:
    gcra = Gcra.per_minute(100_000)
    tat = FRESH
    for n in range(1000):
        decision = gcra.decide(tat, now=5.0, cost=100)
        assert decision.allowed, n
        tat = decision.new_tat
    assert gcra.peek(tat, now=5.0)[0] == 0
    assert not gcra.decide(tat, now=5.0, cost=1).allowed


def test_adjust_refunds_an_overestimate_and_charges_an_underestimate() -> None:
    gcra = Gcra.per_minute(1000)
    tat = gcra.decide(FRESH, now=0.0, cost=800).new_tat
    refunded = gcra.adjust(tat, -600, now=0.0)
    assert gcra.peek(refunded, now=0.0)[0] == 800
    charged = gcra.adjust(tat, 400, now=0.0)  # 1200 used of 1000: in debt
    assert gcra.peek(charged, now=0.0) == pytest.approx((0, 72.0))
    refused = gcra.decide(charged, now=0.0, cost=1)
    assert refused.retry_after_s == pytest.approx(12.06)


def test_a_refund_never_makes_the_bucket_hold_more_than_its_burst() -> None:
    gcra = Gcra.per_minute(60)
    tat = gcra.decide(FRESH, now=10.0, cost=1).new_tat
    refunded = gcra.adjust(tat, -1000, now=10.0)
    assert refunded == 10.0
    assert gcra.peek(refunded, now=10.0) == (60, 0.0)
    assert not gcra.decide(refunded, now=10.0, cost=61).allowed


def test_a_charge_on_an_idle_bucket_starts_from_now() -> None:
    gcra = Gcra.per_minute(60)
    tat = gcra.adjust(FRESH, 30, now=1000.0)
    assert gcra.peek(tat, now=1000.0) == pytest.approx((30, 30.0))
