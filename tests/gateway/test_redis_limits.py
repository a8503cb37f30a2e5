"""Shared rate limits on a real redis-server: replicas share buckets, decide as the Limiter does,
and fail open (local limits) or closed (LimitsUnavailable) while Redis is down."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
import redis

from ollama_fleet.gateway.limits import Limiter, Refusal
from ollama_fleet.gateway.ratelimits import Charge, LimitsUnavailable, LocalCharge
from ollama_fleet.gateway.redis_limits import RedisCharge, RedisLimits
from ollama_fleet.gateway.settings import KeySpec, Limits, SharedLimits
from redis_server import RedisServer, running_redis

pytestmark = pytest.mark.integration

PASSWORD = "hunter2-redis"
ALICE = KeySpec(name="alice", sha256="a" * 64, rpm=2, tpm=1000)
BOB = KeySpec(name="bob", sha256="b" * 64)
SLOW_TOKENS = KeySpec(name="carol", sha256="c" * 64, tpm=60)  # one token a second comes back

T = TypeVar("T")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis", password=PASSWORD) as server:
        yield server


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def _limits(
    url: str,
    *,
    keys: tuple[KeySpec, ...] = (ALICE, BOB, SLOW_TOKENS),
    on_error: Literal["open", "closed"] = "open",
    timeout_s: float = 2.0,
    **global_limits: int,
) -> RedisLimits:
    shared = SharedLimits(redis_url=url, on_error=on_error, timeout_s=timeout_s)
    return RedisLimits(keys=keys, limits=Limits(**global_limits), shared=shared)


@asynccontextmanager
async def _closing(*limits: RedisLimits) -> AsyncIterator[tuple[RedisLimits, ...]]:
    try:
        yield limits
    finally:
        for each in limits:
            await each.aclose()


async def _reserve(
    limits: RedisLimits, key: KeySpec, estimate: int = 1, *, prompt: int = 1, now: float = 0.0
) -> Charge | Refusal:
    return await limits.reserve(key, estimate_tokens=estimate, prompt_tokens=prompt, now=now)


def _shared(result: Charge | Refusal) -> RedisCharge:
    assert isinstance(result, RedisCharge), result
    return result


def _refused(result: Charge | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def _seconds(text: str) -> float:
    """A format_reset duration back in seconds ("1m0s", "29.999s", "20ms")."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:(\d+)ms)?", text)
    assert match is not None, text
    hours, minutes, secs, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs + millis / 1000


