"""Rate limits shared by gateway replicas: the Limiter's GCRA buckets kept in Redis (or Valkey).

One Lua script decides a request against all of its buckets (key and global, rpm and tpm) and
charges all or none, atomically; a second one adjusts buckets (settle, refund). Each bucket is
one key, `ollama-fleet:gcra:{scope}:{name}:{rpm|tpm}:{limit}`, holding its TAT as a float, with
Redis' own TIME as now (replicas' clocks do not matter) and a PEXPIRE a bit past when the bucket
is full again. Decisions, messages and headers are those of `limits.Limiter`. Needs a single
Redis (or a primary behind Sentinel), not Redis Cluster: a request's keys span hash slots.

When Redis fails (connect, timeout): on_error "open" decides this request with the in-memory
Limiter (each replica limits on its own meanwhile), "closed" raises LimitsUnavailable. The failure
and the recovery are logged once each; Redis is tried again at most once a second while down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ollama_fleet.errors import ConfigError
from ollama_fleet.gateway.gcra import Gcra
from ollama_fleet.gateway.limits import Limiter, Refusal, Scope, Which, format_reset
from ollama_fleet.gateway.ratelimits import Charge, LimitsUnavailable, LocalCharge
from ollama_fleet.gateway.sessions.urls import safe_url
from ollama_fleet.gateway.settings import KeySpec, Limits, SharedLimits

log = logging.getLogger(__name__)

RETRY_DOWN_S = 1.0  # while Redis is down, try it again at most this often

# Gcra.decide / Gcra.adjust in Lua, the same float operations in the same order. `now` is Redis
# TIME less 1.7e9 s (smaller floats keep TATs exact to well under a microsecond); a bucket key
# expires a second after its TAT (when it is full again, the key is not needed).
# KEYS: the buckets; ARGV: mode ("reserve" | "peek"), then limit and cost for each bucket.
# Returns {now, committed (0/1), then for each bucket its TAT (after, when committed) and its
# excess in seconds ("" when it allows)}; floats as %.17g strings (Lua numbers would truncate).
RESERVE_LUA = """
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) + tonumber(t[2]) / 1000000
local n = #KEYS
local tats, news, excess = {}, {}, {}
local allowed = true
for i = 1, n do
  local limit = tonumber(ARGV[2 * i])
  local cost = tonumber(ARGV[2 * i + 1])
  local interval = 1.0 / (limit / 60.0)
  local tat = tonumber(redis.call('GET', KEYS[i]) or '') or now
  local base = math.max(tat, now)
  local new = base + cost * interval
  local over = new - now - limit * interval
  tats[i], news[i] = tat, new
  if over > 1e-6 * interval then
    excess[i] = string.format('%.17g', over)
    allowed = false
  else
    excess[i] = ''
  end
