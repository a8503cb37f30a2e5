"""The limiter: per key and global rpm/tpm, settling, headers, concurrency, token estimates."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ollama_fleet.gateway.limits import (
    Limiter,
    Refusal,
    Reservation,
    estimate_tokens,
    format_reset,
)
from ollama_fleet.gateway.settings import KeySpec, Limits

ALICE = KeySpec(name="alice", sha256="a" * 64, rpm=2, tpm=1000)
BOB = KeySpec(name="bob", sha256="b" * 64)


def _limiter(keys: Sequence[KeySpec] = (ALICE, BOB), **limits: int | None) -> Limiter:
    return Limiter(keys=keys, limits=Limits(**limits))  # type: ignore[arg-type]


def _ok(result: Reservation | Refusal) -> Reservation:
    assert isinstance(result, Reservation), result
    return result


def _refused(result: Reservation | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_key_rpm_refuses_with_which_scope_and_retry_after() -> None:
    limiter = _limiter()
    _ok(limiter.reserve(ALICE, estimate_tokens=1, now=0.0))
    _ok(limiter.reserve(ALICE, estimate_tokens=1, now=0.0))
    refusal = _refused(limiter.reserve(ALICE, estimate_tokens=1, now=0.0))
    assert (refusal.which, refusal.scope) == ("requests", "key")
    assert refusal.retry_after_s == pytest.approx(30.0)
    assert "rpm" in refusal.message
    _ok(limiter.reserve(ALICE, estimate_tokens=1, now=30.0))


def test_a_key_without_limits_is_never_refused_and_others_do_not_share_its_bucket() -> None:
    limiter = _limiter()
    for _ in range(500):
        _ok(limiter.reserve(BOB, estimate_tokens=10_000, now=0.0))
    _ok(limiter.reserve(ALICE, estimate_tokens=1, now=0.0))


def test_key_tpm_refuses_on_the_estimate() -> None:
    limiter = _limiter()
    _ok(limiter.reserve(ALICE, estimate_tokens=900, now=0.0))
    refusal = _refused(limiter.reserve(ALICE, estimate_tokens=200, now=0.0))
    assert (refusal.which, refusal.scope) == ("tokens", "key")
    assert refusal.retry_after_s == pytest.approx(6.0)


def test_global_limits_cover_all_keys() -> None:
    limiter = _limiter(rpm=3)
    _ok(limiter.reserve(BOB, estimate_tokens=1, now=0.0))
    _ok(limiter.reserve(BOB, estimate_tokens=1, now=0.0))
    _ok(limiter.reserve(ALICE, estimate_tokens=1, now=0.0))
    refusal = _refused(limiter.reserve(BOB, estimate_tokens=1, now=0.0))
    assert (refusal.which, refusal.scope) == ("requests", "global")
    assert "gateway" in refusal.message


def test_a_refusal_charges_nothing_anywhere() -> None:
    limiter = _limiter(tpm=500)
    _ok(limiter.reserve(BOB, estimate_tokens=400, now=0.0))
    refusal = _refused(limiter.reserve(ALICE, estimate_tokens=200, now=0.0))
    assert (refusal.which, refusal.scope) == ("tokens", "global")
    headers = dict(limiter.headers(ALICE, now=0.0))
    assert headers["x-ratelimit-remaining-requests"] == "2"
    assert headers["x-ratelimit-remaining-tokens"] == "1000"
    _ok(limiter.reserve(ALICE, estimate_tokens=100, now=0.0))


def test_the_longest_wait_is_reported_when_several_limits_refuse() -> None:
    limiter = _limiter(rpm=1)
    _ok(limiter.reserve(ALICE, estimate_tokens=1000, now=0.0))
    refusal = _refused(limiter.reserve(ALICE, estimate_tokens=500, now=0.0))  # tokens: 30 s
    assert (refusal.which, refusal.scope) == ("requests", "global")
    assert refusal.retry_after_s == pytest.approx(60.0)


def test_a_prompt_larger_than_the_tpm_limit_is_refused_for_good() -> None:
    limiter = _limiter()
    refusal = _refused(limiter.reserve(ALICE, estimate_tokens=1300, prompt_tokens=1001, now=0.0))
    assert refusal.retry_after_s is None
    assert (refusal.which, refusal.scope) == ("tokens", "key")
    assert refusal.message == (
        "the prompt alone (about 1001 tokens) exceeds this key's tpm limit of 1000"
    )
    global_refusal = _refused(_limiter(tpm=50).reserve(BOB, estimate_tokens=51, now=0.0))
    assert global_refusal.message == (
        "the prompt alone (about 51 tokens) exceeds the gateway's tpm limit of 50"
    )


def test_an_estimate_over_the_limit_is_charged_the_limit_and_settled_on_the_count() -> None:
    limiter = _limiter(tpm=500)
    reservation = _ok(limiter.reserve(ALICE, estimate_tokens=1300, prompt_tokens=10, now=0.0))
    headers = dict(limiter.headers(ALICE, now=0.0))
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    reservation.settle(40, now=0.0)
    assert dict(limiter.headers(ALICE, now=0.0))["x-ratelimit-remaining-tokens"] == "960"
    _ok(limiter.reserve(BOB, estimate_tokens=460, now=0.0))  # the global limit was settled too
    _refused(limiter.reserve(BOB, estimate_tokens=2, now=0.0))


def test_refund_gives_back_the_request_and_its_tokens_once() -> None:
    limiter = _limiter(rpm=10, tpm=5000)
    reservation = _ok(limiter.reserve(ALICE, estimate_tokens=300, now=0.0))
    reservation.refund(now=0.0)
    reservation.refund(now=0.0)
    reservation.settle(900, now=0.0)  # after a refund: a no-op
    headers = dict(limiter.headers(ALICE, now=0.0))
    assert headers["x-ratelimit-remaining-requests"] == "2"
    assert headers["x-ratelimit-remaining-tokens"] == "1000"
    for _ in range(10):
        _ok(limiter.reserve(BOB, estimate_tokens=500, now=0.0))  # the global ones are whole


def test_settle_refunds_an_overestimate_for_key_and_global() -> None:
    limiter = _limiter(tpm=1000)
    reservation = _ok(limiter.reserve(ALICE, estimate_tokens=1000, now=0.0))
    _refused(limiter.reserve(ALICE, estimate_tokens=100, now=0.0))
    reservation.settle(100, now=0.0)
    _ok(limiter.reserve(ALICE, estimate_tokens=900, now=0.0))


def test_settle_charges_an_underestimate() -> None:
    limiter = _limiter()
    reservation = _ok(limiter.reserve(ALICE, estimate_tokens=100, now=0.0))
    reservation.settle(900, now=0.0)
    refusal = _refused(limiter.reserve(ALICE, estimate_tokens=200, now=0.0))
    assert refusal.which == "tokens"
    assert dict(limiter.headers(ALICE, now=0.0))["x-ratelimit-remaining-tokens"] == "100"


def test_settle_counts_once_and_an_unknown_count_keeps_the_estimate() -> None:
    limiter = _limiter()
    reservation = _ok(limiter.reserve(ALICE, estimate_tokens=500, now=0.0))
    reservation.settle(None, now=0.0)
    reservation.settle(0, now=0.0)
    assert dict(limiter.headers(ALICE, now=0.0))["x-ratelimit-remaining-tokens"] == "500"


def test_headers_follow_openai_and_omit_limits_the_key_lacks() -> None:
    limiter = _limiter()
    reservation = _ok(limiter.reserve(ALICE, estimate_tokens=250, now=0.0))
    assert reservation.headers == (
        ("x-ratelimit-limit-requests", "2"),
        ("x-ratelimit-remaining-requests", "1"),
        ("x-ratelimit-reset-requests", "30s"),
        ("x-ratelimit-limit-tokens", "1000"),
        ("x-ratelimit-remaining-tokens", "750"),
        ("x-ratelimit-reset-tokens", "15s"),
    )
    assert _ok(limiter.reserve(BOB, estimate_tokens=1, now=0.0)).headers == ()
    only_rpm = KeySpec(name="carol", sha256="c" * 64, rpm=10)
    names = [name for name, _ in _limiter([only_rpm]).headers(only_rpm, now=0.0)]
    assert names == [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ]


def test_refusals_carry_the_keys_headers() -> None:
    limiter = _limiter()
    limiter.reserve(ALICE, estimate_tokens=1, now=0.0)
    limiter.reserve(ALICE, estimate_tokens=1, now=0.0)
    refusal = _refused(limiter.reserve(ALICE, estimate_tokens=1, now=0.0))
    assert dict(refusal.headers)["x-ratelimit-remaining-requests"] == "0"
    assert dict(refusal.headers)["x-ratelimit-reset-requests"] == "1m0s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.02, "20ms"),
        (0.9994, "999ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (360.0, "6m0s"),
        (61.25, "1m1.25s"),
        (3723.0, "1h2m3s"),
        (-1.0, "0s"),
    ],
)
def test_format_reset(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


def test_concurrency_per_key() -> None:
    limited = KeySpec(name="carol", sha256="c" * 64, max_concurrent=2)
    limiter = _limiter([limited, BOB])
    assert limiter.try_enter(limited)
    assert limiter.try_enter(limited)
    assert not limiter.try_enter(limited)
    assert limiter.in_flight(limited) == 2
    limiter.leave(limited)
    assert limiter.try_enter(limited)
    assert all(limiter.try_enter(BOB) for _ in range(100))
    assert limiter.in_flight(BOB) == 100


def test_an_unmatched_leave_is_logged_and_never_goes_below_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limited = KeySpec(name="carol", sha256="c" * 64, max_concurrent=1)
    limiter = _limiter([limited])
    limiter.leave(limited)
    assert "without a matching try_enter" in caplog.text
    assert limiter.in_flight(limited) == 0
    assert limiter.try_enter(limited)
    assert not limiter.try_enter(limited)


def test_reconfigure_keeps_state_only_where_key_and_limit_stay() -> None:
    limiter = _limiter(rpm=100)
    for _ in range(2):
        _ok(limiter.reserve(ALICE, estimate_tokens=500, now=0.0))
    limiter.reconfigure(keys=[ALICE], limits=Limits(rpm=100))
    assert dict(limiter.headers(ALICE, now=0.0))["x-ratelimit-remaining-requests"] == "0"
    assert dict(limiter.headers(ALICE, now=0.0))["x-ratelimit-remaining-tokens"] == "0"

    more_tokens = KeySpec(name="alice", sha256="a" * 64, rpm=2, tpm=2000)
    limiter.reconfigure(keys=[more_tokens], limits=Limits(rpm=100))
    headers = dict(limiter.headers(more_tokens, now=0.0))
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-remaining-tokens"] == "2000"

    limiter.reconfigure(keys=[], limits=Limits(rpm=100))
    limiter.reconfigure(keys=[ALICE], limits=Limits(rpm=100))
    assert dict(limiter.headers(ALICE, now=0.0))["x-ratelimit-remaining-requests"] == "2"


def test_reconfigure_of_global_limits() -> None:
    limiter = _limiter(rpm=1)
    _ok(limiter.reserve(BOB, estimate_tokens=1, now=0.0))
    limiter.reconfigure(keys=[BOB], limits=Limits(rpm=1))
    _refused(limiter.reserve(BOB, estimate_tokens=1, now=0.0))
    limiter.reconfigure(keys=[BOB], limits=Limits(rpm=2))
    _ok(limiter.reserve(BOB, estimate_tokens=1, now=0.0))
    limiter.reconfigure(keys=[BOB], limits=Limits())
    for _ in range(10):
        _ok(limiter.reserve(BOB, estimate_tokens=1, now=0.0))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}, 10 + 1 + 256),
        (
            {
                "messages": [
                    {"role": "system", "content": "abcd" * 5},
                    {"role": "user", "content": "abcd" * 5},
                ],
                "options": {"num_predict": 64},
            },
            10 + 2 + 64,
        ),
        ({"prompt": "y" * 400, "options": {"num_predict": -1}}, 100 + 1 + 256),
        ({"prompt": "y" * 400, "system": "z" * 40, "stream": False}, 110 + 2 + 256),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}, 0 + 1 + 10),
        ({"messages": [], "max_completion_tokens": 32, "max_tokens": 8}, 32),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "a" * 80},
                            {"type": "image_url", "image_url": {"url": "data:..."}},
                        ],
                    }
                ]
            },
            20 + 1 + 256,
        ),
        ({"prompt": ["a" * 40, "b" * 40], "max_tokens": 5}, 20 + 1 + 5),
        ({"model": "e", "input": "w" * 80}, 21),
        ({"model": "e", "input": ["w" * 80, "v" * 8]}, 21 + 3),
        ({"model": "e", "input": [[1, 2, 3], [4, 5]]}, 5),
        ({"model": "e", "input": [1, 2, 3]}, 3),
        ({"model": "m"}, 256),
        ({"messages": "not a list", "max_tokens": True}, 256),
    ],
)
def test_estimate_tokens(body: dict[str, object], expected: int) -> None:
    assert estimate_tokens(body, completion_estimate=256) == expected
