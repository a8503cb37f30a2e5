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

import math
import random
from collections.abc import Callable
from typing import Protocol

from starlette.types import Receive, Scope, Send

from ollama_fleet.gateway.accesslog import Exchange
from ollama_fleet.gateway.answers import not_found
from ollama_fleet.gateway.asgi import Headers, Refused, header, read_body
from ollama_fleet.gateway.balancer import order
from ollama_fleet.gateway.bodies import MODEL_FIELDS, SHOW_FIELDS, BadBody, read_request
from ollama_fleet.gateway.health import WAKE_GAP_S, HealthChecker
from ollama_fleet.gateway.keys import authorize
from ollama_fleet.gateway.limits import Limiter, Refusal, estimate_tokens, prompt_tokens
from ollama_fleet.gateway.nodes import Pool
from ollama_fleet.gateway.proxy import NO_NODE_RETRY_AFTER_S, Outcome, relay
from ollama_fleet.gateway.routes import Match
from ollama_fleet.gateway.settings import GatewayConfig, KeySpec
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
    limiter: Limiter
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
    if not gateway.limiter.try_enter(key):
        gateway.count_refused(key.name, "concurrency")
        message = f"key {key.name!r} has {key.max_concurrent} requests in flight already"
        retry = (("Retry-After", "1"),)
        raise Refused(429, message, outcome="rate_limited", code="concurrency", headers=retry)
    try:
        await _checked(gateway, scope, receive, send, found, key, exchange, limited=True)
    finally:
        gateway.limiter.leave(key)


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
    if not gateway.pool.knows_model(model):
        await gateway.health.refresh_catalogues()  # pulled a moment ago, not yet listed?
    if not gateway.pool.knows_model(model):
        message = not_found(api=found.route.api, model=model)
        raise Refused(404, message, outcome="no_model", code="model_not_found")
    if not limited:
        await _send_on(gateway, scope, receive, send, body, found, key, model, exchange, ())
        return
    limits = gateway.config.limits
    reservation = gateway.limiter.reserve(
        key,
        estimate_tokens=estimate_tokens(
            request.payload, completion_estimate=limits.completion_estimate
        ),
        prompt_tokens=prompt_tokens(request.payload),
        now=gateway.clock(),
    )
    if isinstance(reservation, Refusal):
        gateway.count_refused(key.name, reservation.which)
        raise _rate_limited(reservation)
    outcome: Outcome | None = None
    try:
        outcome = await _send_on(
            gateway, scope, receive, send, body, found, key, model, exchange, reservation.headers
        )
    finally:
        if outcome is None or outcome.kind in _NOTHING_RAN:  # the gateway's own 5xx
            reservation.refund(now=gateway.clock())
        else:
            used = None if outcome.started else 0  # the client left before the answer
            if outcome.tokens_in is not None:
                used = outcome.tokens_in + (outcome.tokens_out or 0)
            reservation.settle(used, now=gateway.clock())


async def _send_on(
    gateway: Gateway,
    scope: Scope,
    receive: Receive,
    send: Send,
    body: bytes,
    found: Match,
    key: KeySpec,
    model: str,
    exchange: Exchange,
    limit_headers: Headers,
) -> Outcome:
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
        api=found.route.api,
        path=found.route.path,
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
