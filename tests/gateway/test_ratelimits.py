"""The async rate-limit interface in memory: LocalLimits decides exactly as the Limiter does."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ollama_fleet.gateway.limits import Limiter, Refusal
from ollama_fleet.gateway.ratelimits import Charge, LocalLimits, make_rate_limits
from ollama_fleet.gateway.redis_limits import RedisLimits
from ollama_fleet.gateway.settings import KeySpec, Limits, SharedLimits

ALICE = KeySpec(name="alice", sha256="a" * 64, rpm=2, tpm=1000)
BOB = KeySpec(name="bob", sha256="b" * 64)
LOCAL = SharedLimits()

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def _ok(result: Charge | Refusal) -> Charge:
    assert not isinstance(result, Refusal), result
    return result


def _refused(result: Charge | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_no_redis_url_gives_in_memory_limits_without_redis_state() -> None:
    limits = make_rate_limits(keys=[ALICE], limits=Limits(), shared=LOCAL)
    assert isinstance(limits, LocalLimits)
    assert limits.redis_up is None
    assert limits.redis_errors == 0
    _run(limits.aclose())


def test_a_redis_url_gives_shared_limits_without_connecting_yet() -> None:
    async def scenario() -> None:
        shared = SharedLimits(redis_url="redis://:pw@127.0.0.1:1/0")
        limits = make_rate_limits(keys=[ALICE], limits=Limits(), shared=shared)
        assert isinstance(limits, RedisLimits)
        assert (limits.redis_up, limits.redis_errors) == (True, 0)
        await limits.aclose()

    _run(scenario())


def test_local_limits_decide_as_the_limiter_step_by_step() -> None:
    async def scenario() -> None:
        limits = LocalLimits(keys=[ALICE, BOB], limits=Limits(tpm=5000))
        reference = Limiter(keys=[ALICE, BOB], limits=Limits(tpm=5000))
        steps = [(ALICE, 250, 10), (ALICE, 250, 10), (ALICE, 1, 1), (BOB, 5000, 5001)]
        for key, estimate, prompt in steps:
            got = await limits.reserve(key, estimate_tokens=estimate, prompt_tokens=prompt, now=0)
            want = reference.reserve(key, estimate_tokens=estimate, prompt_tokens=prompt, now=0)
            if isinstance(want, Refusal):
                assert got == want
            else:
                assert _ok(got).headers == want.headers

    _run(scenario())


def test_settle_and_refund_reach_the_limiter_once() -> None:
    async def scenario() -> None:
        limits = LocalLimits(keys=[ALICE], limits=Limits())
        charge = _ok(await limits.reserve(ALICE, estimate_tokens=900, prompt_tokens=5, now=0))
        await charge.settle(100, now=0)
        await charge.settle(900, now=0)  # a second settle is a no-op
        headers = dict(limits.local.headers(ALICE, now=0))
        assert headers["x-ratelimit-remaining-tokens"] == "900"
        refunded = _ok(await limits.reserve(ALICE, estimate_tokens=500, prompt_tokens=5, now=0))
        await refunded.refund(now=0)
        await refunded.refund(now=0)
        headers = dict(limits.local.headers(ALICE, now=0))
        assert headers["x-ratelimit-remaining-tokens"] == "900"
        assert headers["x-ratelimit-remaining-requests"] == "1"
        _ok(await limits.reserve(ALICE, estimate_tokens=1, prompt_tokens=1, now=0))
        _refused(await limits.reserve(ALICE, estimate_tokens=1, prompt_tokens=1, now=0))

    _run(scenario())


def test_reconfigure_changes_the_limits_and_keeps_unchanged_buckets() -> None:
    async def scenario() -> None:
        limits = LocalLimits(keys=[BOB], limits=Limits(rpm=1))
        _ok(await limits.reserve(BOB, estimate_tokens=1, prompt_tokens=1, now=0))
        limits.reconfigure(keys=[BOB], limits=Limits(rpm=1), shared=LOCAL)
        refusal = _refused(await limits.reserve(BOB, estimate_tokens=1, prompt_tokens=1, now=0))
        assert refusal.message == "the gateway's rpm limit reached: retry in 1m0s"
        limits.reconfigure(keys=[BOB], limits=Limits(), shared=LOCAL)
        _ok(await limits.reserve(BOB, estimate_tokens=1, prompt_tokens=1, now=0))

    _run(scenario())


def test_concurrency_stays_on_the_local_limiter() -> None:
    limited = KeySpec(name="carol", sha256="c" * 64, max_concurrent=1)
    limits = make_rate_limits(keys=[limited], limits=Limits(), shared=LOCAL)
    assert limits.local.try_enter(limited)
    assert not limits.local.try_enter(limited)
    limits.local.leave(limited)
    assert limits.local.try_enter(limited)
