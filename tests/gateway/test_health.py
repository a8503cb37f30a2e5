"""Health checks against real simulator nodes: health, catalogue, recovery, reloads, stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from starlette.types import Receive, Scope, Send

from ollama_fleet.gateway.health import HealthChecker
from ollama_fleet.gateway.nodes import Pool
from ollama_fleet.gateway.settings import Health
from ollama_fleet.gateway.upstream import Upstream
from ollama_fleet.simulator.config import Faults
from ollama_fleet.testbed.servers import free_port, serve_in_thread

from .live import FAST_HEALTH, gateway_config, sim_node

pytestmark = pytest.mark.integration


async def _until(what: str, predicate: Callable[[], object], timeout_s: float = 20.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _run(
    nodes: dict[str, str],
    body: Callable[[Pool, HealthChecker], Awaitable[None]],
    health: Health = FAST_HEALTH,
) -> None:
    config = gateway_config(nodes, ())

    async def main() -> None:
        pool = Pool(config)
        upstream = Upstream(config.timeouts)
        checker = HealthChecker(pool, upstream, health)
        checker.start()
        try:
            await body(pool, checker)
        finally:
            await checker.stop()
            await upstream.aclose()

    asyncio.run(main())


def test_a_healthy_node_gets_its_version_models_and_loaded_models() -> None:
    with sim_node(["llama3.2:1b", "qwen2.5:0.5b"]) as node:

        async def body(pool: Pool, checker: HealthChecker) -> None:
            await checker.first_round(10)
            (state,) = pool.snapshot()
            assert (state.healthy, state.version) == (True, "0.12.0-simulator")
            assert state.models == ("llama3.2:1b", "qwen2.5:0.5b")
            assert {entry["name"] for entry in checker.tags["a"]} == set(state.models)
            assert checker.ps["a"] == []

        _run({"a": node.url}, body)


def test_a_failing_node_turns_unhealthy_and_back_with_a_fresh_catalogue() -> None:
    with sim_node(["llama3.2:1b"]) as node:
        node.state.faults = Faults(status=503)

        async def body(pool: Pool, checker: HealthChecker) -> None:
            await checker.first_round(10)
            (state,) = pool.snapshot()
            assert state.healthy is False and state.models == ()
            assert "HTTP 503" in (state.last_error or "")
            node.state.faults = Faults()
            await _until("the node to be healthy", lambda: pool.snapshot()[0].healthy)
            # the catalogue is read as the node turns healthy, not a models_refresh later
            assert pool.snapshot()[0].models == ("llama3.2:1b",)
            assert pool.snapshot()[0].last_error is None

        _run({"a": node.url}, body)


def test_a_node_nobody_listens_on_is_unhealthy_with_the_reason() -> None:
    async def body(pool: Pool, checker: HealthChecker) -> None:
        await checker.first_round(10)
        (state,) = pool.snapshot()
        assert state.healthy is False
        assert "cannot connect" in (state.last_error or "")

    _run({"gone": f"http://127.0.0.1:{free_port()}"}, body)


def test_a_reload_starts_checks_for_new_nodes_and_stops_those_of_removed_ones() -> None:
    with sim_node() as a, sim_node(["qwen2.5:0.5b"]) as b:

        async def body(pool: Pool, checker: HealthChecker) -> None:
            await checker.first_round(10)
            pool.reconfigure(gateway_config({"b": b.url}, ()))
            checker.reconfigure(replace(FAST_HEALTH, interval_s=0.1))
            await _until("node b to be checked", lambda: "b" in checker.tags)
            assert "a" not in checker.tags
            assert [s.name for s in pool.snapshot()] == ["b"]
            assert pool.snapshot()[0].models == ("qwen2.5:0.5b",)

        _run({"a": a.url}, body)


def test_stop_ends_every_node_task() -> None:
    with sim_node() as a, sim_node() as b:

        async def body(pool: Pool, checker: HealthChecker) -> None:
            await checker.first_round(10)
            await checker.stop()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert others == []

        _run({"a": a.url, "b": b.url}, body)


class _OddNode:
    """A node whose /api/version nests so deep that reading it raises RecursionError (an
    error no check expects) until `sane` is set; /api/tags and /api/ps answer one model."""

    def __init__(self) -> None:
        self.sane = False
        self.checks = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/api/version":
            self.checks += 1
            body = b'{"version":"0.12.0"}' if self.sane else b"[" * 100_000 + b"]" * 100_000
        elif scope["path"] == "/api/tags":
            body = b'{"models":[{"name":"llama3.2:1b","digest":"d"}]}'
        else:
            body = b'{"models":[]}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def test_an_unexpected_error_marks_the_node_unhealthy_and_the_checks_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    odd = _OddNode()
    with serve_in_thread(odd) as port:

        async def body(pool: Pool, checker: HealthChecker) -> None:
            await checker.first_round(10)
            (state,) = pool.snapshot()
            assert state.healthy is False
            assert "RecursionError" in (state.last_error or "")
            await _until("two more checks", lambda: odd.checks >= 3)  # backoff, not a freeze
            odd.sane = True
            await _until("the node to be healthy", lambda: pool.snapshot()[0].healthy)
            assert pool.snapshot()[0].models == ("llama3.2:1b",)

        _run({"odd": f"http://127.0.0.1:{port}"}, body)
    unexpected = [
        r
        for r in caplog.records
        if r.name == "ollama_fleet.gateway.health" and "RecursionError" in r.getMessage()
    ]
    assert len(unexpected) == 1  # the same error again is not logged again


# an hour between checks: only the new paths can make a node healthy within a test
SLOW = replace(FAST_HEALTH, interval_s=3600.0, max_backoff_s=3600.0, models_refresh_s=3600.0)


def test_a_wake_checks_a_failing_node_now_not_at_the_end_of_its_backoff() -> None:
    with sim_node(["llama3.2:1b"]) as node:
        node.state.faults = Faults(status=503)

        async def body(pool: Pool, checker: HealthChecker) -> None:
            await checker.first_round(10)
            assert pool.snapshot()[0].healthy is False
            node.state.faults = Faults()
            checker.wake()
            await _until("the woken check", lambda: pool.snapshot()[0].healthy)
            assert pool.snapshot()[0].models == ("llama3.2:1b",)

        _run({"a": node.url}, body, SLOW)


def test_a_model_pulled_on_a_node_is_listed_at_once_not_at_the_next_refresh() -> None:
    import httpx

    with sim_node(["llama3.2:1b"]) as node:

        async def body(pool: Pool, checker: HealthChecker) -> None:
            await checker.first_round(10)
            assert not pool.knows_model("gemma2:2b")
            async with httpx.AsyncClient(base_url=node.url) as client:
                pulled = await client.post(
                    "/api/pull", json={"model": "gemma2:2b", "stream": False}
                )
                assert pulled.status_code == 200, pulled.text
                await client.delete("/_simulator/stats")
                await checker.refresh_catalogues()
                assert pool.knows_model("gemma2:2b")
                # callers at once share refreshes: one runs, one more may follow, not ten
                await asyncio.gather(*(checker.refresh_catalogues() for _ in range(10)))
                stats = (await client.get("/_simulator/stats")).json()
            assert 2 <= stats["requests"].get("/api/tags") <= 3

        _run({"a": node.url}, body, SLOW)


def test_a_recheck_waits_for_the_failing_nodes_fresh_checks() -> None:
    with sim_node(["llama3.2:1b"]) as node:
        node.state.faults = Faults(status=503)

        async def body(pool: Pool, checker: HealthChecker) -> None:
            await checker.first_round(10)
            assert pool.snapshot()[0].healthy is False
            node.state.faults = Faults()
            await checker.recheck(20)  # returns once the woken check is done
            assert pool.snapshot()[0].healthy is True

        _run({"a": node.url}, body, SLOW)


def test_the_first_request_after_a_node_comes_back_is_served_not_refused() -> None:
    from .live import make_key, running_gateway

    key, spec = make_key("user")
    with sim_node(["llama3.2:1b"]) as node:
        node.state.faults = Faults(status=503)
        config = replace(gateway_config({"a": node.url}, (spec,)), health=SLOW)
        with running_gateway(config, wait=False) as gateway, gateway.client(key) as client:
            assert gateway.app.pool.snapshot()[0].healthy is False
            node.state.faults = Faults()  # back, an hour before its next scheduled check
            version = client.get("/api/version")
            assert version.status_code == 200, version.text
            chat = client.post(
                "/api/chat",
                json={"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}],
                      "stream": False},
            )  # fmt: skip
            assert chat.status_code == 200, chat.text
