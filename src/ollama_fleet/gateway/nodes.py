"""The gateway's nodes at run time: slots, per-node FIFO queues, breakers, health and models.

No I/O: health.py feeds health and models in, proxy.py takes and gives back slots. Each node
has `max_parallel` slots and a queue of `queue` waiters; a released slot goes straight to the
oldest waiter (no wake-up of all of them), a waiter that times out or whose client went away
leaves the queue without taking a slot. A drained node, one whose breaker opens or one that
turns unhealthy sends its waiters NodeUnavailable at once so they can try another node; what
is in flight finishes. A node removed by a reload drains and vanishes once it is idle.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ollama_fleet.errors import FleetError
from ollama_fleet.gateway.balancer import NodeView
from ollama_fleet.gateway.breaker import (
    CLOSED,
    BreakerState,
    Circuit,
    allow,
    on_failure,
    on_success,
)
from ollama_fleet.gateway.keys import normalise_model
from ollama_fleet.gateway.settings import Breaker, GatewayConfig, NodeSpec

log = logging.getLogger(__name__)

Result = Literal["success", "failure", "cancel"]
MIN_RETRY_AFTER_S, MAX_RETRY_AFTER_S = 1, 60
_HOLD_WEIGHT = 0.2  # of the newest slot hold time in the running mean


class QueueFull(FleetError):
    """The node's queue is full; try another node or come back after `retry_after_s`."""

    def __init__(self, node: str, *, retry_after_s: int) -> None:
        super().__init__(f"node {node}: queue full")
        self.node = node
        self.retry_after_s = retry_after_s


class QueueTimeout(FleetError, TimeoutError):
    """No slot of the node came free within the queue timeout."""

    def __init__(self, node: str, *, retry_after_s: int) -> None:
        super().__init__(f"node {node}: no free slot in time")
        self.node = node
        self.retry_after_s = retry_after_s


class NodeUnavailable(FleetError):
    """The node is drained, unhealthy or its breaker is open (since it was chosen)."""

    def __init__(self, node: str, why: str) -> None:
        super().__init__(f"node {node}: {why}")
        self.node = node


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeState:
    """One node as the admin API shows it."""

    name: str
    url: str
    healthy: bool | None  # None: not checked yet
    last_error: str | None
    version: str | None
    breaker: str  # closed | open | half-open
    draining: bool
    in_flight: int
    queued: int
    max_parallel: int
    queue: int
    models: tuple[str, ...]
    loaded: tuple[str, ...]


class NodeRuntime:
    """The mutable state of one node (owned by the Pool, one event loop)."""

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.in_flight = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.draining = False
        self.retired = False  # removed by a reload: vanishes when idle
        self.breaker: BreakerState = CLOSED
        self.healthy: bool | None = None
        self.last_error: str | None = None
        self.version: str | None = None
        self.models: dict[str, str] = {}  # name -> digest, from /api/tags
        self.loaded: set[str] = set()  # from /api/ps and requests that succeeded
        self.refreshed_at: float | None = None
        self.mean_hold_s = 1.0

    def retry_after_s(self) -> int:
        """A guess at when a slot is free for one more waiter: the queue's turn at the mean
        slot hold time."""
        waves = (len(self.waiters) + 1) / max(self.spec.max_parallel, 1)
        guess = math.ceil(self.mean_hold_s * waves)
        return min(max(guess, MIN_RETRY_AFTER_S), MAX_RETRY_AFTER_S)


class Slot:
    """The right to send one request to `node`; release it exactly once (again is a no-op)."""

    def __init__(self, pool: Pool, runtime: NodeRuntime, *, started: float) -> None:
        self._pool = pool
        self._runtime = runtime
        self._started = started
        self._released = False
        self.node = runtime.spec.name
        self.spec = runtime.spec

    def release(self, result: Result) -> None:
        """Give the slot back; `failure` counts for the breaker, `cancel` does not."""
        if self._released:
            return
        self._released = True
        self._pool._release(self._runtime, result, started=self._started)


