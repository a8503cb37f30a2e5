"""The small ASGI pieces every answer the gateway gives itself is made of.

`Refused` is an answer the gateway gives itself (an error in the route's API's shape);
`answer` and `stream_lines` send a whole body or NDJSON lines; `read_body` bounds what a
client may send; `header`, `dump` and `json_object` read a header and write / read JSON.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

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


async def stream_lines(send: Send, exchange: Exchange, lines: AsyncIterator[bytes]) -> None:
    """Send a 200 NDJSON response, each line as soon as it comes."""
    raw = [(b"content-type", b"application/x-ndjson")]
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    size = 0
    async for line in lines:
        await send({"type": "http.response.body", "body": line, "more_body": True})
        size += len(line)
    await send({"type": "http.response.body", "body": b""})
    exchange.answered(200, size)


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


def json_object(body: bytes) -> Mapping[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
