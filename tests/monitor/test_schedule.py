"""The scheduler: slots, jitter, no overlap, the concurrency bound, reloads and draining."""

from __future__ import annotations

import asyncio
import random

import pytest

from ollama_fleet.monitor.schedule import Job, Scheduler, Slot, first_slot, next_slot


def test_the_next_slot_is_one_interval_after_the_plain_slot_not_after_the_run() -> None:
    rng = random.Random(1)
    assert next_slot(Slot(run_at=101.0, base=100.0), 103.0, 30.0, 0.0, rng) == Slot(
        run_at=130.0, base=130.0
    )


def test_jitter_stays_within_its_share_of_the_interval_and_never_adds_up() -> None:
    rng = random.Random(7)
    slot = Slot(run_at=0.0, base=0.0)
    offsets = []
    for _ in range(1000):
        slot = next_slot(slot, slot.run_at, 30.0, 0.1, rng)
        offsets.append(slot.run_at - slot.base)
    # a thousand runs take a thousand intervals: the rate is the configured one
    assert slot.base == 30_000.0
    assert min(offsets) >= 0.0 and max(offsets) <= 3.0
    assert len(set(offsets)) > 900  # really spread, not one value


def test_a_monitor_that_fell_behind_starts_again_from_now_instead_of_bursting() -> None:
    rng = random.Random(3)
    assert next_slot(Slot(run_at=100.0, base=100.0), 1000.0, 30.0, 0.0, rng) == Slot(
        run_at=1000.0, base=1000.0
    )
    # late by less than an interval: the next slot keeps the rhythm
    assert next_slot(Slot(run_at=100.0, base=100.0), 140.0, 30.0, 0.0, rng).base == 130.0


def test_first_runs_are_spread_but_soon() -> None:
    rng = random.Random(5)
    firsts = [first_slot(0.0, 3600.0, rng).run_at for _ in range(200)]
    assert all(0.0 <= due <= 10.0 for due in firsts)
    assert max(firsts) - min(firsts) > 8.0
    # a short interval: the first run comes within it
    assert all(first_slot(0.0, 0.5, rng).run_at <= 0.5 for _ in range(50))