class Pool:
    """Every node of the gateway, with slots handed out in FIFO order per node."""

    def __init__(self, config: GatewayConfig, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._breaker_cfg: Breaker = config.breaker
        self._nodes: dict[str, NodeRuntime] = {n.name: NodeRuntime(n) for n in config.nodes}
        self._retired: dict[str, NodeRuntime] = {}

    def names(self) -> list[str]:
        """The configured nodes' names, in config order."""
        return list(self._nodes)

    def spec(self, name: str) -> NodeSpec:
        """The configured node `name` (KeyError when there is none)."""
        return self._nodes[name].spec

    def _usable(self, runtime: NodeRuntime, now: float) -> bool:
        if runtime.draining or runtime.healthy is False:
            return False
        allowed, _ = allow(runtime.breaker, now=now, cfg=self._breaker_cfg)
        return allowed

    def views(self, model: str | None) -> list[NodeView]:
        """What the balancer needs of each node for a request for `model` (None: any)."""
        now = self._clock()
        wanted = normalise_model(model) if model is not None else None
        return [
            NodeView(
                name=name,
                weight=rt.spec.weight,
                usable=self._usable(rt, now),
                in_flight=rt.in_flight,
                max_parallel=rt.spec.max_parallel,
                queued=len(rt.waiters),
                queue_size=rt.spec.queue,
                has_model=wanted is None or wanted in rt.models,
                loaded=wanted is not None and wanted in rt.loaded,
            )
            for name, rt in self._nodes.items()
        ]

    def knows_model(self, model: str) -> bool:
        """True when some node, healthy or not, lists `model` in its /api/tags."""
        wanted = normalise_model(model)
        return any(wanted in rt.models for rt in self._nodes.values())

    async def acquire(self, name: str, *, timeout_s: float) -> Slot:
        """A slot on node `name`, waiting in its queue for at most `timeout_s`.

        Raises QueueFull, QueueTimeout or NodeUnavailable (also for a node no longer there).
        """
        runtime = self._nodes.get(name)
        if runtime is None:
            raise NodeUnavailable(name, "not in the configuration")
        breaker = self._check_available(runtime)
        if runtime.in_flight < runtime.spec.max_parallel and not runtime.waiters:
            runtime.breaker = breaker
            runtime.in_flight += 1
            return Slot(self, runtime, started=self._clock())
        if len(runtime.waiters) >= runtime.spec.queue:
            raise QueueFull(name, retry_after_s=runtime.retry_after_s())
        runtime.breaker = breaker  # committed only now: a refused request takes no probe
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        runtime.waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            self._leave_queue(runtime, waiter)
            raise QueueTimeout(name, retry_after_s=runtime.retry_after_s()) from None
        except asyncio.CancelledError:
            self._leave_queue(runtime, waiter)
            raise
        return Slot(self, runtime, started=self._clock())

    def _check_available(self, runtime: NodeRuntime) -> BreakerState:
        """The breaker state to keep if the request goes on (it may hold the half-open probe:
        the caller commits it only once the request has a slot or a place in the queue)."""
        name = runtime.spec.name
        if runtime.draining:
            raise NodeUnavailable(name, "draining")
        if runtime.healthy is False:
            raise NodeUnavailable(name, "unhealthy")
        allowed, state = allow(runtime.breaker, now=self._clock(), cfg=self._breaker_cfg)
        if not allowed:
            raise NodeUnavailable(name, "circuit breaker open")
        return state

    def _leave_queue(self, runtime: NodeRuntime, waiter: asyncio.Future[None]) -> None:
        if waiter in runtime.waiters:
            runtime.waiters.remove(waiter)
        # the slot came just as the wait ended: it is handed on, never kept by nobody
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self._hand_on(runtime)

    def _hand_on(self, runtime: NodeRuntime) -> None:
        """A slot came free: to the oldest live waiter, else back to the node."""
        while runtime.waiters:
            waiter = runtime.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        runtime.in_flight -= 1
        if runtime.retired and runtime.in_flight == 0:
            self._retired.pop(runtime.spec.name, None)

    def _reject_waiters(self, runtime: NodeRuntime, why: str) -> None:
        while runtime.waiters:
            waiter = runtime.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(NodeUnavailable(runtime.spec.name, why))

    def _release(self, runtime: NodeRuntime, result: Result, *, started: float) -> None:
        now = self._clock()
        held = max(now - started, 0.0)
        runtime.mean_hold_s += _HOLD_WEIGHT * (held - runtime.mean_hold_s)
        if result == "success":
            runtime.breaker = on_success(runtime.breaker)
        elif result == "failure":
            runtime.breaker = on_failure(runtime.breaker, now=now, cfg=self._breaker_cfg)
            if runtime.breaker.circuit is Circuit.OPEN:
                self._reject_waiters(runtime, "circuit breaker open")
        self._hand_on(runtime)

    def set_health(self, name: str, *, ok: bool, error: str | None, version: str | None) -> None:
        """The result of a health check (ignored for a node a reload removed meanwhile)."""
        runtime = self._nodes.get(name)
        if runtime is None:
            return
        if runtime.healthy is not False and not ok:
            log.warning("gateway: node %s is unhealthy: %s", name, error)
        elif runtime.healthy is False and ok:
            log.info("gateway: node %s is healthy again", name)
        runtime.healthy, runtime.last_error = ok, error
        runtime.version = version if ok else runtime.version
        if not ok:
            self._reject_waiters(runtime, "unhealthy")

    def set_models(
        self, name: str, *, tags: Iterable[Mapping[str, Any]], ps: Iterable[Mapping[str, Any]]
    ) -> None:
        """The node's /api/tags and /api/ps entries (ignored for a node no longer there)."""
        runtime = self._nodes.get(name)
        if runtime is None:
            return
        runtime.models = {
            normalise_model(entry["name"]): str(entry.get("digest", ""))
            for entry in tags
            if isinstance(entry.get("name"), str)
        }
        runtime.loaded = {
            normalise_model(str(entry.get("name") or entry.get("model")))
            for entry in ps
            if isinstance(entry.get("name") or entry.get("model"), str)
        }
        runtime.refreshed_at = self._clock()

    def mark_loaded(self, name: str, model: str) -> None:
        """A request for `model` succeeded on `name`: it is in memory there now."""
        runtime = self._nodes.get(name)
        if runtime is not None:
            runtime.loaded.add(normalise_model(model))

    def drain(self, name: str) -> None:
        """No new requests to `name`; its waiters go elsewhere, in-flight ones finish."""
        runtime = self._nodes[name]
        runtime.draining = True
        self._reject_waiters(runtime, "draining")

    def undrain(self, name: str) -> None:
        """`name` takes requests again."""
        self._nodes[name].draining = False

    def reconfigure(self, config: GatewayConfig) -> None:
        """Apply a reloaded config: kept nodes keep their state, removed ones drain and go."""
        self._breaker_cfg = config.breaker
        nodes: dict[str, NodeRuntime] = {}
        for spec in config.nodes:
            runtime = self._nodes.get(spec.name) or self._retired.pop(spec.name, None)
            if runtime is None:
                runtime = NodeRuntime(spec)
            elif runtime.retired:
                runtime.retired = runtime.draining = False
            runtime.spec = spec
            nodes[spec.name] = runtime
        for name, runtime in self._nodes.items():
            if name not in nodes:
                runtime.draining = runtime.retired = True
                self._reject_waiters(runtime, "removed from the configuration")
                if runtime.in_flight:
                    self._retired[name] = runtime
        self._nodes = nodes
        for runtime in nodes.values():  # more slots than before: let waiters in
            while runtime.waiters and runtime.in_flight < runtime.spec.max_parallel:
                runtime.in_flight += 1
                self._hand_on(runtime)

    def snapshot(self) -> list[NodeState]:
        """Every configured node's state, in config order."""
        return [
            NodeState(
                name=name,
                url=rt.spec.url,
                healthy=rt.healthy,
                last_error=rt.last_error,
                version=rt.version,
                breaker=rt.breaker.circuit.value,
                draining=rt.draining,
                in_flight=rt.in_flight,
                queued=len(rt.waiters),
                max_parallel=rt.spec.max_parallel,
                queue=rt.spec.queue,
                models=tuple(sorted(rt.models)),
                loaded=tuple(sorted(rt.loaded)),
            )
            for name, rt in self._nodes.items()
        ]
