"""Run the planned checks on every target concurrently, within a bound and a deadline."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from ollama_fleet.checks.http import make_client
from ollama_fleet.checks.model import (
    CHECK_NAMES,
    CheckResult,
    CheckRun,
    FailureClass,
    Target,
    fail,
)
from ollama_fleet.checks.probe import ProbeContext
from ollama_fleet.checks.probes import PROBES
from ollama_fleet.checks.settings import ProbeSettings

log = logging.getLogger(__name__)

Progress = Callable[[CheckResult], None]


def plan_checks(target: Target, only: Iterable[str] | None = None) -> tuple[str, ...]:
    """The checks that apply to `target`, in run order, limited to `only` when given."""
    wanted = set(CHECK_NAMES if only is None else only)
    applies = {
        "connectivity": True,
        "tls": urlsplit(target.url).scheme == "https",
        "models": True,
        "chat": target.model_for_chat is not None,
        "auth": True,  # who may use the endpoint without a key is every target's question
        "exposure": bool(target.closed_ports or target.open_ports),
    }
    return tuple(name for name in CHECK_NAMES if name in wanted and applies[name])


def _failed(
    target: Target, check: str, why: str, failure_class: FailureClass = FailureClass.BAD_RESPONSE
) -> CheckResult:
    """A result for a check that produced none of its own."""
    return CheckResult(
        target=target.name,
        url=target.url,
        check=check,
        findings=(fail(failure_class, why),),
        elapsed_ms=0.0,
    )


def _unfinished(target: Target, check: str, why: str) -> CheckResult:
    return _failed(target, check, why, FailureClass.READ_TIMEOUT)


async def _run_one(ctx: ProbeContext, check: str) -> CheckResult:
    """One probe, bounded in time; whatever it raises becomes a finding, never a crash."""
    try:
        async with asyncio.timeout(ctx.settings.check_timeout_s):
            return await PROBES[check](ctx)
    except TimeoutError:
        return _unfinished(
            ctx.target, check, f"not finished within {ctx.settings.check_timeout_s:g} s"
        )
    except Exception as exc:
        log.debug("probe %s on %s raised", check, ctx.target.name, exc_info=True)
        return _failed(ctx.target, check, f"probe failed: {type(exc).__name__}: {exc}")


async def _run_target(
    target: Target,
    checks: Sequence[str],
    settings: ProbeSettings,
    limit: asyncio.Semaphore,
    done: dict[tuple[str, str], CheckResult],
    progress: Progress | None,
) -> None:
    def record(result: CheckResult) -> None:
        done[(target.name, result.check)] = result
        if progress is not None:
            progress(result)

    async with limit, make_client(target, settings) as client:
        ctx = ProbeContext(target=target, client=client, settings=settings)
        try:
            rest = list(checks)
            if "connectivity" in rest:
                # First and alone: its timings measure a fresh connection the others reuse.
                rest.remove("connectivity")
                record(await _run_one(ctx, "connectivity"))
            for result in await asyncio.gather(*(_run_one(ctx, check) for check in rest)):
                record(result)
        finally:
            ctx.cancel_pending()


async def run_checks(
    targets: Sequence[Target],
    *,
    settings: ProbeSettings | None = None,
    only: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> CheckRun:
    """Check every target; one broken target never stops the others.

    Results come back in target order, then check order, whatever order they finished in.
    """
    settings = settings or ProbeSettings()
    only = tuple(only) if only is not None else None
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    plans = [(target, plan_checks(target, only)) for target in targets]
    limit = asyncio.Semaphore(settings.concurrency)
    done: dict[tuple[str, str], CheckResult] = {}
    tasks = [
        asyncio.create_task(_run_target(target, checks, settings, limit, done, progress))
        for target, checks in plans
    ]
    crashed: dict[str, str] = {}
    if tasks:
        finished, pending = await asyncio.wait(tasks, timeout=settings.deadline_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for (target, _), task in zip(plans, tasks, strict=True):
            if task in finished and task.exception() is not None:
                log.debug("checks of %s stopped", target.name, exc_info=task.exception())
                crashed[target.name] = f"{type(task.exception()).__name__}: {task.exception()}"
    results = []
    for target, checks in plans:
        for check in checks:
            result = done.get((target.name, check))
            if result is None and target.name in crashed:
                result = _failed(target, check, f"check not run: {crashed[target.name]}")
            results.append(
                result
                or _unfinished(target, check, f"run deadline of {settings.deadline_s:g} s reached")
            )
    return CheckRun(
        results=tuple(results),
        started_at=started_at,
        duration_ms=round((time.perf_counter() - start) * 1000, 2),
        targets=tuple(target.name for target, _ in plans),
        target_groups={target.name: target.groups for target, _ in plans if target.groups},
    )
