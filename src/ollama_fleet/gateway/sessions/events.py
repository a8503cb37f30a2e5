"""Ollama's NDJSON chat stream turned into the sessions API's server-sent events.

`ChatStream` is the ASGI `send` the relay answers through: the client's `text/event-stream`
starts with the first word of an upstream 200 (when streaming), so an answer that fails before
any word is still a plain problem; each line's words go out as one `token` event and into the
recorder, the end of the answer is kept for the caller; any other status is held back (its
body read for Ollama's message, its Retry-After and rate-limit headers kept) for the caller to
answer as a problem. The relay's end of body is not passed on: the caller ends the response
after the last write (`done` means stored).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Message, Send

from ollama_fleet.gateway.sessions.recorder import AnswerRecorder

_PASSED_HEADERS = (b"x-gateway-node", b"x-ratelimit-", b"retry-after")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx and the like: do not buffer the stream
]
_MAX_ERROR_BODY = 64 * 1024


def event(data: dict[str, Any]) -> bytes:
    """One SSE event carrying `data` as JSON."""
    return (
        b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    )


class ChatStream:
    """The relay's view of the client for one /v1/chat turn."""

    def __init__(
        self, send: Send, *, session_id: str, stream: bool, recorder: AnswerRecorder
    ) -> None:
        self.client_send = send
        self.session_id = session_id
        self.stream = stream
        self.recorder = recorder
        self.status: int | None = None
        self.started = False  # the client's event stream has begun
        self.done = False  # Ollama said done: the answer is whole
        self.error: str | None = None  # Ollama's error line, or the relay's stream error
        self.prompt_tokens: int | None = None
        self.answer_tokens: int | None = None
        self.upstream_body = b""  # an answer that is not 200, for its message
        self.headers: list[tuple[bytes, bytes]] = []
        self._tail = b""
        # a token event is this, the content as a JSON string, and _token_tail: no dict and no
        # json.dumps of one per token (the relay's hot path)
        self._token_tail = b',"session_id":' + json.dumps(session_id).encode() + b"}\n\n"

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if name.lower().startswith(_PASSED_HEADERS)
            ]
            return
        body: bytes = message.get("body", b"")
        if self.status != 200:
            self.upstream_body = (self.upstream_body + body)[:_MAX_ERROR_BODY]
            return
        lines = (self._tail + body).split(b"\n")
        self._tail = lines.pop()
        if not message.get("more_body", False) and self._tail:
            lines.append(self._tail)  # a last line without its newline
            self._tail = b""
        out = b"".join(self._line(line) for line in lines if line.strip())
        if out and self.stream:
            if not self.started:
                await self.begin()
            await self.client_send({"type": "http.response.body", "body": out, "more_body": True})

    async def begin(self) -> None:
        """Start the client's event stream (200, text/event-stream, the node's headers)."""
        start = {"type": "http.response.start", "status": 200}
        await self.client_send({**start, "headers": SSE_HEADERS + self.headers})
        self.started = True

    @property
    def problem_headers(self) -> tuple[tuple[str, str], ...]:
        """Retry-After and the rate-limit headers of an answer that is not 200."""
        return tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in self.headers
            if name.lower() != b"x-gateway-node"
        )

    def _line(self, line: bytes) -> bytes:
        try:
            data = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.error = "the node sent a line that is not JSON"
            return b""
        if not isinstance(data, dict):
            return b""
        if isinstance(data.get("error"), str | dict):
            error = data["error"]
            self.error = error if isinstance(error, str) else str(error.get("message", error))
            return b""
        if data.get("done") is True:
            self.done = True
            self.prompt_tokens = _count(data.get("prompt_eval_count"))
            self.answer_tokens = _count(data.get("eval_count"))
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or not content:
            return b""
        self.recorder.feed(content)
        text = json.dumps(content, ensure_ascii=False).encode()
        return b'data: {"type":"token","content":' + text + self._token_tail

    def upstream_error(self) -> str | None:
        """Ollama's (or the relay's) message in an answer that is not 200."""
        try:
            data = json.loads(self.upstream_body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            error = error.get("message")
        return error if isinstance(error, str) else None

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.answer_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.answer_tokens or 0)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
