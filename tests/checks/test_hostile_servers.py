"""Nothing a server sends can crash a run: garbage, hang-ups, endless streams, wrong shapes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from ollama_fleet.checks.model import FailureClass, RequiredModel, Status, Target
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.settings import ProbeSettings
from raw_servers import Handler, raw_servers

pytestmark = pytest.mark.integration


def _http(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return b""


async def _chunk_forever(writer: asyncio.StreamWriter, content_type: str, data: bytes) -> None:
    """A 200 with a chunked body that repeats `data` until the client goes away."""
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n".encode())
    writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (len(data), data)
    try:
        while True:
            writer.write(chunk)
            await writer.drain()
            # drain() returns at once while the client keeps up: yield, or this loop starves
            # the other servers sharing the event loop
            await asyncio.sleep(0)
    except (ConnectionError, OSError):
        pass


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(bytes(range(256)) * 8)
    await writer.drain()
    writer.close()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()


async def huge_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nX-Junk: " + b"a" * 200_000 + b"\r\n\r\n")
    await writer.drain()
    writer.close()


async def wrong_shapes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Valid JSON everywhere, but never the shape Ollama sends."""
    await _read_request(reader)
    writer.write(_http("200 OK", json.dumps([1, "two", None, {"models": "not a list"}]).encode()))
    await writer.drain()
    writer.close()


async def endless_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Chunked NDJSON chunks that never say done, as fast as the client reads."""
    request = await _read_request(reader)
    if not request.startswith(b"POST"):
        writer.write(_http("200 OK", b'{"version": "0.0.0", "models": []}'))
        await writer.drain()
        writer.close()
        return
    line = b'{"message": {"role": "assistant", "content": "la"}, "done": false}\n'
    await _chunk_forever(writer, "application/x-ndjson", line)


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every answer is a 200 whose chunked body never ends."""
    await _read_request(reader)
    await _chunk_forever(writer, "application/json", b" " * 65536)


@pytest.fixture(scope="module")
def hostile_ports() -> Iterator[dict[str, int]]:
    handlers: dict[str, Handler] = {
        "garbage": garbage,
        "hang-up": hang_up,
        "huge-header": huge_header,
        "wrong-shapes": wrong_shapes,
        "endless-stream": endless_stream,
        "endless-body": endless_body,
    }
    with raw_servers(handlers) as ports:
        yield ports


def test_every_check_of_every_hostile_server_ends_in_a_finding(
    hostile_ports: dict[str, int],
) -> None:
    targets = [
        Target(
            name=name,
            url=f"http://127.0.0.1:{port}",
            required_models=(RequiredModel(name="llama3.2:1b"),),
            closed_ports=(),
        )
        for name, port in hostile_ports.items()
    ]
    settings = ProbeSettings(read_timeout_s=5, check_timeout_s=10, deadline_s=60)
    run = asyncio.run(run_checks(targets, settings=settings))
    by_target = {
        name: {r.check: r for r in run.results if r.target == name} for name in hostile_ports
    }
    for name, results in by_target.items():
        assert set(results) == {"connectivity", "models", "chat", "auth"}, name
        for result in results.values():
            if (name, result.check) == ("endless-stream", "connectivity"):
                continue  # it answers GETs like Ollama: only its chat stream is endless
            assert result.status is Status.FAIL, (name, result.check, result.findings)
            assert result.failure_class is not None and result.hint
    assert by_target["garbage"]["connectivity"].failure_class is FailureClass.BAD_RESPONSE
    assert by_target["hang-up"]["models"].failure_class is FailureClass.BAD_RESPONSE
    assert by_target["wrong-shapes"]["models"].failure_class is FailureClass.BAD_RESPONSE
    for check in ("connectivity", "models", "chat", "auth"):
        # read up to the cap (1 MB), not until the timeout
        assert "answer larger than" in by_target["endless-body"][check].summary
    assert by_target["endless-stream"]["connectivity"].status is Status.OK
    endless = by_target["endless-stream"]["chat"]
    assert endless.failure_class in (FailureClass.BAD_RESPONSE, FailureClass.READ_TIMEOUT)
