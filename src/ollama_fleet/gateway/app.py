"""The gateway's ASGI app: route, authenticate, answer or dispatch, record.

A pure ASGI callable (no framework on the streaming path). Per request: the route table
(routes.py) -> the key (401) -> its role (403) -> one of: a relayed request (dispatch.py:
concurrency, body and model, rate limits, the nodes, proxy.relay), the catalogue routes
(/api/tags, /api/ps, /api/version, /v1/models: answers.py) or the admin API (admin.py) ->
metrics, usage, access log. The lifespan starts the health checks (and waits for their first
round, bounded) and closes the upstream session.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.types import Receive, Scope, Send

from ollama_fleet.errors import FleetError
from ollama_fleet.gateway import accesslog, admin, chat_page, shapes
from ollama_fleet.gateway.accesslog import Exchange
from ollama_fleet.gateway.answers import CATALOG, catalog
from ollama_fleet.gateway.asgi import (
    Refused,
    answer,
    dump,
    header,
    read_body,
    stream_lines,
)
from ollama_fleet.gateway.dispatch import dispatch
from ollama_fleet.gateway.health import WAKE_GAP_S, HealthChecker
from ollama_fleet.gateway.keys import Authenticator, AuthError, authorize, normalise_model
from ollama_fleet.gateway.metrics import CONTENT_TYPE, GatewayMetrics, Services
from ollama_fleet.gateway.nodes import Pool
from ollama_fleet.gateway.ratelimits import RateLimits, make_rate_limits
from ollama_fleet.gateway.routes import (
    SESSION_ACTIONS,
    Action,
    Match,
    WrongMethod,
    api_of,
    find,
)
from ollama_fleet.gateway.sessions import api as sessions_api
from ollama_fleet.gateway.sessions.chat import chat
from ollama_fleet.gateway.sessions.database import Database
from ollama_fleet.gateway.sessions.problems import CONTENT_TYPE as PROBLEM_TYPE
from ollama_fleet.gateway.sessions.problems import Problem, problem_body, slug_for
from ollama_fleet.gateway.settings import GatewayConfig, KeySpec
from ollama_fleet.gateway.upstream import Upstream

log = logging.getLogger(__name__)

MAX_ADMIN_BODY = 64 * 1024
MAX_SESSIONS_BODY = 64 * 1024
ROOT_TEXT = b"ollama-fleet gateway"
WRITE_REFUSED = (
    "this gateway refuses Ollama's write endpoints for every key: pull and delete models "
    "with `ollama-fleet gateway pull` / `ollama-fleet gateway delete` (the /admin API)"
)
_QUIET = frozenset({Action.HEALTH, Action.READY, Action.METRICS, Action.ROOT, Action.CHAT_PAGE})


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
        self.rate_limits: RateLimits = make_rate_limits(
            keys=config.keys, limits=config.limits, shared=config.shared_limits
        )
        self._retired: list[RateLimits] = []  # replaced by a reload, closed at shutdown
        self.usage = admin.UsageTally()
        self.database = Database(config.sessions)
        self.metrics = GatewayMetrics(nodes=self.pool.snapshot, services=self._services)
        self._turn = 0

    def reconfigure(self, config: GatewayConfig) -> None:
        """A new config: nodes, keys and limits change at once; requests in flight go on.
        History bounds and the flush interval apply to the next turn; a new database_url
        takes effect on restart."""
        old = self.config
        if config.sessions.database_url != old.sessions.database_url:
            log.warning("gateway: sessions.database_url changed; it takes effect on restart")
        self.config = config
        self.pool.reconfigure(config)
        self.authenticator = Authenticator(config.keys)
        if config.shared_limits.redis_url != old.shared_limits.redis_url:
            self._retired.append(self.rate_limits)  # its requests in flight settle on it
            self.rate_limits = make_rate_limits(
                keys=config.keys, limits=config.limits, shared=config.shared_limits
            )
        else:
            self.rate_limits.reconfigure(
                keys=config.keys, limits=config.limits, shared=config.shared_limits
            )
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
                try:
                    await self.database.start()
                except FleetError as exc:  # a database newer than this gateway
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.health.start()
                await self.health.first_round(self.config.health.timeout_s + 1.0)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.health.stop()
                await self.database.stop()
                for limits in (*self._retired, self.rate_limits):
                    await limits.aclose()
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
        except Problem as exc:
            exchange.outcome = "refused" if exc.status < 500 else "unavailable"
            body = problem_body(exc.status, exc.slug, exc.detail, instance=path,
                                field=exc.field, session_id=exc.session_id)  # fmt: skip
            await answer(send, exchange, exc.status, body, content_type=PROBLEM_TYPE,
                         headers=exc.headers)  # fmt: skip
        except Refused as exc:
            exchange.outcome = exc.outcome
            if api == "sessions":
                slug = slug_for(exc.status)
                body = problem_body(exc.status, slug, exc.message, instance=path)
                await answer(send, exchange, exc.status, body, content_type=PROBLEM_TYPE,
                             headers=exc.headers)  # fmt: skip
            else:
                body = shapes.error_body(api, exc.message, status=exc.status, code=exc.code)
                await answer(send, exchange, exc.status, body, headers=exc.headers)
        if exchange.outcome == "no_node":  # a node that came back is found now, not later
            self.health.wake()
        if not isinstance(found, Match) or found.route.action not in _QUIET:
            self._record(exchange)

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, found: Match, exchange: Exchange
    ) -> None:
        route, action = found.route, found.route.action
        if route.kind is None:
            await self._open_route(send, exchange, action, scope["path"])
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
                await dispatch(self, scope, receive, send, found, key, exchange)
            elif action in SESSION_ACTIONS:
                await self._sessions(scope, receive, send, found, key, exchange)
            elif action in CATALOG:
                if not any(state.healthy for state in self.pool.snapshot()):
                    await self.health.recheck(self.config.health.timeout_s + WAKE_GAP_S)
                await self.health.refresh_catalogues()
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

    def _services(self) -> Services:
        return Services(
            redis_up=self.rate_limits.redis_up,
            redis_errors=self.rate_limits.redis_errors,
            database_up=self.database.up,
            database_writes=self.database.writes,
        )

    async def _health(self) -> dict[str, object]:
        """{"status": ok|degraded, "services": {"database": ..., "ollama": ...}} (no details:
        /health needs no key)."""
        ollama = "ok" if any(s.healthy for s in self.pool.snapshot()) else "unavailable"
        services = {"database": await self.database.status(), "ollama": ollama}
        status = "ok" if all(v == "ok" for v in services.values()) else "degraded"
        return {"status": status, "services": services}

    async def _sessions(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        found: Match,
        key: KeySpec,
        exchange: Exchange,
    ) -> None:
        """The sessions API: /v1/chat streams; the rest answer JSON (DELETE: 204)."""
        action, session_id = found.route.action, found.param or ""
        if action is Action.SESSIONS_CHAT:
            await chat(self, self.database, scope, receive, send, key=key, exchange=exchange)
            return
        if action is Action.SESSIONS_LIST:
            query = scope.get("query_string", b"")
            result = await sessions_api.list_sessions(self.database, key=key, query=query)
        elif action is Action.SESSIONS_MESSAGES:
            result = await sessions_api.messages(self.database, session_id, key=key)
        elif action is Action.SESSIONS_RENAME:
            body = await read_body(receive, MAX_SESSIONS_BODY)
            result = await sessions_api.rename(self.database, session_id, key=key, body=body)
        else:
            await sessions_api.delete(self.database, session_id, key=key)
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            exchange.answered(204, 0)
            return
        await answer(send, exchange, 200, dump(result))

    async def _open_route(self, send: Send, exchange: Exchange, action: Action, path: str) -> None:
        if action is Action.ROOT:
            await answer(send, exchange, 200, ROOT_TEXT, content_type="text/plain")
        elif action is Action.HEALTH:
            await answer(send, exchange, 200, dump(await self._health()))
        elif action is Action.CHAT_PAGE:
            found = chat_page.asset(path)
            if found is None:
                raise Refused(404, "404 page not found", outcome="not_found")
            await answer(send, exchange, 200, found.body, content_type=found.content_type,
                         headers=found.headers)  # fmt: skip
        elif action is Action.READY:
            ready = any(state.healthy for state in self.pool.snapshot())
            body = b'{"status":"ready"}' if ready else b'{"status":"no healthy node"}'
            if not ready:
                self.health.wake()  # a load balancer asking is as good as a request
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
            await stream_lines(send, receive, exchange, result)

    def next_turn(self) -> int:
        """The round-robin counter, one step on."""
        self._turn += 1
        return self._turn

    def count_refused(self, key: str, which: str) -> None:
        """A limit refused a request of `key`: `which` is requests, tokens or concurrency."""
        self.metrics.count_rate_limited(key=key, which=which)
        self.usage.count_rate_limited(key)

    def _record(self, exchange: Exchange) -> None:
        # one series per model the fleet has, however a client spells it
        known = exchange.model and self.pool.knows_model(exchange.model)
        model = normalise_model(exchange.model) if exchange.model and known else ""
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
