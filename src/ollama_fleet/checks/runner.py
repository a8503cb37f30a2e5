"""Run the planned checks on every target concurrently, within a bound and a deadline."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ollama_fleet.checks.classify import timeout_class
from ollama_fleet.checks.http import ACTIVITY, Activity, make_client
from ollama_fleet.checks.model import (
    CHECK_NAMES,
    CheckResult,
    CheckRun,
    FailureClass,
    Target,
    fail,
)
from ollama_fleet.checks.probe import ProbeContext, SharedGets
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


NOT_STARTED_HINT = (
    "the run's deadline came before this check could start: look at the checks that were "
    "still running, or raise --deadline (or --concurrency, when many targets wait)"
)


def _failed(
    target: Target,
    check: str,
    why: str,
    failure_class: FailureClass = FailureClass.BAD_RESPONSE,
    *,
    elapsed_ms: float = 0.0,
    hint: str | None = None,
) -> CheckResult:
    """A result for a check that produced none of its own."""
    return CheckResult(
        target=target.name,
        url=target.url,
        check=check,
        findings=(fail(failure_class, why, hint),),
        elapsed_ms=elapsed_ms,
    )


def unfinished(target: Target, check: str, bound: str, activity: Activity | None) -> CheckResult:
    """A check stopped by a time bound, classed by what it was doing at that moment.

    `bound` says which bound ("run deadline of 3 s reached"); `activity` is the check's
    own, None for a check that never started.
    """
    if activity is None:
        return _failed(
            target,
            check,
            f"{bound} before the check started",
            FailureClass.READ_TIMEOUT,
            hint=NOT_STARTED_HINT,
        )
    step = activity.in_flight()
    if step is None:  # between two steps: not waiting on the network
        why, failure_class = bound, FailureClass.READ_TIMEOUT
    else:
        why, failure_class = f"{bound} {step.phase.words} ({step.label})", timeout_class(step.phase)
    return _failed(target, check, why, failure_class, elapsed_ms=activity.elapsed_ms)


Record = Callable[[CheckResult], None]


@dataclass(frozen=True, slots=True, eq=False)
class _Running:
    """A check in progress: what it is doing, the task running its probe, where it goes."""

    target: Target
    check: str
    activity: Activity
    task: asyncio.Task[CheckResult]
    record: Record

    def outcome(self, bound: str) -> CheckResult:
        """The probe's own result, a finding for what it raised, or unfinished by `bound`."""
        task = self.task
        if not task.done() or task.cancelled():
            return unfinished(self.target, self.check, bound, self.activity)
        exc = task.exception()
        if exc is None:
            return task.result()
        log.debug("probe %s on %s raised", self.check, self.target.name, exc_info=exc)
        return _failed(
            self.target,
            self.check,
            f"probe failed: {type(exc).__name__}: {exc}",
            elapsed_ms=self.activity.elapsed_ms,
        )


RunningChecks = set[_Running]


async def _probe(ctx: ProbeContext, check: str) -> CheckResult:
    return await PROBES[check](ctx)


async def _run_one(ctx: ProbeContext, check: str, record: Record, running: RunningChecks) -> None:
    """One probe, bounded in time and recorded the moment it ends; never a crash."""
    activity = Activity()
    context = contextvars.copy_context()
    context.run(ACTIVITY.set, activity)  # the probe and its subtasks report to this one
    task = asyncio.get_running_loop().create_task(_probe(ctx, check), context=context)
    this = _Running(ctx.target, check, activity, task, record)
    running.add(this)
    bound = f"not finished within {ctx.settings.check_timeout_s:g} s: stopped"
    try:
        await asyncio.wait({task}, timeout=ctx.settings.check_timeout_s)
        # judged before the task is cancelled: cancelling ends the step it was in
        result = this.outcome(bound)
    finally:
        running.discard(this)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    record(result)


async def run_one(
    target: Target,
    check: str,
    *,
    settings: ProbeSettings,
    client: httpx.AsyncClient,
    shared: SharedGets | None = None,
) -> CheckResult:
    """One check on one target over the caller's client, bounded by check_timeout_s.

    For callers that schedule checks one by one (the monitor keeps a client per target):
    the same probe, bound and classification as in `run_checks`, never a crash. With
    `shared`, checks of one target that run close together share their GETs of
    SHAREABLE_PATHS, as the checks of one `run_checks` do; the caller keeps the dict per
    target and drops the entries it finds too old (their `started`).
    """
    ctx = ProbeContext(target=target, client=client, settings=settings, shared_gets=shared)
    results: list[CheckResult] = []
    try:
        await _run_one(ctx, check, results.append, set())
    finally:
        ctx.cancel_pending()
    return results[0]


async def _run_target(
    target: Target,
    checks: Sequence[str],
    settings: ProbeSettings,
    limit: asyncio.Semaphore,
    record: Record,
    running: RunningChecks,
) -> None:
    async with limit, make_client(target, settings) as client:
        ctx = ProbeContext(target=target, client=client, settings=settings)
        try:
            rest = list(checks)
            if "connectivity" in rest:
                # First and alone: its timings measure a fresh connection the others reuse.
                rest.remove("connectivity")
                await _run_one(ctx, "connectivity", record, running)
            await asyncio.gather(*(_run_one(ctx, check, record, running) for check in rest))
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

    Each result is kept the moment its check ends; at the deadline only the checks still
    running (or not started) fail, classed by what they were doing then. Results come back
    in target order, then check order, whatever order they finished in.
    """
    settings = settings or ProbeSettings()
    only = tuple(only) if only is not None else None
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    plans = [(target, plan_checks(target, only)) for target in targets]
    limit = asyncio.Semaphore(settings.concurrency)
    # by target index, not name: two --url targets may share a host:port
    done: dict[tuple[int, str], CheckResult] = {}
    running: RunningChecks = set()

    def recorder(index: int) -> Record:
        def record(result: CheckResult) -> None:
            key = (index, result.check)
            if key in done:  # a check stopped at the deadline is not recorded again
                return
            done[key] = result
            if progress is not None:
                progress(result)

        return record

    records = [recorder(index) for index in range(len(plans))]
    tasks = [
        asyncio.create_task(_run_target(target, checks, settings, limit, record, running))
        for (target, checks), record in zip(plans, records, strict=True)
    ]
    crashed: dict[int, str] = {}
    deadline = f"run deadline of {settings.deadline_s:g} s reached"
    if tasks:
        finished, pending = await asyncio.wait(tasks, timeout=settings.deadline_s)
        for still in list(running):
            still.record(still.outcome(deadline))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for index, ((target, _), task) in enumerate(zip(plans, tasks, strict=True)):
            if task in finished and task.exception() is not None:
                log.debug("checks of %s stopped", target.name, exc_info=task.exception())
                crashed[index] = f"{type(task.exception()).__name__}: {task.exception()}"
    for index, (target, checks) in enumerate(plans):
        for check in checks:
            if (index, check) in done:
                continue
            if index in crashed:
                records[index](_failed(target, check, f"check not run: {crashed[index]}"))
            else:
                records[index](unfinished(target, check, deadline, None))
    return CheckRun(
        results=tuple(
            done[(index, check)] for index, (_, checks) in enumerate(plans) for check in checks
        ),
        started_at=started_at,
        duration_ms=round((time.perf_counter() - start) * 1000, 2),
        targets=tuple(target.name for target, _ in plans),
        target_groups={target.name: target.groups for target, _ in plans if target.groups},
    )
