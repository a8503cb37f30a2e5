"""What every probe receives (ProbeContext) and how it reports (a timer building CheckResult)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ollama_fleet.checks.model import CheckResult, Finding, Target
from ollama_fleet.checks.settings import ProbeSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeContext:
    """One target, its shared HTTP client and the run's settings."""

    target: Target
    client: httpx.AsyncClient
    settings: ProbeSettings


Probe = Callable[[ProbeContext], Awaitable[CheckResult]]


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
