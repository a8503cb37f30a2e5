"""Streaming answers of the simulator (test double), with the stream faults applied."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from ollama_fleet.simulator.config import Faults

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


class StreamCut(Exception):
    """Raised inside a body iterator to drop the connection mid-stream (a fault)."""


@dataclass(frozen=True)
class Final:
    """The last chunk of a stream; `commit` runs only if it is really sent (e.g. pull success)."""

    data: bytes
    commit: Callable[[], None] | None = None


Chunk = bytes | Final


def ndjson(obj: Any) -> bytes:
    """One NDJSON line."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def sse(obj: Any) -> bytes:
    """One server-sent event carrying JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def error_json(message: str, status_code: int) -> JSONResponse:
    """An Ollama-style error answer: {"error": message}."""
    return JSONResponse({"error": message}, status_code=status_code)


async def paced(items: Iterable[str], tokens_per_second: float) -> AsyncGenerator[str, None]:
    """Yield `items` at `tokens_per_second` (no delay when 0), without accumulating drift."""
    start = time.monotonic()
    for index, item in enumerate(items):
        if tokens_per_second > 0:
            await asyncio.sleep(
                max(0.0, start + (index + 1) / tokens_per_second - time.monotonic())
            )
        yield item


async def with_faults(
    chunks: AsyncGenerator[Chunk, None],
    faults: Faults | None,
    error_chunk: Callable[[str], bytes],
) -> AsyncGenerator[bytes, None]:
    """Apply cut_stream_after and stream_error to a stream whose last item is a Final.

    `chunks` is closed however this ends, so a generation behind it stops at once.
    """
    cut_after = faults.cut_stream_after if faults else None
    stream_error = faults.stream_error if faults else None
    sent = 0
    async with aclosing(chunks):
        async for chunk in chunks:
            if cut_after is not None and (sent >= cut_after or isinstance(chunk, Final)):
                raise StreamCut(f"simulated stream cut after {sent} chunks")
            if isinstance(chunk, Final):
                if stream_error is not None:
                    yield error_chunk(stream_error)
                    return
                if chunk.commit is not None:
                    chunk.commit()
                yield chunk.data
                return
            sent += 1
            yield chunk


class FaultableStream(StreamingResponse):
    """A StreamingResponse that, on StreamCut, returns without finishing the body.

    Uvicorn then closes the connection, so the client sees an incomplete chunked body.
    When the client goes away first, Starlette stops iterating the body; closing it here
    (rather than whenever it is garbage-collected) stops the generation behind it at once.
    """

    def __init__(
        self,
        chunks: AsyncGenerator[Chunk, None],
        faults: Faults | None,
        *,
        media_type: str,
        error_chunk: Callable[[str], bytes],
    ) -> None:
        self._body = with_faults(chunks, faults, error_chunk)
        super().__init__(self._body, media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except StreamCut:
            return
        finally:
            await self._body.aclose()


def ndjson_stream(chunks: AsyncGenerator[Chunk, None], faults: Faults | None) -> FaultableStream:
    """An NDJSON stream (Ollama's native streaming format)."""
    return FaultableStream(
        chunks, faults, media_type=NDJSON, error_chunk=lambda text: ndjson({"error": text})
    )
