"""Health checks: one task per node polls /api/version, and /api/tags + /api/ps, into the pool.

A node is checked every `interval`; while it fails the wait doubles up to `max_backoff` and
resets on the first success. A request that finds no node to take it wakes the failing nodes'
checks at once (at most one check a second each), so a node that came back serves again
within a second of being needed, not at the end of its backoff. Its models (/api/tags) and
loaded models (/api/ps) are read every `models_refresh` and at once when it turns healthy, so
a node that comes back is routed to with a fresh catalogue. The raw tag and ps entries are
kept here for the merged /api/tags, /api/ps and /v1/models answers. A reload adds and
removes node tasks; cancelling `stop()` ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ollama_fleet.gateway.nodes import Pool
from ollama_fleet.gateway.settings import Health
from ollama_fleet.gateway.upstream import Upstream, UpstreamError

log = logging.getLogger(__name__)

Entries = list[dict[str, Any]]
WAKE_GAP_S = 1.0  # a woken check runs at least this long after the last: wakes cannot flood


class HealthChecker:
    """The background health and catalogue refresh of every node in the pool."""

    def __init__(
        self,
        pool: Pool,
        upstream: Upstream,
        health: Health,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.upstream = upstream
        self.health = health
        self.clock = clock
        self.tags: dict[str, Entries] = {}
        self.ps: dict[str, Entries] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._checked: dict[str, asyncio.Event] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._rounds: dict[str, asyncio.Event] = {}  # set when the node's next check is done
        self._last: dict[str, float] = {}  # when each node was last checked
        self._fresh_started = float("-inf")  # when the last finished catalogue refresh began
        self._refreshing: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start a task for every node of the pool that has none (also after a reload)."""
        names = set(self.pool.names())
        for name in sorted(set(self._tasks) - names):
            self._tasks.pop(name).cancel()
            self.tags.pop(name, None)
            self.ps.pop(name, None)
            self._checked.pop(name, None)
            self._wake.pop(name, None)
            self._rounds.pop(name, None)
            self._last.pop(name, None)
        for name in sorted(names - set(self._tasks)):
            self._checked[name] = asyncio.Event()
            self._wake[name] = asyncio.Event()
            self._rounds[name] = asyncio.Event()
            self._tasks[name] = asyncio.create_task(self._watch(name), name=f"health-{name}")

    def reconfigure(self, health: Health) -> None:
        """New intervals (from the next wait on) and the pool's current nodes."""
        self.health = health
        self.start()

    async def refresh_catalogues(self) -> None:
        """Read every healthy node's models, in a refresh that starts after this call.

        For the answers that list models and for a model no catalogue has: a model pulled on
        a node a moment ago is found at once, not at the next models_refresh. Concurrent
        callers share refreshes: at most one runs and one more waits to start.
        """
        asked = self.clock()
        while self._fresh_started < asked:
            task = self._refreshing
            if task is None or task.done():
                task = asyncio.create_task(self._refresh_healthy(self.clock()))
                self._refreshing = task
            await asyncio.shield(task)

    async def _refresh_healthy(self, started: float) -> None:
        names = [state.name for state in self.pool.snapshot() if state.healthy]
        try:
            await asyncio.gather(*(self.refresh_models(name) for name in names))
        finally:
            self._fresh_started = max(self._fresh_started, started)

    def wake(self) -> None:
        """No node could take a request: check the failing ones now, not at their backoff."""
        for event in self._wake.values():
            event.set()

    async def recheck(self, timeout_s: float) -> None:
        """No node is healthy for a request: wake the failing nodes' checks and wait (at most
        `timeout_s`) for their results, so a node that came back a moment ago serves it."""
        failing = [s.name for s in self.pool.snapshot() if not s.healthy and s.name in self._rounds]
        if not failing:
            return
        rounds = [self._rounds[name].wait() for name in failing]
        self.wake()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*rounds), timeout_s)

    async def _rest(self, name: str, seconds: float) -> None:
        """Sleep `seconds` before a failing node's next check, or until woken (but never
        sooner than WAKE_GAP_S after its last check)."""
        wake = self._wake.get(name)
        if wake is None:
            await asyncio.sleep(seconds)
            return
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), seconds)
        except TimeoutError:
            return
        gap = self._last.get(name, float("-inf")) + WAKE_GAP_S - self.clock()
        if gap > 0:
            await asyncio.sleep(gap)

    async def stop(self) -> None:
        """Cancel every node task and wait for them to end."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def first_round(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until every node was checked once."""
        events = [event.wait() for event in self._checked.values()]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*events), timeout_s)

    async def _watch(self, name: str) -> None:
        healthy = False
        backoff = self.health.interval_s
        models_due = 0.0
        logged: str | None = None  # the unexpected error last logged, so it is logged once
        while True:
            try:
                ok, version, error = await self._probe(name)
                if ok and (not healthy or self.clock() >= models_due):
                    # before it counts as healthy: a node that comes back brings its catalogue,
                    # so no request sees it healthy with no models (a false 404)
                    await self.refresh_models(name)
                    models_due = self.clock() + self.health.models_refresh_s
            except Exception as exc:  # a bug or an odd answer must not freeze the node's state
                ok, version = False, None
                error = f"health check failed unexpectedly: {type(exc).__name__}: {exc}"
                if error != logged:
                    log.exception("gateway: node %s: %s", name, error)
                    logged = error
            self.pool.set_health(name, ok=ok, error=error, version=version)
            healthy = ok
            event = self._checked.get(name)
            if event is not None:
                event.set()
            self._last[name] = self.clock()
            done = self._rounds.get(name)
            if done is not None:  # wake whoever waits for this check, then a new round
                self._rounds[name] = asyncio.Event()
                done.set()
            if ok:
                backoff = self.health.interval_s
                await asyncio.sleep(self.health.interval_s)
            else:
                await self._rest(name, backoff)
                backoff = min(backoff * 2, self.health.max_backoff_s)

    async def _probe(self, name: str) -> tuple[bool, str | None, str | None]:
        """GET /api/version of one node: (answered, its version, why not)."""
        try:
            answer = await self.upstream.get_json(
                self.pool.spec(name), "/api/version", timeout_s=self.health.timeout_s
            )
        except KeyError:  # removed by a reload while this check ran
            return False, None, None
        except UpstreamError as exc:
            return False, None, str(exc)
        version = answer.get("version") if isinstance(answer, dict) else None
        if not isinstance(version, str):
            return False, None, "/api/version answered without a version"
        return True, version, None

    async def refresh_models(self, name: str) -> bool:
        """Read one node's /api/tags and /api/ps into the pool; False when either failed."""
        try:
            spec = self.pool.spec(name)
            tags = await self.upstream.get_json(spec, "/api/tags", timeout_s=self.health.timeout_s)
            ps = await self.upstream.get_json(spec, "/api/ps", timeout_s=self.health.timeout_s)
        except KeyError:
            return False
        except UpstreamError as exc:
            log.warning("gateway: node %s: cannot read its models: %s", name, exc)
            return False
        tag_entries, ps_entries = _entries(tags), _entries(ps)
        self.tags[name], self.ps[name] = tag_entries, ps_entries
        self.pool.set_models(name, tags=tag_entries, ps=ps_entries)
        return True


def _entries(answer: object) -> Entries:
    """The `models` list of a /api/tags or /api/ps answer (entries that are objects only)."""
    models = answer.get("models") if isinstance(answer, dict) else None
    if not isinstance(models, list):
        return []
    return [entry for entry in models if isinstance(entry, dict)]
