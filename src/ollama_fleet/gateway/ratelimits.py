"""The gateway's rate limits as one async interface: in memory (one process) or shared in Redis.

`make_rate_limits` picks the backend from `SharedLimits`: no Redis URL gives `LocalLimits`, a thin
async face of the in-memory `limits.Limiter`; a URL gives `redis_limits.RedisLimits`, which
decides exactly as the Limiter does but with the buckets in Redis, so that every replica of the
gateway draws from the same rpm/tpm. Per-key `max_concurrent` stays per replica: both keep a
`local` Limiter whose try_enter/leave count this process's requests in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ollama_fleet.errors import FleetError
from ollama_fleet.gateway.limits import Limiter, Refusal, Reservation
from ollama_fleet.gateway.settings import KeySpec, Limits, SharedLimits


class LimitsUnavailable(FleetError, ConnectionError):
    """Redis failed and `on_error` is closed: the request cannot be limited, so answer 503."""


class Charge(Protocol):
    """A request the limits let through; settle it once with the real token count, or refund
    it when nothing ran (the second call of either is a no-op)."""

    headers: tuple[tuple[str, str], ...]

    async def settle(self, actual_tokens: int | None, *, now: float) -> None: ...

    async def refund(self, *, now: float) -> None: ...


class RateLimits(Protocol):
    """Every rate limit of one gateway process, wherever the buckets live."""

    redis_up: bool | None  # None: no Redis configured
    redis_errors: int  # failed Redis calls so far (a metric)
    local: Limiter  # this process's limiter: max_concurrent, and the fall-back when Redis fails

    async def reserve(
        self, key: KeySpec, *, estimate_tokens: int, prompt_tokens: int, now: float
    ) -> Charge | Refusal:
        """As `Limiter.reserve`: charge every limit, or refuse and charge none; LimitsUnavailable
        when Redis failed and on_error is closed."""
        ...

    def reconfigure(
        self, *, keys: Sequence[KeySpec], limits: Limits, shared: SharedLimits
    ) -> None: ...

    async def aclose(self) -> None: ...


class LocalCharge:
    """A `limits.Reservation` behind the async Charge interface."""

    __slots__ = ("_reservation", "headers")

    def __init__(self, reservation: Reservation) -> None:
        self._reservation = reservation
        self.headers = reservation.headers

    async def settle(self, actual_tokens: int | None, *, now: float) -> None:
        self._reservation.settle(actual_tokens, now=now)

    async def refund(self, *, now: float) -> None:
        self._reservation.refund(now=now)


class LocalLimits:
    """Rate limits in this process's memory (the gateway's default: one replica)."""

    redis_up: bool | None = None
    redis_errors: int = 0

    def __init__(self, *, keys: Sequence[KeySpec], limits: Limits) -> None:
        self.local = Limiter(keys=keys, limits=limits)

    async def reserve(
        self, key: KeySpec, *, estimate_tokens: int, prompt_tokens: int, now: float
    ) -> Charge | Refusal:
        result = self.local.reserve(
            key, estimate_tokens=estimate_tokens, prompt_tokens=prompt_tokens, now=now
        )
        return result if isinstance(result, Refusal) else LocalCharge(result)

    def reconfigure(self, *, keys: Sequence[KeySpec], limits: Limits, shared: SharedLimits) -> None:
        """New keys and limits. `shared` is not read: switching to Redis needs a new instance
        (make_rate_limits), which the gateway makes when the Redis URL changes."""
        self.local.reconfigure(keys=keys, limits=limits)

    async def aclose(self) -> None:
        return None


def make_rate_limits(
    *, keys: Sequence[KeySpec], limits: Limits, shared: SharedLimits
) -> RateLimits:
    """In memory when `shared.redis_url` is None, else shared through Redis."""
    if shared.redis_url is None:
        return LocalLimits(keys=keys, limits=limits)
    from ollama_fleet.gateway.redis_limits import RedisLimits  # only where Redis is configured

    return RedisLimits(keys=keys, limits=limits, shared=shared)
