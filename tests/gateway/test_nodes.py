"""The pool: FIFO slots per node, queue limits, drain, breaker, health, models and reloads."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from ollama_fleet.gateway.nodes import NodeUnavailable, Pool, QueueFull, QueueTimeout, Slot
from ollama_fleet.gateway.settings import Breaker, GatewayConfig, NodeSpec


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(*nodes: NodeSpec, failures: int = 2) -> GatewayConfig:
    return GatewayConfig(nodes=nodes, breaker=Breaker(failures=failures, cooldown_s=30.0))


def node(name: str = "a", *, max_parallel: int = 1, queue: int = 2) -> NodeSpec:
    return NodeSpec(name=name, url="http://127.0.0.1:1", max_parallel=max_parallel, queue=queue)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def queued(pool: Pool, name: str = "a") -> int:
    return next(n.queued for n in pool.views(None) if n.name == name)


def in_flight(pool: Pool, name: str = "a") -> int:
    return next(n.in_flight for n in pool.views(None) if n.name == name)


def test_a_released_slot_goes_to_the_oldest_waiter() -> None:
    async def main() -> None:
        pool = Pool(config(node(queue=3)), clock=Clock())
        first = await pool.acquire("a", timeout_s=5)
        got: list[str] = []

        async def wait(label: str) -> Slot:
            slot = await pool.acquire("a", timeout_s=5)
            got.append(label)
            return slot

        tasks = [asyncio.create_task(wait(label)) for label in "xyz"]
        await settle()
        assert (in_flight(pool), queued(pool), got) == (1, 3, [])
        first.release("success")
        await settle()
        assert got == ["x"]  # one waiter woken, not all
        assert (in_flight(pool), queued(pool)) == (1, 2)
        tasks[0].result().release("success")
        await settle()
        tasks[1].result().release("success")
        tasks[1].result().release("success")  # twice: a no-op
        await settle()
        tasks[2].result().release("cancel")
        assert got == ["x", "y", "z"]
        assert (in_flight(pool), queued(pool)) == (0, 0)

    run(main())


def test_a_full_queue_refuses_with_a_retry_after() -> None:
    async def main() -> None:
        pool = Pool(config(node(queue=1)), clock=Clock())
        await pool.acquire("a", timeout_s=5)
        waiter = asyncio.create_task(pool.acquire("a", timeout_s=5))
        await settle()
        with pytest.raises(QueueFull) as caught:
            await pool.acquire("a", timeout_s=5)
        assert caught.value.retry_after_s >= 1
        view = pool.views(None)[0]
        assert (view.queued, view.queue_size, view.queue_room) == (1, 1, False)
        waiter.cancel()

    run(main())


def test_a_queue_timeout_leaves_the_queue_and_takes_no_slot() -> None:
    async def main() -> None:
        pool = Pool(config(node()), clock=Clock())
        holder = await pool.acquire("a", timeout_s=5)
        with pytest.raises(QueueTimeout):
            await pool.acquire("a", timeout_s=0.01)
        assert queued(pool) == 0
        holder.release("success")
        assert in_flight(pool) == 0

    run(main())


def test_a_cancelled_waiter_never_leaks_a_slot() -> None:
    async def main() -> None:
        pool = Pool(config(node(queue=2)), clock=Clock())
        holder = await pool.acquire("a", timeout_s=5)
        gone = asyncio.create_task(pool.acquire("a", timeout_s=5))
        await settle()
        gone.cancel()
        await settle()
        assert queued(pool) == 0
        holder.release("success")
        assert in_flight(pool) == 0

    run(main())


def test_a_slot_handed_to_a_waiter_cancelled_meanwhile_goes_to_the_next() -> None:
    async def main() -> None:
        pool = Pool(config(node(queue=2)), clock=Clock())
        holder = await pool.acquire("a", timeout_s=5)
        gone = asyncio.create_task(pool.acquire("a", timeout_s=5))
        next_one = asyncio.create_task(pool.acquire("a", timeout_s=5))
        await settle()
        holder.release("success")  # hands the slot to `gone`'s future ...
        gone.cancel()  # ... whose task is cancelled before it runs again
        await settle()
        assert gone.cancelled()
        assert next_one.done()
        assert in_flight(pool) == 1
        next_one.result().release("success")
        assert in_flight(pool) == 0

    run(main())


def test_drain_sends_waiters_away_and_lets_in_flight_finish() -> None:
    async def main() -> None:
        pool = Pool(config(node(), node("b")), clock=Clock())
        holder = await pool.acquire("a", timeout_s=5)
        waiter = asyncio.create_task(pool.acquire("a", timeout_s=5))
        await settle()
        pool.drain("a")
        await settle()
        with pytest.raises(NodeUnavailable):
            waiter.result()
        with pytest.raises(NodeUnavailable):
            await pool.acquire("a", timeout_s=5)
        assert [(v.name, v.usable) for v in pool.views(None)] == [("a", False), ("b", True)]
        assert pool.snapshot()[0].draining
        holder.release("success")
        assert in_flight(pool) == 0
        pool.undrain("a")
        assert pool.views(None)[0].usable
        with pytest.raises(KeyError):
            pool.drain("nope")

    run(main())


def test_failures_open_the_breaker_and_a_probe_after_the_cooldown_closes_it() -> None:
    async def main() -> None:
        clock = Clock()
        pool = Pool(config(node()), clock=clock)
        for _ in range(5):
            (await pool.acquire("a", timeout_s=5)).release("cancel")  # never counted
        assert pool.snapshot()[0].breaker == "closed"
        (await pool.acquire("a", timeout_s=5)).release("failure")
        held = await pool.acquire("a", timeout_s=5)
        waiter = asyncio.create_task(pool.acquire("a", timeout_s=5))
        await settle()
        assert queued(pool) == 1
        held.release("failure")
        await settle()
        assert pool.snapshot()[0].breaker == "open"
        with pytest.raises(NodeUnavailable):
            waiter.result()  # queued behind a failing node: sent elsewhere at once
        assert (in_flight(pool), queued(pool)) == (0, 0)
        assert not pool.views(None)[0].usable
        with pytest.raises(NodeUnavailable):
            await pool.acquire("a", timeout_s=5)
        clock.now += 31
        assert pool.views(None)[0].usable
        probe = await pool.acquire("a", timeout_s=5)
        assert pool.snapshot()[0].breaker == "half-open"
        with pytest.raises(NodeUnavailable):
            await pool.acquire("a", timeout_s=5)  # one probe at a time
        probe.release("success")
        assert pool.snapshot()[0].breaker == "closed"

    run(main())


def test_health_unknown_is_usable_until_a_check_says_otherwise() -> None:
    async def main() -> None:
        pool = Pool(config(node()), clock=Clock())
        assert pool.snapshot()[0].healthy is None
        assert pool.views(None)[0].usable
        holder = await pool.acquire("a", timeout_s=5)
        waiter = asyncio.create_task(pool.acquire("a", timeout_s=5))
        await settle()
        pool.set_health("a", ok=False, error="connection refused", version=None)
        await settle()
        with pytest.raises(NodeUnavailable):
            waiter.result()
        assert not pool.views(None)[0].usable
        assert pool.snapshot()[0].last_error == "connection refused"
        holder.release("cancel")
        pool.set_health("a", ok=True, error=None, version="0.9.0")
        pool.set_health("gone", ok=True, error=None, version="0.9.0")  # removed by a reload
        state = pool.snapshot()[0]
        assert (state.healthy, state.version, state.last_error) == (True, "0.9.0", None)
        assert pool.views(None)[0].usable

    run(main())


def test_views_know_which_node_has_and_has_loaded_a_model() -> None:
    pool = Pool(config(node(), node("b")), clock=Clock())
    pool.set_models(
        "a",
        tags=[{"name": "llama3.2:latest", "digest": "d"}, {"name": "qwen:0.5b"}],
        ps=[{"name": "qwen:0.5b", "model": "qwen:0.5b"}],
    )
    pool.set_models("b", tags=[{"name": "qwen:0.5b"}], ps=[])

    def seen(model: str | None) -> list[tuple[str, bool, bool]]:
        return [(v.name, v.has_model, v.loaded) for v in pool.views(model)]

    assert seen("llama3.2") == [("a", True, False), ("b", False, False)]
    assert seen("qwen:0.5b") == [("a", True, True), ("b", True, False)]
    assert seen(None) == [("a", True, False), ("b", True, False)]
    pool.mark_loaded("b", "QWEN:0.5b")
    assert seen("qwen:0.5b")[1] == ("b", True, True)
    assert pool.knows_model("llama3.2:latest")
    assert not pool.knows_model("mistral")
    assert pool.snapshot()[0].models == ("llama3.2:latest", "qwen:0.5b")
    assert pool.snapshot()[1].loaded == ("qwen:0.5b",)


def test_a_reload_keeps_state_adds_slots_and_retires_removed_nodes() -> None:
    async def main() -> None:
        pool = Pool(config(node(), node("old")), clock=Clock())
        kept = await pool.acquire("a", timeout_s=5)
        waiter = asyncio.create_task(pool.acquire("a", timeout_s=5))
        on_old = await pool.acquire("old", timeout_s=5)
        old_waiter = asyncio.create_task(pool.acquire("old", timeout_s=5))
        await settle()
        pool.reconfigure(config(node(max_parallel=2), node("new")))
        await settle()
        assert pool.names() == ["a", "new"]
        assert waiter.done()  # the second slot went to the waiter
        assert in_flight(pool) == 2
        with pytest.raises(NodeUnavailable):
            old_waiter.result()
        with pytest.raises(KeyError):
            pool.spec("old")
        on_old.release("success")  # finishes on the retired node
        kept.release("success")
        waiter.result().release("success")
        assert in_flight(pool) == 0
        with pytest.raises(NodeUnavailable):
            await pool.acquire("old", timeout_s=5)

    run(main())


def test_a_full_queue_does_not_use_up_the_half_open_probe() -> None:
    async def main() -> None:
        clock = Clock()
        pool = Pool(config(node(max_parallel=2, queue=0), failures=1), clock=clock)
        busy = await pool.acquire("a", timeout_s=5)
        (await pool.acquire("a", timeout_s=5)).release("failure")
        assert pool.snapshot()[0].breaker == "open"
        pool.reconfigure(config(node(max_parallel=1, queue=0), failures=1))  # busy fills it
        clock.now += 31
        with pytest.raises(QueueFull):
            await pool.acquire("a", timeout_s=5)
        assert pool.snapshot()[0].breaker == "open"  # the probe is still to be taken
        busy.release("cancel")
        probe = await pool.acquire("a", timeout_s=5)
        assert pool.snapshot()[0].breaker == "half-open"
        probe.release("success")
        assert pool.snapshot()[0].breaker == "closed"

    run(main())
