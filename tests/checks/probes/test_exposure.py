"""exposure: an accepting port is exposed, unless a forwarder accepts for every port."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ollama_fleet.checks.model import FailureClass, Status, Target
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.settings import ProbeSettings

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()  # what qemu's forwarder does when nothing listens in the guest


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(b"HTTP/1.0 200 OK\r\n\r\n{}")
    await writer.drain()
    writer.close()


async def exposure(handler: Handler, *, forwarder: bool) -> tuple[Status, list[str], set[object]]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = Target(
        name="t", url="http://127.0.0.1:1", closed_ports=(port,), port_forwarder=forwarder
    )
    async with server:
        run = await run_checks(
            [target], only=["exposure"], settings=ProbeSettings(port_timeout_s=1)
        )
    (result,) = run.results
    return (
        result.status,
        [f.message for f in result.findings],
        {f.failure_class for f in result.findings},
    )


def test_an_accepting_port_is_exposed_without_a_forwarder() -> None:
    status, messages, classes = asyncio.run(exposure(hang_up, forwarder=False))
    assert status is Status.FAIL
    assert FailureClass.EXPOSED in classes
    assert any("accepts connections" in m for m in messages)


def test_behind_a_forwarder_a_port_that_hangs_up_is_closed() -> None:
    status, messages, _ = asyncio.run(exposure(hang_up, forwarder=True))
    assert status is Status.OK
    assert any("a forwarder accepted, then closed" in m for m in messages)


def test_behind_a_forwarder_a_port_that_answers_is_exposed() -> None:
    status, _, classes = asyncio.run(exposure(answer, forwarder=True))
    assert status is Status.FAIL
    assert FailureClass.EXPOSED in classes
