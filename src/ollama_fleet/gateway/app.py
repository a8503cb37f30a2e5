"""The gateway's ASGI app: route, authenticate, limit, choose nodes, relay, record.

A pure ASGI callable (no framework on the streaming path). Per request: the route table
(routes.py) -> the key (401) -> its role (403) -> the body (413 over MAX_BODY) -> the model
(400; 403 for a model the key may not use) -> per-key concurrency and the rate limits (429;
chat, generate, embeddings and completions only) -> the balancer's order over the pool (404
when no node lists the model, 503 when none can take it) -> proxy.relay, which answers the
client -> tokens settled, metrics, access log. The catalogue routes (/api/tags, /api/ps,
/api/version, /v1/models) are answered by answers.py. The lifespan starts the health checks
(and waits for their first round, bounded) and closes the upstream session.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.types import Receive, Scope, Send

from ollama_fleet.gateway import accesslog, admin, shapes
from ollama_fleet.gateway.accesslog import Exchange
from ollama_fleet.gateway.answers import CATALOG, RETRY_NO_NODE_S, catalog, not_found
from ollama_fleet.gateway.asgi import (
    Headers,
    Refused,
    answer,
    dump,
    header,
    json_object,
    read_body,
    stream_lines,
)
from ollama_fleet.gateway.balancer import order
from ollama_fleet.gateway.health import HealthChecker
from ollama_fleet.gateway.keys import Authenticator, AuthError, authorize
from ollama_fleet.gateway.limits import Limiter, Refusal, estimate_tokens
from ollama_fleet.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from ollama_fleet.gateway.nodes import Pool
from ollama_fleet.gateway.proxy import Outcome, relay
from ollama_fleet.gateway.routes import Action, Match, WrongMethod, api_of, find
from ollama_fleet.gateway.settings import GatewayConfig, KeySpec
from ollama_fleet.gateway.upstream import Upstream

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024  # a chat with base64 images fits; beyond that it is a mistake
MAX_ADMIN_BODY = 64 * 1024
ROOT_TEXT = b"ollama-fleet gateway"
WRITE_REFUSED = (
    "this gateway refuses Ollama's write endpoints for every key: pull and delete models "
    "with `ollama-fleet gateway pull` / `ollama-fleet gateway delete` (the /admin API)"
)
_QUIET = frozenset({Action.HEALTH, Action.READY, Action.METRICS, Action.ROOT})


class GatewayApp:
    """One gateway: its config, pool, limits, health checks and metrics; an ASGI callable."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        pool: Pool | None = None,
        upstream: Upstream | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.pool = pool if pool is not None else Pool(config, clock=clock)
        self.upstream = upstream if upstream is not None else Upstream(config.timeouts)
        self.health = HealthChecker(self.pool, self.upstream, config.health, clock=clock)
        self.authenticator = Authenticator(config.keys)
        self.limiter = Limiter(keys=config.keys, limits=config.limits)
        self.metrics = GatewayMetrics(nodes=self.pool.snapshot)
        self.usage = admin.UsageTally()
        self._turn = 0

    def reconfigure(self, config: GatewayConfig) -> None:
        """A new config: nodes, keys and limits change at once; requests in flight go on."""
        self.config = config
        self.pool.reconfigure(config)
        self.authenticator = Authenticator(config.keys)
        self.limiter.reconfigure(keys=config.keys, limits=config.limits)
        self.upstream.timeouts = config.timeouts
        self.health.reconfigure(config.health)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.health.start()
                await self.health.first_round(self.config.health.timeout_s + 1.0)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.health.stop()
                await self.upstream.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        exchange = Exchange(arrived=self.clock(), ts=time.time(), method=scope["method"], path=path)
        found = find(scope["method"], path)
        api = found.route.api if isinstance(found, Match) else api_of(path)
        try:
            if isinstance(found, WrongMethod):
                allow = (("Allow", ", ".join(sorted(found.allowed))),)
                raise Refused(405, "method not allowed", outcome="not_found", headers=allow)
            if found is None:
                raise Refused(404, "404 page not found", outcome="not_found")
            await self._route(scope, receive, send, found, exchange)
        except Refused as exc:
            exchange.outcome = exc.outcome
            body = shapes.error_body(api, exc.message, status=exc.status, code=exc.code)
            await answer(send, exchange, exc.status, body, headers=exc.headers)
        if not isinstance(found, Match) or found.route.action not in _QUIET:
            self._record(exchange)

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, found: Match, exchange: Exchange
    ) -> None:
        route, action = found.route, found.route.action
        if route.kind is None:
            await self._open_route(send, exchange, action)
            return
        try:
            key = self.authenticator.authenticate(
                header(scope, b"authorization"), now=datetime.now(UTC)
            )
            exchange.key = key.name
            if action is Action.WRITE_REFUSED:
                raise Refused(403, WRITE_REFUSED, outcome="forbidden")
            authorize(key, route=route.kind, model=None)
            if action is Action.RELAY:
                await self._relay(scope, receive, send, found, key, exchange)
            elif action in CATALOG:
                listing = catalog(
                    action,
                    found.param,
                    key,
                    nodes=self.pool.snapshot(),
                    tags=self.health.tags,
                    ps=self.health.ps,
                )
                await answer(send, exchange, 200, dump(listing))
            else:
                await self._admin(receive, send, found, exchange)
        except AuthError as exc:
            outcome = "unauthorized" if exc.status == 401 else "forbidden"
            bearer = (("WWW-Authenticate", "Bearer"),) if exc.status == 401 else ()
            raise Refused(exc.status, exc.message, outcome=outcome, headers=bearer) from None
        except admin.AdminError as exc:
            raise Refused(exc.status, exc.message, outcome="refused") from None

    async def _open_route(self, send: Send, exchange: Exchange, action: Action) -> None:
        if action is Action.ROOT:
            await answer(send, exchange, 200, ROOT_TEXT, content_type="text/plain")
        elif action is Action.HEALTH:
            await answer(send, exchange, 200, b'{"status":"ok"}')
        elif action is Action.READY:
            ready = any(state.healthy for state in self.pool.snapshot())
            body = b'{"status":"ready"}' if ready else b'{"status":"no healthy node"}'
            await answer(send, exchange, 200 if ready else 503, body)
        else:
            await answer(send, exchange, 200, self.metrics.render(), content_type=CONTENT_TYPE)

    async def _admin(self, receive: Receive, send: Send, found: Match, exchange: Exchange) -> None:
        body = await read_body(receive, MAX_ADMIN_BODY)
        result = await admin.handle(
            found.route.action,
            found.param,
            body,
            pool=self.pool,
            upstream=self.upstream,
            health=self.health,
            usage=self.usage,
        )
        if isinstance(result, dict):
            await answer(send, exchange, 200, dump(result))
        else:
            await stream_lines(send, exchange, result)

    async def _relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        found: Match,
        key: KeySpec,
        exchange: Exchange,
    ) -> None:
        body = await read_body(receive, MAX_BODY)
        payload = json_object(body)
        model = None if payload is None else payload.get("model", payload.get("name"))
        if payload is None or not isinstance(model, str) or not model.strip():
            problem = "the body is not a JSON object" if payload is None else "model is required"
            raise Refused(400, problem, outcome="bad_request")
        assert found.route.kind is not None
        authorize(key, route=found.route.kind, model=model)
        exchange.model = model
        if not self.pool.knows_model(model):
            message = not_found(api=found.route.api, model=model)
            raise Refused(404, message, outcome="no_model", code="model_not_found")
        if not found.route.limited:
            await self._send_on(scope, receive, send, body, found, key, model, exchange, ())
            return
        if not self.limiter.try_enter(key):
            self._refused(key.name, "concurrency")
            message = f"key {key.name!r} has {key.max_concurrent} requests in flight already"
            raise Refused(429, message, outcome="rate_limited", code="concurrency")
        try:
            estimate = estimate_tokens(
                payload, completion_estimate=self.config.limits.completion_estimate
            )
            reservation = self.limiter.reserve(key, estimate_tokens=estimate, now=self.clock())
            if isinstance(reservation, Refusal):
                self._refused(key.name, reservation.which)
                raise _rate_limited(reservation)
            outcome = await self._send_on(
                scope, receive, send, body, found, key, model, exchange, reservation.headers
            )
            used = None if outcome.started else 0  # nothing ran: refund the estimate
            if outcome.tokens_in is not None:
                used = outcome.tokens_in + (outcome.tokens_out or 0)
            reservation.settle(used, now=self.clock())
        finally:
            self.limiter.leave(key)

    async def _send_on(
        self,
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
        balancing = self.config.balancing
        self._turn += 1
        candidates = order(
            self.pool.views(model),
            strategy=balancing.strategy,
            prefer_loaded=balancing.prefer_loaded,
            affinity=header(scope, balancing.hash_header.lower().encode()) or key.name,
            turn=self._turn,
            rng=self.rng,
        )
        if not candidates:
            message = f"no node can take a request for {model!r} now (down, drained or full)"
            headers = (("Retry-After", str(RETRY_NO_NODE_S)), *limit_headers)
            raise Refused(503, message, outcome="no_node", headers=headers)
        started = self.clock()
        exchange.added_latency_s = started - exchange.arrived
        outcome = await relay(
            scope,
            receive,
            send,
            body=body,
            candidates=candidates,
            pool=self.pool,
            upstream=self.upstream,
            api=found.route.api,
            path=found.route.path,
            queue_timeout_s=balancing.queue_timeout_s,
            extra_headers=limit_headers,
        )
        exchange.relayed(outcome, waited_s=started - exchange.arrived)
        if outcome.kind == "ok" and outcome.status == 200 and outcome.node is not None:
            self.pool.mark_loaded(outcome.node, model)
        return outcome

    def _refused(self, key: str, which: str) -> None:
        self.metrics.count_rate_limited(key=key, which=which)
        self.usage.count_rate_limited(key)

    def _record(self, exchange: Exchange) -> None:
        model = exchange.model if exchange.model and self.pool.knows_model(exchange.model) else ""
        self.metrics.observe_request(
            key=exchange.key or "",
            model=model,
            node=exchange.node or "",
            status=exchange.status,
            ttfb_s=exchange.ttfb_s,
            tokens_in=exchange.tokens_in,
            tokens_out=exchange.tokens_out,
            added_latency_s=exchange.added_latency_s,
        )
        if exchange.key is not None and exchange.outcome not in ("unauthorized", "rate_limited"):
            self.usage.count(
                exchange.key, tokens_in=exchange.tokens_in, tokens_out=exchange.tokens_out
            )
        if self.config.access_log:
            accesslog.write(exchange.record(duration_s=self.clock() - exchange.arrived))


def create_app(
    config: GatewayConfig,
    *,
    pool: Pool | None = None,
    upstream: Upstream | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> GatewayApp:
    """The gateway for `config` (its pool and upstream client made from it unless given)."""
    return GatewayApp(config, pool=pool, upstream=upstream, clock=clock)


def _rate_limited(refusal: Refusal) -> Refused:
    headers: list[tuple[str, str]] = list(refusal.headers)
    if refusal.retry_after_s is not None:
        headers.insert(0, ("Retry-After", str(max(1, math.ceil(refusal.retry_after_s)))))
    return Refused(
        429, refusal.message, outcome="rate_limited", headers=headers, code=refusal.which
    )
