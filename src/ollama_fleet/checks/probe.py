"""What every probe receives (ProbeContext) and how it reports (a timer building CheckResult)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ollama_fleet.checks.http import Answer, fetch
from ollama_fleet.checks.model import CheckResult, Finding, Target
from ollama_fleet.checks.settings import ProbeSettings

Trace = Callable[[str, Mapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeContext:
    """One target, its shared HTTP client and the run's settings.

    `get` memoizes GETs per target: the checks of one target that need /api/tags or
    /api/version share one request instead of each making its own.
    """

    target: Target
    client: httpx.AsyncClient
    settings: ProbeSettings
    _gets: dict[str, asyncio.Task[Answer]] = field(default_factory=dict)

    async def send(self, request: httpx.Request) -> Answer:
        """Send `request` and read its answer, never more than max_answer_bytes."""
        return await fetch(self.client, request, max_bytes=self.settings.max_answer_bytes)

    async def get(self, path: str, *, trace: Trace | None = None) -> Answer:
        """GET `path` once per target; `trace` applies if this call makes the request."""
        task = self._gets.get(path)
        if task is None:
            extensions = {"trace": trace} if trace is not None else None
            request = self.client.build_request("GET", path, extensions=extensions)
            task = asyncio.ensure_future(self.send(request))
            self._gets[path] = task
        # shielded: a check that times out must not cancel a request others await
        return await asyncio.shield(task)

    def cancel_pending(self) -> None:
        """Stop shared GETs nobody awaits any more, before the client closes under them."""
        for task in self._gets.values():
            task.cancel()


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
