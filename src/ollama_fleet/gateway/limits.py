"""Rate limits in memory: per key and global requests and tokens a minute, per key concurrency.

One asyncio process, no awaits inside: every method decides and commits in one step. A request
is charged its estimated tokens up front (`reserve`) and settled against the real count from the
answer (`Reservation.settle`), or given back whole when nothing ran (`Reservation.refund`). A
refusal charges nothing anywhere. A token limit is charged at most its own size: the answer's
share of an estimate is a guess, so a limit smaller than the guess still lets requests through
(and the real count settles them); only a prompt that alone exceeds a limit is refused for good.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ollama_fleet.gateway.gcra import Gcra
from ollama_fleet.gateway.settings import KeySpec, Limits

log = logging.getLogger(__name__)

Which = Literal["requests", "tokens"]
Scope = Literal["key", "global"]


class _Bucket:
    """One GCRA limit and its state (mutable on purpose: the limiter's only state)."""

    __slots__ = ("gcra", "limit", "tat")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.gcra = Gcra.per_minute(limit)
        self.tat = float("-inf")  # full


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """A request the limits refuse; `retry_after_s` is None when waiting can never help."""

    retry_after_s: float | None
    which: Which
    scope: Scope
    message: str
    headers: tuple[tuple[str, str], ...]


class Reservation:
    """A request the limits let through; settle it once with the real token count, or refund
    it when nothing ran."""

    __slots__ = ("_requests", "_settled", "_tokens", "headers")

    def __init__(
        self,
        *,
        requests: tuple[_Bucket, ...],
        tokens: tuple[tuple[_Bucket, int], ...],
        headers: tuple[tuple[str, str], ...],
    ) -> None:
        self._requests = requests
        self._tokens = tokens  # each token bucket with what it was charged
        self._settled = False
        self.headers = headers

    def settle(self, actual_tokens: int | None, *, now: float) -> None:
        """Charge or refund the difference to the charge (None: the count is unknown: keep it)."""
        if self._settled:
            return
        self._settled = True
        if actual_tokens is None:
            return
        for bucket, charged in self._tokens:
            bucket.tat = bucket.gcra.adjust(bucket.tat, actual_tokens - charged, now=now)

    def refund(self, *, now: float) -> None:
        """Nothing ran (the gateway answered 502, 503 or 504): give back the request and its
        tokens, as if it had never come. Once, like settle."""
        if self._settled:
            return
        self._settled = True
        for bucket in self._requests:
            bucket.tat = bucket.gcra.adjust(bucket.tat, -1, now=now)
        for bucket, charged in self._tokens:
            bucket.tat = bucket.gcra.adjust(bucket.tat, -charged, now=now)


class Limiter:
    """All rate limits of one gateway process."""

    def __init__(self, *, keys: Sequence[KeySpec], limits: Limits) -> None:
        self._keys: dict[str, tuple[_Bucket | None, _Bucket | None]] = {}
        self._global: tuple[_Bucket | None, _Bucket | None] = (None, None)
        self._in_flight: dict[str, int] = {}
        self.reconfigure(keys=keys, limits=limits)

    def reconfigure(self, *, keys: Sequence[KeySpec], limits: Limits) -> None:
        """New keys and limits; a bucket whose key and limit stay the same keeps its state."""
        self._global = (
            _keep(self._global[0], limits.rpm),
            _keep(self._global[1], limits.tpm),
        )
        old = self._keys
        self._keys = {}
        for spec in keys:
            rpm, tpm = old.get(spec.name, (None, None))
            self._keys[spec.name] = (_keep(rpm, spec.rpm), _keep(tpm, spec.tpm))

    def reserve(
        self,
        key: KeySpec,
        *,
        estimate_tokens: int,
        now: float,
        prompt_tokens: int | None = None,
    ) -> Reservation | Refusal:
        """Let the request through (charging every limit) or refuse it (charging none).

        `prompt_tokens` is the part of the estimate the request surely uses (None: all of
        it); each token limit is charged the estimate, but at most the limit itself.
        """
        key_rpm, key_tpm = self._buckets(key)
        global_rpm, global_tpm = self._global
        sure = estimate_tokens if prompt_tokens is None else min(prompt_tokens, estimate_tokens)
        scopes: tuple[tuple[_Bucket | None, Scope], ...] = (
            (key_tpm, "key"),
            (global_tpm, "global"),
        )
        for bucket, scope in scopes:
            if bucket is not None and sure > bucket.limit:
                return Refusal(
                    retry_after_s=None,  # waiting cannot help
                    which="tokens",
                    scope=scope,
                    message=f"the prompt alone (about {sure} tokens) exceeds "
                    f"{_owner(scope)} tpm limit of {bucket.limit}",
                    headers=_headers(key_rpm, key_tpm, now=now),
                )
        candidates: tuple[tuple[_Bucket | None, int, Which, Scope], ...] = (
            (key_rpm, 1, "requests", "key"),
            (key_tpm, estimate_tokens, "tokens", "key"),
            (global_rpm, 1, "requests", "global"),
            (global_tpm, estimate_tokens, "tokens", "global"),
        )
        checks = [(b, min(cost, b.limit), w, s) for b, cost, w, s in candidates if b is not None]
        decisions = [
            (b.gcra.decide(b.tat, now=now, cost=cost), b, cost, w, s) for b, cost, w, s in checks
        ]
        refused = [(d, w, s) for d, _, _, w, s in decisions if not d.allowed]
        if refused:
            decision, which, scope = max(refused, key=lambda r: r[0].retry_after_s or 0.0)
            wait = format_reset(decision.retry_after_s or 0.0)
            unit = "rpm" if which == "requests" else "tpm"
            return Refusal(
                retry_after_s=decision.retry_after_s,
                which=which,
                scope=scope,
                message=f"{_owner(scope)} {unit} limit reached: retry in {wait}",
                headers=_headers(key_rpm, key_tpm, now=now),
            )
        for decision, bucket, _, _, _ in decisions:
            bucket.tat = decision.new_tat
        return Reservation(
            requests=tuple(b for b in (key_rpm, global_rpm) if b is not None),
            tokens=tuple((b, cost) for _, b, cost, w, _ in decisions if w == "tokens"),
            headers=_headers(key_rpm, key_tpm, now=now),
        )

    def headers(self, key: KeySpec, *, now: float) -> tuple[tuple[str, str], ...]:
        """The key's `x-ratelimit-*` headers as things stand (none for limits it lacks)."""
        return _headers(*self._buckets(key), now=now)

    def try_enter(self, key: KeySpec) -> bool:
        """Count one more request of the key in flight, unless it is at max_concurrent."""
        current = self._in_flight.get(key.name, 0)
        if key.max_concurrent is not None and current >= key.max_concurrent:
            return False
        self._in_flight[key.name] = current + 1
        return True

    def leave(self, key: KeySpec) -> None:
        """One request of the key (entered with try_enter) has finished."""
        current = self._in_flight.get(key.name, 0)
        if current <= 1:
            self._in_flight.pop(key.name, None)
            if current == 0:
                log.warning("leave() for key %r without a matching try_enter()", key.name)
        else:
            self._in_flight[key.name] = current - 1

    def in_flight(self, key: KeySpec) -> int:
        """How many requests of the key are in flight."""
        return self._in_flight.get(key.name, 0)

    def _buckets(self, key: KeySpec) -> tuple[_Bucket | None, _Bucket | None]:
        rpm, tpm = self._keys.get(key.name, (None, None))
        current = (_keep(rpm, key.rpm), _keep(tpm, key.tpm))
        self._keys[key.name] = current
        return current


def estimate_tokens(body: Mapping[str, Any], *, completion_estimate: int) -> int:
    """A request's tokens before it runs: prompt chars/4 (+1 a message) plus the answer cap.

    Reads native chat `messages`, generate `prompt`/`system`, OpenAI `messages`/`prompt` and
    embeddings `input` (no answer for embeddings); the cap is options.num_predict, max_tokens or
    max_completion_tokens, else `completion_estimate`.
    """
    return prompt_tokens(body) + _answer_tokens(body, completion_estimate)


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """The prompt's share of `estimate_tokens` (embeddings: their whole input)."""
    chars = 0
    pieces = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            pieces += 1
            if isinstance(message, Mapping):
                chars += _text_chars(message.get("content"))
    for field in ("prompt", "system", "suffix"):
        if field in body:
            pieces += 1
            chars += _text_chars(body[field])
    if _is_embedding(body):
        return chars // 4 + pieces + _input_tokens(body["input"])
    return chars // 4 + pieces


def _is_embedding(body: Mapping[str, Any]) -> bool:
    return "input" in body and "messages" not in body and "prompt" not in body


def _answer_tokens(body: Mapping[str, Any], completion_estimate: int) -> int:
    return 0 if _is_embedding(body) else _answer_cap(body, completion_estimate)


def _keep(bucket: _Bucket | None, limit: int | None) -> _Bucket | None:
    if limit is None:
        return None
    if bucket is not None and bucket.limit == limit:
        return bucket
    return _Bucket(limit)


def _owner(scope: Scope) -> str:
    return "this key's" if scope == "key" else "the gateway's"


def _headers(
    rpm: _Bucket | None, tpm: _Bucket | None, *, now: float
) -> tuple[tuple[str, str], ...]:
    result: list[tuple[str, str]] = []
    for bucket, which in ((rpm, "requests"), (tpm, "tokens")):
        if bucket is None:
            continue
        remaining, reset_s = bucket.gcra.peek(bucket.tat, now=now)
        result += [
            (f"x-ratelimit-limit-{which}", str(bucket.limit)),
            (f"x-ratelimit-remaining-{which}", str(remaining)),
            (f"x-ratelimit-reset-{which}", format_reset(reset_s)),
        ]
    return tuple(result)


def format_reset(seconds: float) -> str:
    """A duration as OpenAI's headers write it: "20ms", "1s", "1.5s", "6m0s", "1h2m3s"."""
    millis = max(0, round(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms" if millis else "0s"
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _text_chars(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):  # OpenAI content parts, or a list of prompts
        total = 0
        for part in value:
            if isinstance(part, str):
                total += len(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                total += len(part["text"])
        return total
    return 0


def _input_tokens(value: object) -> int:
    """Embeddings input: strings by chars/4 (+1 each), token-id arrays by their length."""
    items = value if isinstance(value, list) else [value]
    total = 0
    for item in items:
        if isinstance(item, str):
            total += len(item) // 4 + 1
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1
        elif isinstance(item, list):
            total += len(item)
    return total


def _answer_cap(body: Mapping[str, Any], completion_estimate: int) -> int:
    options = body.get("options")
    candidates = [
        options.get("num_predict") if isinstance(options, Mapping) else None,
        body.get("max_completion_tokens"),
        body.get("max_tokens"),
    ]
    for cap in candidates:
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            return cap
    return completion_estimate
