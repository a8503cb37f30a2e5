"""One relayed request after its key: concurrency, body and model, rate limits, nodes, relay.

The steps, in order: per-key concurrency (429, limited routes only; before the body is read,
so a key at its limit holds no body in memory) -> the body (413 over MAX_BODY) -> the model,
read as Ollama will read it (400, bodies.py), allowed by the key's globs (403) and listed by
some node (404) -> the rate limits (429, limited routes) -> the balancer's order over the pool
(503 when no node can take it) -> proxy.relay, which answers the client -> the reservation
settled against the counted tokens, or refunded whole when nothing ran (the gateway's own 502,
503 or 504). Errors the gateway answers itself are raised as asgi.Refused.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

from ollama_fleet.gateway.accesslog import Exchange
from ollama_fleet.gateway.answers import not_found
from ollama_fleet.gateway.asgi import Headers, Refused, header, read_body
from ollama_fleet.gateway.balancer import order
from ollama_fleet.gateway.bodies import MODEL_FIELDS, SHOW_FIELDS, BadBody, read_request
from ollama_fleet.gateway.health import WAKE_GAP_S, HealthChecker
from ollama_fleet.gateway.keys import authorize
from ollama_fleet.gateway.limits import Refusal, estimate_tokens, prompt_tokens
from ollama_fleet.gateway.nodes import Pool
from ollama_fleet.gateway.proxy import NO_NODE_RETRY_AFTER_S, Outcome, relay
from ollama_fleet.gateway.ratelimits import Charge, LimitsUnavailable, RateLimits
from ollama_fleet.gateway.routes import Match
from ollama_fleet.gateway.settings import GatewayConfig, KeySpec
from ollama_fleet.gateway.shapes import Api
from ollama_fleet.gateway.upstream import Upstream

MAX_BODY = 16 * 1024 * 1024  # a chat with base64 images fits; beyond that it is a mistake
_NOTHING_RAN = frozenset({"queue_full", "queue_timeout", "no_node", "upstream_error"})


class Gateway(Protocol):
    """What a relayed request uses of the gateway (app.GatewayApp)."""

    config: GatewayConfig
    clock: Callable[[], float]
    rng: random.Random
    pool: Pool
    upstream: Upstream
    rate_limits: RateLimits
    health: HealthChecker

    def next_turn(self) -> int: ...
    def count_refused(self, key: str, which: str) -> None: ...


async def dispatch(
    gateway: Gateway,
    scope: Scope,
    receive: Receive,
    send: Send,
    found: Match,
    key: KeySpec,
    exchange: Exchange,
) -> None:
    """Relay one request of a relay route for `key`, or raise Refused (the gateway answers)."""
    if not found.route.limited:
        await _checked(gateway, scope, receive, send, found, key, exchange, limited=False)
        return
    async with entered(gateway, key):
        await _checked(gateway, scope, receive, send, found, key, exchange, limited=True)


@contextlib.asynccontextmanager
async def entered(gateway: Gateway, key: KeySpec) -> AsyncIterator[None]:
    """One more request of `key` in flight while inside; Refused 429 at its max_concurrent."""
    local = gateway.rate_limits.local  # the one entered: a reload may replace rate_limits
    if not local.try_enter(key):
        gateway.count_refused(key.name, "concurrency")
        message = f"key {key.name!r} has {key.max_concurrent} requests in flight already"
        retry = (("Retry-After", "1"),)
        raise Refused(429, message, outcome="rate_limited", code="concurrency", headers=retry)
    try:
        yield
    finally:
        local.leave(key)


async def model_known(gateway: Gateway, model: str) -> bool:
    """Whether some node lists `model` (catalogues read again first when none does)."""
    if not gateway.pool.knows_model(model):
        await gateway.health.refresh_catalogues()  # pulled a moment ago, not yet listed?
    return gateway.pool.knows_model(model)


async def _checked(
    gateway: Gateway,
    scope: Scope,
    receive: Receive,
    send: Send,
    found: Match,
    key: KeySpec,
    exchange: Exchange,
    *,
    limited: bool,
) -> None:
    """Read and check the body (400, 403, 404), then the rate limits, then relay."""
    body = await read_body(receive, MAX_BODY)
    fields = SHOW_FIELDS if found.route.path == "/api/show" else MODEL_FIELDS
    try:
        request = read_request(body, fields=fields)
    except BadBody as exc:
        raise Refused(400, str(exc), outcome="bad_request") from None
    model = request.model
    assert found.route.kind is not None
    authorize(key, route=found.route.kind, model=model)
    exchange.model = model
    if not await model_known(gateway, model):
        message = not_found(api=found.route.api, model=model)
        raise Refused(404, message, outcome="no_model", code="model_not_found")
    api: Api = "openai" if found.route.api == "openai" else "ollama"  # what relay routes speak
    path = found.route.path
    if not limited:
        await forward(gateway, scope, receive, send, body=body, api=api, path=path, key=key,
                      model=model, exchange=exchange, limit_headers=())  # fmt: skip
        return
    reservation = await reserve(gateway, key, request.payload)
    outcome: Outcome | None = None
    try:
        outcome = await forward(
            gateway,
            scope,
            receive,
            send,
            body=body,
            api=api,
            path=path,
            key=key,
            model=model,
            exchange=exchange,
            limit_headers=reservation.headers,
        )
    finally:
        await settle(gateway, reservation, outcome)


async def reserve(gateway: Gateway, key: KeySpec, payload: Mapping[str, Any]) -> Charge:
    """Charge the rate limits for a request with this body; Refused 429 when they refuse, 503
    when they cannot be read (Redis away with redis.on_error closed)."""
    limits = gateway.config.limits
    try:
        reservation = await gateway.rate_limits.reserve(
            key,
            estimate_tokens=estimate_tokens(
                payload, completion_estimate=limits.completion_estimate
            ),
            prompt_tokens=prompt_tokens(payload),
            now=gateway.clock(),
        )
    except LimitsUnavailable:
        message = "the rate limits cannot be checked now (their Redis is unavailable)"
        retry = (("Retry-After", str(NO_NODE_RETRY_AFTER_S)),)
        raise Refused(503, message, outcome="limits_unavailable", headers=retry) from None
    if isinstance(reservation, Refusal):
        gateway.count_refused(key.name, reservation.which)
        raise _rate_limited(reservation)
    return reservation


async def settle(gateway: Gateway, reservation: Charge, outcome: Outcome | None) -> None:
    """Settle the charge against the tokens counted, or refund it when nothing ran."""
    if outcome is None or outcome.kind in _NOTHING_RAN:  # the gateway's own 5xx
        await reservation.refund(now=gateway.clock())
        return
    used = None if outcome.started else 0  # the client left before the answer
    if outcome.tokens_in is not None:
        used = outcome.tokens_in + (outcome.tokens_out or 0)
    await reservation.settle(used, now=gateway.clock())


async def forward(
    gateway: Gateway,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    body: bytes,
    api: Api,
    path: str,
    key: KeySpec,
    model: str,
    exchange: Exchange,
    limit_headers: Headers,
) -> Outcome:
    """Order the nodes for `model` and relay `body` to `path` on the first that takes it
    (Refused 503 when none can); the relay answers the client through `send`."""
    balancing = gateway.config.balancing

    def choose() -> tuple[str, ...]:
        return order(
            gateway.pool.views(model),
            strategy=balancing.strategy,
            prefer_loaded=balancing.prefer_loaded,
            affinity=header(scope, balancing.hash_header.lower().encode()) or key.name,
            turn=gateway.next_turn(),
            rng=gateway.rng,
        )

    candidates = choose()
    if not candidates and not any(s.healthy for s in gateway.pool.snapshot()):
        # every node down: one fresh check of each first, in case one just came back
        await gateway.health.recheck(gateway.config.health.timeout_s + WAKE_GAP_S)
        candidates = choose()
    if not candidates:
        message = f"no node can take a request for {model!r} now (down, drained or full)"
        headers = (("Retry-After", str(NO_NODE_RETRY_AFTER_S)), *limit_headers)
        raise Refused(503, message, outcome="no_node", headers=headers)
    started = gateway.clock()
    exchange.added_latency_s = started - exchange.arrived
    outcome = await relay(
        scope,
        receive,
        send,
        body=body,
        candidates=candidates,
        pool=gateway.pool,
        upstream=gateway.upstream,
        api=api,
        path=path,
        queue_timeout_s=balancing.queue_timeout_s,
        extra_headers=limit_headers,
    )
    exchange.relayed(outcome, waited_s=started - exchange.arrived)
    if outcome.kind == "ok" and outcome.status == 200 and outcome.node is not None:
        gateway.pool.mark_loaded(outcome.node, model)
    return outcome


def _rate_limited(refusal: Refusal) -> Refused:
    headers: list[tuple[str, str]] = list(refusal.headers)
    if refusal.retry_after_s is not None:
        headers.insert(0, ("Retry-After", str(max(1, math.ceil(refusal.retry_after_s)))))
    return Refused(
        429, refusal.message, outcome="rate_limited", headers=headers, code=refusal.which
    )
