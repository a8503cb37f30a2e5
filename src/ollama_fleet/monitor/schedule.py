"""The scheduler: every (target, check) on its own interval, jittered, bounded, never twice at once.

The timing rules are pure functions (`first_due`, `next_due`); `Scheduler` is the asyncio loop
that applies them. A job that is still running when it comes due again is skipped for that
slot, so a slow target delays nothing but itself; a global semaphore bounds how many checks
run at once, and every job's own time is bounded by the checks' check_timeout_s.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, order=True)
class Job:
    """One check on one target, run every `interval_s`."""

    target: str
    check: str
    interval_s: float = field(compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, self.check)


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    """When a job runs next: `run_at`, which is its plain slot `base` plus its jitter."""

    run_at: float
    base: float


FIRST_SPREAD_S = 10.0


def first_slot(
    now: float, interval_s: float, rng: random.Random, spread_s: float = FIRST_SPREAD_S
) -> Slot:
    """A new job runs soon: somewhere in the next `spread_s` (or its interval, when that is
    shorter), so a monitor with hundreds of targets does not start them all at once: a
    burst of checks is a burst of CPU and memory (the benchmark's peak RSS comes from it)."""
    return Slot(run_at=now + rng.uniform(0.0, min(spread_s, interval_s)), base=now)


def next_slot(slot: Slot, now: float, interval_s: float, jitter: float, rng: random.Random) -> Slot:
    """The slot after `slot`: one interval after its plain slot, plus up to `jitter` of it.

    The jitter never carries over (each run is jittered from the plain slot, so the rate is
    exactly one per interval); a monitor that fell behind by more than a whole interval (a
    suspended VM, a stalled loop) starts again from now instead of running every missed
    slot in a burst.
    """
    base = slot.base + interval_s
    if base + interval_s < now:
        base = now
    return Slot(run_at=base + rng.uniform(0.0, interval_s * jitter), base=base)


Execute = Callable[[Job], Awaitable[None]]


@dataclass(slots=True)
class SchedulerStats:
    """What the monitor's own health metrics read."""

    queued: int = 0  # dispatched, waiting for a free slot of the concurrency bound
    in_flight: int = 0
    skipped: int = 0  # slots missed because the previous run of that job still ran
    lags: list[float] = field(default_factory=list)  # seconds late at start, drained by reader

    def drain_lags(self) -> list[float]:
        lags, self.lags = self.lags, []
        return lags


class Scheduler:
    """Runs `execute(job)` for every job on its interval until `stop()`."""

    def __init__(
        self,
        execute: Execute,
        *,
        concurrency: int,
        jitter: float,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        first_spread_s: float = FIRST_SPREAD_S,
    ) -> None:
        self._execute = execute
        self._concurrency = concurrency
        self._limit = asyncio.Semaphore(concurrency)
        self._jitter = jitter
        self._clock = clock
        self._rng = rng or random.Random()
        self._first_spread_s = first_spread_s
        self._jobs: dict[tuple[str, str], Job] = {}
        self._heap: list[tuple[Slot, Job]] = []
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self.stats = SchedulerStats()

    @property
    def jobs(self) -> Mapping[tuple[str, str], Job]:
        return self._jobs

    def set_jobs(self, jobs: Iterable[Job]) -> None:
        """Replace the job list (a config reload): kept jobs keep their slot and their run,
        new ones start soon, removed ones are not started again (a running one finishes)."""
        now = self._clock()
        wanted = {job.key: job for job in jobs}
        kept_heap = []
        for slot, job in self._heap:
            new = wanted.get(job.key)
            if new is None:
                continue
            if new.interval_s < job.interval_s and slot.run_at > now + new.interval_s:
                slot = first_slot(now, new.interval_s, self._rng, self._first_spread_s)
            kept_heap.append((slot, new))
        scheduled = {job.key for _, job in kept_heap}
        for key, job in wanted.items():
            if key not in scheduled:
                kept_heap.append(
                    (first_slot(now, job.interval_s, self._rng, self._first_spread_s), job)
                )
        heapq.heapify(kept_heap)
        self._heap = kept_heap
        self._jobs = wanted
        self._wake.set()

    def reconfigure(self, *, concurrency: int, jitter: float) -> None:
        """A reloaded bound and jitter: running checks keep the slot they hold, the next ones
        wait for the new bound."""
        if concurrency != self._concurrency:
            self._concurrency = concurrency
            self._limit = asyncio.Semaphore(concurrency)
        self._jitter = jitter

    async def run(self) -> None:
        """Dispatch jobs as they come due, until stop()."""
        while not self._stopping:
            if not self._heap:
                await self._sleep(None)
                continue
            slot, job = self._heap[0]
            now = self._clock()
            if slot.run_at > now:
                await self._sleep(slot.run_at - now)
                continue
            heapq.heappop(self._heap)
            following = next_slot(slot, now, job.interval_s, self._jitter, self._rng)
            heapq.heappush(self._heap, (following, job))
            if job.key in self._running:
                self.stats.skipped += 1
                log.debug("%s on %s still running: slot skipped", job.check, job.target)
                continue
            task = asyncio.create_task(
                self._run_job(job, slot.run_at), name=f"{job.check}@{job.target}"
            )
            self._running[job.key] = task

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _run_job(self, job: Job, due: float) -> None:
        self.stats.queued += 1
        waiting = True
        try:
            async with self._limit:
                self.stats.queued -= 1
                waiting = False
                # late by the loop and by the wait for a free slot of the bound
                self.stats.lags.append(max(0.0, self._clock() - due))
                self.stats.in_flight += 1
                try:
                    await self._execute(job)
                except Exception:  # one broken job must never stop the monitor
                    log.exception("monitor job %s on %s failed", job.check, job.target)
                finally:
                    self.stats.in_flight -= 1
        finally:
            if waiting:  # cancelled before it got a slot
                self.stats.queued -= 1
            self._running.pop(job.key, None)

    def stop(self) -> None:
        """Dispatch nothing more; running jobs go on until `drain`."""
        self._stopping = True
        self._wake.set()

    async def drain(self, grace_s: float) -> int:
        """Wait up to `grace_s` for running jobs, then cancel the rest; how many were cancelled."""
        running = set(self._running.values())
        if not running:
            return 0
        _, pending = await asyncio.wait(running, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)
