"""What every probe receives (ProbeContext) and how it reports (a timer building CheckResult)."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ollama_fleet.checks.http import ACTIVITY, Activity, Answer, fetch
from ollama_fleet.checks.model import CheckResult, Finding, Target
from ollama_fleet.checks.settings import ProbeSettings


@dataclass(frozen=True, slots=True)
class _SharedGet:
    """A GET several checks await, with its own Activity that each of them follows."""

    task: asyncio.Task[Answer]
    activity: Activity
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeContext:
    """One target, its shared HTTP client and the run's settings.

    `get` memoizes GETs per target: the checks of one target that need /api/tags or
    /api/version share one request instead of each making its own.
    """

    target: Target
    client: httpx.AsyncClient
    settings: ProbeSettings
    # GETs of SHAREABLE_PATHS shared with other contexts of the same target (the monitor's
    # checks that run close together); None: this context's own, like every other path
    shared_gets: dict[str, _SharedGet] | None = None
    _gets: dict[str, _SharedGet] = field(default_factory=dict)

    async def send(self, request: httpx.Request) -> Answer:
        """Send `request` and read its answer, never more than max_answer_bytes."""
        return await fetch(self.client, request, max_bytes=self.settings.max_answer_bytes)

    async def get(self, path: str) -> Answer:
        """GET `path` once per target; every check awaiting it sees its phase."""
        memo = self._gets
        if self.shared_gets is not None and path in SHAREABLE_PATHS:
            memo = self.shared_gets
        shared = memo.get(path)
        if shared is None:
            # its own Activity: the request belongs to no single check, but every check
            # that awaits it must be able to say where it hangs
            activity = Activity()
            context = contextvars.copy_context()
            context.run(ACTIVITY.set, activity)
            request = self.client.build_request("GET", path)
            task = asyncio.get_running_loop().create_task(self.send(request), context=context)
            shared = memo[path] = _SharedGet(task, activity)
        mine = ACTIVITY.get()
        if mine is not None:
            mine.awaits.append(shared.activity)
        try:
            # shielded: a check that times out must not cancel a request others await
            return await asyncio.shield(shared.task)
        finally:
            if mine is not None:
                mine.awaits.remove(shared.activity)

    def cancel_pending(self) -> None:
        """Stop this context's GETs nobody awaits any more, before the client closes under
        them (GETs shared with other contexts finish on their own, bounded by the client)."""
        for shared in self._gets.values():
            shared.task.cancel()


SharedGets = dict[str, _SharedGet]

# What checks of one target that start close together may share: answers that say what the
# host has. Never /api/ps: the chat check must see what its own chat just loaded.
SHAREABLE_PATHS = frozenset({"/api/version", "/api/tags"})

Probe = Callable[["ProbeContext"], Awaitable[CheckResult]]


class Stopwatch:
    """Started when a probe starts; `result()` stamps the elapsed time on its CheckResult."""

    def __init__(self, ctx: ProbeContext, check: str) -> None:
        self.ctx = ctx
        self.check = check
        self.start = time.perf_counter()

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000

    def result(
        self, findings: Iterable[Finding], details: Mapping[str, Any] | None = None
    ) -> CheckResult:
        return CheckResult(
            target=self.ctx.target.name,
            url=self.ctx.target.url,
            check=self.check,
            findings=tuple(findings),
            elapsed_ms=round(self.elapsed_ms, 2),
            details=dict(details or {}),
        )