end
local committed = allowed and ARGV[1] == 'reserve'
local reply = {string.format('%.17g', now), committed and 1 or 0}
for i = 1, n do
  local tat = tats[i]
  if committed then
    tat = news[i]
    redis.call('SET', KEYS[i], string.format('%.17g', tat),
      'PX', math.ceil((tat - now) * 1000) + 1000)
  end
  reply[#reply + 1] = string.format('%.17g', tat)
  reply[#reply + 1] = excess[i]
end
return reply
"""

# KEYS: the buckets; ARGV: limit and delta cost for each bucket (negative: a refund)
ADJUST_LUA = """
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) + tonumber(t[2]) / 1000000
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local delta = tonumber(ARGV[2 * i])
  local interval = 1.0 / (limit / 60.0)
  local tat = tonumber(redis.call('GET', KEYS[i]) or '') or now
  local new = math.max(math.max(tat, now) + delta * interval, now)
  if new > now then
    redis.call('SET', KEYS[i], string.format('%.17g', new),
      'PX', math.ceil((new - now) * 1000) + 1000)
  else
    redis.call('DEL', KEYS[i])
  end
end
return {}
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bucket:
    """One limit of a request: where it lives and what the request costs it."""

    key: str
    limit: int
    cost: int
    which: Which
    scope: Scope


def bucket_key(scope: Scope, name: str, which: Which, limit: int) -> str:
    """The Redis key of one bucket (a changed limit starts a fresh bucket, as in Limiter)."""
    unit = "rpm" if which == "requests" else "tpm"
    return f"ollama-fleet:gcra:{scope}:{name}:{unit}:{limit}"


class RedisCharge:
    """A request charged in Redis; settle or refund it once (errors are counted, not raised:
    the answer has gone out)."""

    __slots__ = ("_buckets", "_owner", "_settled", "headers")

    def __init__(
        self,
        *,
        owner: RedisLimits,
        buckets: tuple[_Bucket, ...],
        headers: tuple[tuple[str, str], ...],
    ) -> None:
        self._owner = owner
        self._buckets = buckets
        self._settled = False
        self.headers = headers

    async def settle(self, actual_tokens: int | None, *, now: float) -> None:
        if self._settled:
            return
        self._settled = True
        if actual_tokens is None:
            return
        deltas = [(b, actual_tokens - b.cost) for b in self._buckets if b.which == "tokens"]
        await self._owner.adjust(deltas, now=now)

    async def refund(self, *, now: float) -> None:
        if self._settled:
            return
        self._settled = True
        await self._owner.adjust([(b, -b.cost) for b in self._buckets], now=now)


class RedisLimits:
    """Rate limits in Redis, shared by every replica that uses the same Redis."""

    def __init__(self, *, keys: Sequence[KeySpec], limits: Limits, shared: SharedLimits) -> None:
        if shared.redis_url is None:
            raise ConfigError("shared rate limits need a Redis URL (redis.url)")
        self.local = Limiter(keys=keys, limits=limits)
        self.redis_up: bool | None = True
        self.redis_errors = 0
        self._limits = limits
        self._shared = shared
        self._where = safe_url(shared.redis_url)
        self._password = unquote(urlsplit(shared.redis_url).password or "")
        self._retry_at = float("-inf")
        self._client = aioredis.Redis.from_url(
            shared.redis_url,
            socket_timeout=shared.timeout_s,
            socket_connect_timeout=shared.timeout_s,
            retry=Retry(NoBackoff(), 1),  # once: a pooled connection that a restart closed
        )
        self._reserve = self._client.register_script(RESERVE_LUA)
        self._adjust = self._client.register_script(ADJUST_LUA)

    def reconfigure(self, *, keys: Sequence[KeySpec], limits: Limits, shared: SharedLimits) -> None:
        """New keys, limits, on_error and timeout. A different Redis URL needs a new instance
        (make_rate_limits): this one keeps its connection."""
        self.local.reconfigure(keys=keys, limits=limits)
        self._limits = limits
        self._shared = SharedLimits(
            redis_url=self._shared.redis_url, on_error=shared.on_error, timeout_s=shared.timeout_s
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def reserve(
        self, key: KeySpec, *, estimate_tokens: int, prompt_tokens: int, now: float
    ) -> Charge | Refusal:
        buckets = self._buckets(key, estimate_tokens)
        if not buckets:
            return RedisCharge(owner=self, buckets=(), headers=())
        sure = min(prompt_tokens, estimate_tokens)
        too_large = next((b for b in buckets if b.which == "tokens" and sure > b.limit), None)
        mode = "peek" if too_large is not None else "reserve"  # peek: the headers, no charge
        pairs = [str(x) for b in buckets for x in (b.limit, b.cost)]
        reply = await self._call(self._reserve, buckets, [mode, *pairs], now=now)
        if reply is None:  # Redis failed, on_error open: this replica decides alone
            result = self.local.reserve(
                key, estimate_tokens=estimate_tokens, prompt_tokens=prompt_tokens, now=now
            )
            return result if isinstance(result, Refusal) else LocalCharge(result)
        tats = [float(reply[2 + 2 * i]) for i in range(len(buckets))]
        headers = _headers(buckets, tats, now=float(reply[0]))
        if too_large is not None:
            return Refusal(
                retry_after_s=None,  # waiting cannot help
                which="tokens",
                scope=too_large.scope,
                message=f"the prompt alone (about {sure} tokens) exceeds "
                f"{_owner(too_large.scope)} tpm limit of {too_large.limit}",
                headers=headers,
            )
        if reply[1] == "1":
            return RedisCharge(owner=self, buckets=buckets, headers=headers)
        excess = [reply[3 + 2 * i] for i in range(len(buckets))]
        # the longest wait, the first bucket among equals (as Limiter picks)
        wait, refused = max(
            ((float(e), b) for e, b in zip(excess, buckets, strict=True) if e),
            key=lambda r: r[0],
        )
        unit = "rpm" if refused.which == "requests" else "tpm"
        return Refusal(
            retry_after_s=wait,
            which=refused.which,
            scope=refused.scope,
            message=f"{_owner(refused.scope)} {unit} limit reached: retry in {format_reset(wait)}",
            headers=headers,
        )

    async def adjust(self, deltas: Sequence[tuple[_Bucket, int]], *, now: float) -> None:
        """Charge (or, negative, give back) each bucket's delta; a failure is counted and logged
        like any Redis failure, never raised (the buckets keep what they were charged)."""
        changed = [(b, d) for b, d in deltas if d != 0]
        if not changed:
            return
        pairs = [str(x) for b, d in changed for x in (b.limit, d)]
        with contextlib.suppress(LimitsUnavailable):
            await self._call(self._adjust, [b for b, _ in changed], pairs, now=now)

    def _buckets(self, key: KeySpec, estimate_tokens: int) -> tuple[_Bucket, ...]:
        candidates: tuple[tuple[int | None, int, Which, Scope, str], ...] = (
            (key.rpm, 1, "requests", "key", key.name),
            (key.tpm, estimate_tokens, "tokens", "key", key.name),
            (self._limits.rpm, 1, "requests", "global", "*"),
            (self._limits.tpm, estimate_tokens, "tokens", "global", "*"),
        )
        return tuple(
            _Bucket(
                key=bucket_key(scope, name, which, limit),
                limit=limit,
                cost=min(cost, limit),
                which=which,
                scope=scope,
            )
            for limit, cost, which, scope, name in candidates
            if limit is not None
        )

    async def _call(
        self, script: AsyncScript, buckets: Sequence[_Bucket], argv: Sequence[str], *, now: float
    ) -> list[str] | None:
        """Run a script on the buckets: its reply as strings; None when Redis failed and
        on_error is open, LimitsUnavailable when it is closed."""
        if self.redis_up is False and now < self._retry_at:
            self._fail()
            return None
        try:
            async with asyncio.timeout(self._shared.timeout_s):
                raw = await script(keys=[b.key for b in buckets], args=list(argv))
        except (RedisError, OSError, TimeoutError) as exc:
            self.redis_errors += 1
            self._retry_at = now + RETRY_DOWN_S
            if self.redis_up is not False:
                self.redis_up = False
                log.warning(
                    "shared rate limits: Redis at %s failed (%s); %s",
                    self._where,
                    self._reason(exc),
                    "each replica limits on its own until it is back"
                    if self._shared.on_error == "open"
                    else "limited requests get 503 until it is back",
                )
            self._fail()
            return None
        if self.redis_up is False:
            log.info("shared rate limits: Redis at %s is back; limits shared again", self._where)
        self.redis_up = True
        return [v.decode() if isinstance(v, bytes) else str(v) for v in raw]

    def _fail(self) -> None:
        """Redis cannot decide: on_error closed refuses the request (the caller answers 503)."""
        if self._shared.on_error == "closed":
            raise LimitsUnavailable(f"the shared rate limits (Redis at {self._where}) are down")

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError) and not str(exc):
            return f"no answer in {self._shared.timeout_s:g} s"
        text = f"{type(exc).__name__}: {exc}"
        return text.replace(self._password, "***") if self._password else text


def _owner(scope: Scope) -> str:
    return "this key's" if scope == "key" else "the gateway's"


def _headers(
    buckets: Sequence[_Bucket], tats: Sequence[float], *, now: float
) -> tuple[tuple[str, str], ...]:
    """The key's x-ratelimit-* headers from its buckets' TATs (as Limiter writes them)."""
    result: list[tuple[str, str]] = []
    for bucket, tat in zip(buckets, tats, strict=True):
        if bucket.scope != "key":
            continue
        remaining, reset_s = Gcra.per_minute(bucket.limit).peek(tat, now=now)
        result += [
            (f"x-ratelimit-limit-{bucket.which}", str(bucket.limit)),
            (f"x-ratelimit-remaining-{bucket.which}", str(remaining)),
            (f"x-ratelimit-reset-{bucket.which}", format_reset(reset_s)),
        ]
    return tuple(result)