class FakeClock:
    """Monotonic time the test moves; the scheduler sleeps on real asyncio timers in between."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _until(predicate: object, *, limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not predicate():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


def test_a_slow_job_is_never_run_twice_at_once_and_never_delays_the_others() -> None:
    async def scenario() -> None:
        started: list[tuple[str, str]] = []
        running: set[tuple[str, str]] = set()
        overlaps: list[tuple[str, str]] = []
        release_slow = asyncio.Event()

        async def execute(job: Job) -> None:
            if job.key in running:
                overlaps.append(job.key)
            running.add(job.key)
            started.append(job.key)
            try:
                if job.target == "slow":
                    await release_slow.wait()
            finally:
                running.discard(job.key)

        scheduler = Scheduler(
            execute, concurrency=4, jitter=0.0, rng=random.Random(0), first_spread_s=0.01
        )
        scheduler.set_jobs([Job("slow", "chat", 0.02), Job("fast", "connectivity", 0.02)])
        task = asyncio.create_task(scheduler.run())
        await _until(lambda: started.count(("fast", "connectivity")) >= 5)
        assert started.count(("slow", "chat")) == 1
        assert scheduler.stats.skipped >= 1
        release_slow.set()
        await _until(lambda: started.count(("slow", "chat")) >= 2)
        scheduler.stop()
        await task
        await scheduler.drain(1.0)
        assert overlaps == []

    asyncio.run(scenario())


def test_the_concurrency_bound_holds_and_queued_jobs_are_counted() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        peak = 0
        active = 0

        async def execute(job: Job) -> None:
            nonlocal peak, active
            active += 1
            peak = max(peak, active)
            await gate.wait()
            active -= 1

        scheduler = Scheduler(
            execute, concurrency=2, jitter=0.0, rng=random.Random(0), first_spread_s=0.01
        )
        scheduler.set_jobs([Job(f"t{i}", "connectivity", 60.0) for i in range(6)])
        task = asyncio.create_task(scheduler.run())
        await _until(lambda: scheduler.stats.queued == 4)
        assert scheduler.stats.in_flight == 2
        gate.set()
        await _until(lambda: scheduler.stats.in_flight == 0 and scheduler.stats.queued == 0)
        scheduler.stop()
        await task
        assert peak == 2

    asyncio.run(scenario())


def test_drain_cancels_what_does_not_finish_within_the_grace() -> None:
    async def scenario() -> None:
        finished: list[str] = []

        async def execute(job: Job) -> None:
            await asyncio.sleep(0 if job.target == "quick" else 30)
            finished.append(job.target)

        scheduler = Scheduler(
            execute, concurrency=4, jitter=0.0, rng=random.Random(0), first_spread_s=0.01
        )
        scheduler.set_jobs([Job("quick", "models", 60.0), Job("stuck", "chat", 60.0)])
        task = asyncio.create_task(scheduler.run())
        await _until(lambda: scheduler.stats.in_flight == 1 and "quick" in finished)
        scheduler.stop()
        await task
        assert await scheduler.drain(0.05) == 1
        assert finished == ["quick"]
        assert scheduler.stats.in_flight == 0

    asyncio.run(scenario())


def test_a_job_that_raises_is_logged_and_the_scheduler_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        runs: list[str] = []

        async def execute(job: Job) -> None:
            runs.append(job.target)
            if job.target == "broken":
                raise RuntimeError("boom")

        scheduler = Scheduler(
            execute, concurrency=2, jitter=0.0, rng=random.Random(0), first_spread_s=0.01
        )
        scheduler.set_jobs([Job("broken", "models", 0.01), Job("fine", "models", 0.01)])
        task = asyncio.create_task(scheduler.run())
        await _until(lambda: runs.count("fine") >= 3 and runs.count("broken") >= 3)
        scheduler.stop()
        await task

    asyncio.run(scenario())
    assert "monitor job models on broken failed" in caplog.text


def test_a_reload_keeps_the_slot_of_kept_jobs_adds_new_ones_and_drops_removed_ones() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        ran: list[tuple[str, str]] = []

        async def execute(job: Job) -> None:
            ran.append(job.key)

        scheduler = Scheduler(execute, concurrency=4, jitter=0.0, clock=clock, rng=random.Random(0))
        scheduler.set_jobs([Job("a", "connectivity", 30.0), Job("b", "connectivity", 30.0)])
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0)
        clock.now = 11.0  # past every first slot (at most 10 s)
        scheduler.set_jobs([Job("a", "connectivity", 30.0), Job("b", "connectivity", 30.0)])
        await _until(lambda: len(ran) == 2)
        # b goes, c comes: c runs soon, b never again, a keeps its slot at 30 s from its first
        scheduler.set_jobs([Job("a", "connectivity", 30.0), Job("c", "tls", 3600.0)])
        clock.now = 22.0  # past the first slot of c (at most 10 s after it came)
        scheduler.set_jobs(list(scheduler.jobs.values()))  # wake it at the new time
        await _until(lambda: ("c", "tls") in ran)
        assert ran.count(("a", "connectivity")) == 1
        clock.now = 40.0
        scheduler.set_jobs(list(scheduler.jobs.values()))
        await _until(lambda: ran.count(("a", "connectivity")) == 2)
        assert ("b", "connectivity") not in ran[2:]
        assert set(scheduler.jobs) == {("a", "connectivity"), ("c", "tls")}
        scheduler.stop()
        await task

    asyncio.run(scenario())


def test_the_lag_counts_the_wait_for_a_free_slot_of_the_bound() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        gate = asyncio.Event()

        started: list[str] = []

        async def execute(job: Job) -> None:
            started.append(job.target)
            if len(started) == 1:  # whichever starts first holds the only slot
                await gate.wait()

        scheduler = Scheduler(execute, concurrency=1, jitter=0.0, clock=clock, rng=random.Random(0))
        scheduler.set_jobs([Job("first", "chat", 600.0), Job("second", "chat", 600.0)])
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0)  # let it go to sleep before the clock moves and wakes it
        clock.now = 11.0
        scheduler.set_jobs(list(scheduler.jobs.values()))
        await _until(lambda: scheduler.stats.queued == 1)
        clock.now = 70.0  # the second waits a minute for the only slot
        gate.set()
        await _until(lambda: len(scheduler.stats.lags) == 2)
        lags = sorted(scheduler.stats.drain_lags())
        assert lags[0] <= 11.0
        assert lags[1] >= 59.0
        scheduler.stop()
        await task

    asyncio.run(scenario())


def test_a_reloaded_bound_applies_to_the_next_checks() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        peak = active = 0

        async def execute(job: Job) -> None:
            nonlocal peak, active
            active += 1
            peak = max(peak, active)
            await gate.wait()
            active -= 1

        scheduler = Scheduler(
            execute, concurrency=1, jitter=0.0, rng=random.Random(0), first_spread_s=0.01
        )
        scheduler.reconfigure(concurrency=3, jitter=0.0)
        scheduler.set_jobs([Job(f"t{i}", "models", 60.0) for i in range(5)])
        task = asyncio.create_task(scheduler.run())
        await _until(lambda: scheduler.stats.in_flight == 3)
        gate.set()
        await _until(lambda: scheduler.stats.in_flight == 0 and scheduler.stats.queued == 0)
        scheduler.stop()
        await task
        assert peak == 3

    asyncio.run(scenario())