def test_two_replicas_enforce_one_rpm_together(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        replicas = _limits(redis_server.url, rpm=3), _limits(redis_server.url, rpm=3)
        async with _closing(*replicas) as (first, second):
            _shared(await _reserve(first, ALICE))
            _shared(await _reserve(second, ALICE))
            refusal = _refused(await _reserve(first, ALICE))  # alice's rpm of 2, across both
            assert (refusal.which, refusal.scope) == ("requests", "key")
            assert refusal.retry_after_s == pytest.approx(30.0, abs=5)
            assert re.fullmatch(r"this key's rpm limit reached: retry in \S+", refusal.message)
            _shared(await _reserve(second, BOB))  # the gateway's rpm of 3, across both
            refusal = _refused(await _reserve(first, BOB))
            assert (refusal.which, refusal.scope) == ("requests", "global")
            assert refusal.message.startswith("the gateway's rpm limit reached: retry in ")
            assert (first.redis_errors, second.redis_errors, first.redis_up) == (0, 0, True)

    _run(scenario())


# (key, estimate, prompt) steps, each run on the Limiter and on Redis; global tpm 1500
STEPS = (
    (ALICE, 250, 10),
    (ALICE, 2000, 10),  # charged its limit (1000) at most: refused on tokens, not for good
    (ALICE, 1300, 1001),  # the prompt alone exceeds the key's tpm: refused for good
    (BOB, 1200, 5),
    (BOB, 400, 5),  # the gateway's tpm
    (BOB, 1600, 1501),  # the prompt alone exceeds the gateway's tpm
    (ALICE, 100, 10),
    (ALICE, 1, 1),  # the key's rpm
)


def test_decisions_messages_and_headers_match_the_limiter(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        async with _closing(_limits(redis_server.url, tpm=1500)) as (shared,):
            reference = Limiter(keys=[ALICE, BOB], limits=Limits(tpm=1500))
            outcomes = []
            for key, estimate, prompt in STEPS:
                got = await _reserve(shared, key, estimate, prompt=prompt)
                want = reference.reserve(key, estimate_tokens=estimate, prompt_tokens=prompt, now=0)
                assert isinstance(got, Refusal) == isinstance(want, Refusal), (key.name, estimate)
                _assert_same_headers(got.headers, want.headers)
                if isinstance(want, Refusal):
                    assert isinstance(got, Refusal)
                    assert (got.which, got.scope) == (want.which, want.scope)
                    if want.retry_after_s is None:
                        assert got.retry_after_s is None
                        assert got.message == want.message
                    else:
                        assert got.retry_after_s == pytest.approx(want.retry_after_s, abs=5)
                        durationless = re.compile(r"retry in \S+$")
                        assert durationless.sub("", got.message) == durationless.sub(
                            "", want.message
                        )
                outcomes.append(type(want).__name__)
            assert outcomes.count("Refusal") == 5  # the steps above test what they say

    _run(scenario())


def _assert_same_headers(
    got: tuple[tuple[str, str], ...], want: tuple[tuple[str, str], ...]
) -> None:
    assert [name for name, _ in got] == [name for name, _ in want]
    for (name, got_value), (_, want_value) in zip(got, want, strict=True):
        if name.startswith("x-ratelimit-reset-"):  # Redis' clock ran on a little meanwhile
            assert _seconds(got_value) == pytest.approx(_seconds(want_value), abs=5), name
        else:
            assert got_value == want_value, name


def test_tpm_settle_and_refund_reach_every_replica(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        async with _closing(_limits(redis_server.url), _limits(redis_server.url)) as (
            first,
            second,
        ):
            charge = _shared(await _reserve(first, SLOW_TOKENS, 50, prompt=5))
            _refused(await _reserve(second, SLOW_TOKENS, 20, prompt=5))
            await charge.settle(10, now=0.0)  # 40 tokens come back, for both
            await charge.settle(50, now=0.0)  # once only
            later = _shared(await _reserve(second, SLOW_TOKENS, 40, prompt=5))
            assert dict(later.headers)["x-ratelimit-remaining-tokens"] in {"10", "11"}
            await later.refund(now=0.0)
            await later.refund(now=0.0)
            whole = _shared(await _reserve(first, SLOW_TOKENS, 45, prompt=5))
            assert dict(whole.headers)["x-ratelimit-remaining-tokens"] in {"5", "6"}

    _run(scenario())


def test_buckets_are_named_keys_that_expire_when_full_again(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        async with _closing(_limits(redis_server.url, rpm=100)) as (shared,):
            _shared(await _reserve(shared, ALICE, 250, prompt=10))

    _run(scenario())
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert sorted(map(str, client.keys("ollama-fleet:gcra:*"))) == [
            "ollama-fleet:gcra:global:*:rpm:100",
            "ollama-fleet:gcra:key:alice:rpm:2",
            "ollama-fleet:gcra:key:alice:tpm:1000",
        ]
        # one request of 2 a minute is back after 30 s: the key lives a second past that
        assert 0 < client.pttl("ollama-fleet:gcra:key:alice:rpm:2") <= 31_000
        assert 0 < client.pttl("ollama-fleet:gcra:global:*:rpm:100") <= 1_600
    finally:
        client.close()


def test_fail_open_limits_locally_logs_once_and_shares_again_when_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ollama_fleet.gateway.redis_limits")

    async def scenario() -> None:
        async with _closing(_limits(redis_server.url, rpm=100)) as (shared,):
            _shared(await _reserve(shared, ALICE))
            redis_server.stop()
            fallback = await _reserve(shared, ALICE, now=0.0)
            assert isinstance(fallback, LocalCharge)
            assert (shared.redis_up, shared.redis_errors) == (False, 1)
            _ok_local(await _reserve(shared, ALICE, now=0.5))  # within the second: Redis not tried
            refusal = _refused(await _reserve(shared, ALICE, now=0.6))  # the local rpm of 2
            assert refusal.message == "this key's rpm limit reached: retry in 29.4s"
            _ok_local(await _reserve(shared, BOB, now=1.5))  # tried again: still down
            assert shared.redis_errors == 2
            await fallback.settle(5, now=1.5)
            redis_server.start()
            _ok_local(await _reserve(shared, BOB, now=2.0))  # within the second again
            _shared(await _reserve(shared, ALICE, now=3.0))  # the restarted Redis is empty
            assert (shared.redis_up, shared.redis_errors) == (True, 2)

    _run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("redis_limits")]
    assert len(lines) == 2, lines
    assert lines[0].startswith("shared rate limits: Redis at redis://***@127.0.0.1:")
    assert "each replica limits on its own" in lines[0]
    assert "is back" in lines[1]
    assert PASSWORD not in caplog.text


def _ok_local(result: Charge | Refusal) -> LocalCharge:
    assert isinstance(result, LocalCharge), result
    return result


def test_fail_closed_raises_limits_unavailable_without_the_password(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        async with _closing(_limits(redis_server.url, on_error="closed", rpm=100)) as (shared,):
            charge = _shared(await _reserve(shared, ALICE, 100, prompt=10))
            redis_server.stop()
            with pytest.raises(LimitsUnavailable) as caught:
                await _reserve(shared, ALICE)
            assert PASSWORD not in str(caught.value)
            assert "redis://***@127.0.0.1" in str(caught.value)
            with pytest.raises(LimitsUnavailable):
                await _reserve(shared, BOB, now=0.1)  # not tried, refused all the same
            await charge.settle(10, now=0.2)  # the answer went out: counted, never raised
            assert (shared.redis_up, shared.redis_errors) == (False, 1)
            redis_server.start()
            _shared(await _reserve(shared, ALICE, now=2.0))
            assert shared.redis_up is True

    _run(scenario())


def test_a_redis_that_does_not_answer_times_out_into_the_fallback() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"

        async def scenario() -> None:
            async with _closing(_limits(url, timeout_s=0.2)) as (shared,):
                _ok_local(await _reserve(shared, ALICE))
                assert (shared.redis_up, shared.redis_errors) == (False, 1)

        _run(scenario())
