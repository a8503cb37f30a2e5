"""The small ASGI pieces every answer the gateway gives itself is made of.

`Refused` is an answer the gateway gives itself (an error in the route's API's shape);
`answer` and `stream_lines` send a whole body or NDJSON lines (stopped when the client goes:
`disconnected` watches for that); `read_body` bounds what a client may send; `header` and
`dump` read a header and write JSON.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence

from starlette.types import Message, Receive, Scope, Send

from ollama_fleet.gateway.accesslog import Exchange

Headers = Sequence[tuple[str, str]]


class Refused(Exception):
    """The gateway answers the request itself with an error (in the route's API's shape)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        outcome: str,
        headers: Headers = (),
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.outcome = status, message, outcome
        self.headers, self.code = headers, code


async def answer(
    send: Send,
    exchange: Exchange,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: Headers = (),
) -> None:
    """Send one whole response and record its status and size on the exchange."""
    raw = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
    exchange.answered(status, len(body))


async def stream_lines(
    send: Send, receive: Receive, exchange: Exchange, lines: AsyncGenerator[bytes, None]
) -> None:
    """Send a 200 NDJSON response, each line as soon as it comes. A client that goes away
    stops it: `lines` is cancelled and closed, so what feeds it (a pull) stops too."""
    raw = [(b"content-type", b"application/x-ndjson")]
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    size = 0

    async def pump() -> None:
        nonlocal size
        async for line in lines:
            await send({"type": "http.response.body", "body": line, "more_body": True})
            size += len(line)
        await send({"type": "http.response.body", "body": b""})

    work = asyncio.create_task(pump())
    watcher = asyncio.create_task(disconnected(receive))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        work.cancel()
        await asyncio.gather(work, watcher, return_exceptions=True)
        await lines.aclose()
    exchange.answered(200, size)
    error = None if work.cancelled() else work.exception()
    if error is not None and not isinstance(error, OSError):  # OSError: send to a gone client
        raise error
    if work.cancelled() or error is not None:
        exchange.outcome = "client_cancel"


async def disconnected(receive: Receive) -> None:
    """Return when the client is gone (request body messages still coming are skipped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def dump(data: object) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(data, separators=(",", ":")).encode()


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (name in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body; 413 once it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is over {limit} bytes", outcome="bad_request")
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)
