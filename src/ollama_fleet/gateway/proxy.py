"""Relays one request to the first of its candidate nodes that answers, streaming as it comes.

Pure ASGI. The caller has read the request body and ordered the candidates; relay takes a
slot on the first node that has one (a full queue or an unavailable node: the next), opens
the request and fails over to the next candidate on a connect error, a protocol error (the
node hung up before it answered) or a 502/503/504, but only until the response starts: once
`http.response.start` went to the client nothing is retried. No headers within
timeouts.first_byte is a 504 at once: the node may be generating a long answer, and running
it again elsewhere would double the work. Any other 5xx with an Ollama or OpenAI error body
(a model too big for memory) is the node's answer: relayed as it is, a success for the
breaker, so requests Ollama refuses cannot open every breaker. Each upstream chunk is sent on
at once (one chunk in flight: uvicorn's send waits for the socket, so a slow client slows the
upstream read). A client disconnect, noticed by a
task that watches `receive` the whole time, cancels whatever relay waits on (queue, headers,
next token) and closes the upstream connection, so the node stops generating. An upstream
break after the start ends the body with an error chunk in the called API's shape, on a line
(NDJSON) or event (SSE) of its own even when the node broke off mid-line.
relay answers the client for every outcome and returns an Outcome for metrics, log and limits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from starlette.types import Receive, Scope, Send

from ollama_fleet.gateway.asgi import disconnected
from ollama_fleet.gateway.nodes import NodeUnavailable, Pool, QueueFull, QueueTimeout, Slot
from ollama_fleet.gateway.shapes import Api, error_body, error_message, stream_error
from ollama_fleet.gateway.upstream import Upstream, UpstreamError, UpstreamResponse
from ollama_fleet.gateway.usage import UsageScanner

log = logging.getLogger(__name__)

Kind = Literal[
    "ok",
    "client_cancel",
    "stream_broken",
    "upstream_error",
    "queue_full",
    "queue_timeout",
    "no_node",
]
NODE_HEADER = b"x-gateway-node"
CLIENT_GONE_STATUS = 499  # for the log only: nothing more reaches the client
NO_NODE_RETRY_AFTER_S = 5
FAILOVER_STATUSES = frozenset({502, 503, 504})  # a proxy before the node, or the node overloaded
_ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How one relayed request ended (never holds prompt or answer text)."""

    node: str | None
    status: int
    kind: Kind
    started: bool  # the node's answer started going to the client (no retry after that)
    ttfb_s: float | None  # relay start to the first token (or the first byte without tokens)
    tokens_in: int | None
    tokens_out: int | None
    bytes_out: int
    attempts: int  # upstream requests opened
    error: str | None


class _Progress:
    """What the relay did so far; read to make the Outcome however the relay ends."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.node: str | None = None
        self.status = CLIENT_GONE_STATUS
        self.started = False
        self.attempts = 0
        self.bytes_out = 0
        self.scanner = UsageScanner()
        self.slot: Slot | None = None
        self.response: UpstreamResponse | None = None
        self.prefetched: bytes | None = None  # a node's error body, read whole to judge it

    def outcome(self, kind: Kind, *, error: str | None = None) -> Outcome:
        usage = self.scanner.usage()
        first = usage.first_token_at if usage.first_token_at is not None else usage.first_byte_at
        return Outcome(
            node=self.node,
            status=self.status,
            kind=kind,
            started=self.started,
            ttfb_s=first - self.start if first is not None else None,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            bytes_out=self.bytes_out,
            attempts=self.attempts,
            error=error,
        )

    async def finish(self, result: Literal["success", "failure", "cancel"]) -> None:
        """Close the upstream response and give the slot back (each at most once)."""
        response, self.response = self.response, None
        if response is not None:
            await response.aclose()
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release(result)


async def relay(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    body: bytes,
    candidates: Sequence[str],
    pool: Pool,
    upstream: Upstream,
    api: Api,
    path: str,
    queue_timeout_s: float,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Outcome:
    """Send the request to the first candidate that takes it and stream its answer back.

    `path` is the upstream path; the scope's query string is added to it. `extra_headers`
    (such as the rate-limit headers) go on every answer, relayed or the relay's own.
    """
    progress = _Progress(time.monotonic())
    query = scope.get("query_string", b"")
    target = f"{path}?{query.decode('latin-1')}" if query else path
    exchange = _Exchange(
        scope=scope,
        send=send,
        body=body,
        pool=pool,
        upstream=upstream,
        api=api,
        path=target,
        extra_headers=tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra_headers),
    )
    work = asyncio.create_task(exchange.run(candidates, progress, queue_timeout_s))
    watcher = asyncio.create_task(disconnected(receive))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work.done():
            work.cancel()
        await asyncio.gather(work, watcher, return_exceptions=True)
        await progress.finish("cancel")  # a no-op unless the client went away
    if not work.cancelled() and work.exception() is None:
        return work.result()
    error = work.exception() if not work.cancelled() else None
    if error is not None and not isinstance(error, OSError):  # OSError: send to a gone client
        raise error
    return progress.outcome("client_cancel", error="client disconnected")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Exchange:
    scope: Scope
    send: Send
    body: bytes
    pool: Pool
    upstream: Upstream
    api: Api
    path: str
    extra_headers: tuple[tuple[bytes, bytes], ...]

    async def run(
        self, candidates: Sequence[str], progress: _Progress, queue_timeout_s: float
    ) -> Outcome:
        failures: list[tuple[str, str, str]] = []  # node, short reason, full reason
        full_retry: int | None = None
        for name in candidates:
            try:
                progress.slot = await self.pool.acquire(name, timeout_s=queue_timeout_s)
            except QueueFull as exc:
                retry = exc.retry_after_s
                full_retry = retry if full_retry is None else min(full_retry, retry)
                continue
            except NodeUnavailable:
                continue
            except QueueTimeout as exc:
                progress.node = name
                message = f"no free slot on node {name} within {queue_timeout_s:g} s"
                return await self._refuse(
                    progress, 503, "queue_timeout", message, exc.retry_after_s
                )
            progress.node = name
            failure = await self._open(progress)
            if failure is None:
                return await self._stream(progress)
            if failure[1] == "timeout":
                wait = self.upstream.timeouts.first_byte_s
                message = f"node {name} did not answer within {wait:g} s"
                return await self._refuse(progress, 504, "upstream_error", message, None)
            failures.append(failure)
        if full_retry is not None:
            message = "every node that has the model is busy and its queue is full"
            return await self._refuse(progress, 503, "queue_full", message, full_retry)
        if not failures:
            progress.node = None
            message = "no healthy node can take the request now"
            return await self._refuse(progress, 503, "no_node", message, NO_NODE_RETRY_AFTER_S)
        short = ", ".join(f"{node} ({reason})" for node, reason, _ in failures)
        full = "; ".join(f"{node}: {reason}" for node, _, reason in failures)
        return await self._refuse(
            progress, 502, "upstream_error", f"no node answered: {short}", None, full
        )

    async def _open(self, progress: _Progress) -> tuple[str, str, str] | None:
        """Open the request on the slot's node; None when it answered, else why it failed."""
        slot = progress.slot
        assert slot is not None
        progress.attempts += 1
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.scope["headers"]]
        try:
            response = await self.upstream.open(
                slot.spec, self.scope["method"], self.path, headers=headers, body=self.body
            )
        except UpstreamError as exc:
            await progress.finish("failure")
            return slot.node, exc.kind, str(exc)
        progress.response = response
        if response.status < 500:
            return None
        try:
            data = await response.read(limit=_ERROR_BODY_BYTES)
        except UpstreamError as exc:
            detail = str(exc)
        else:
            failover = response.status in FAILOVER_STATUSES
            if not failover and error_message(data) is not None:
                progress.prefetched = data  # Ollama refused it: the node works
                return None
            detail = _error_text(data)
        await progress.finish("failure")
        # Ollama's own message (a model too big for memory, ...) is the client's best clue
        reason = f"HTTP {response.status}: {detail}" if detail else f"HTTP {response.status}"
        return slot.node, reason, reason

    async def _stream(self, progress: _Progress) -> Outcome:
        response, slot = progress.response, progress.slot
        assert response is not None and slot is not None
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((NODE_HEADER, slot.node.encode()))
        headers.extend(self.extra_headers)
        progress.status = response.status
        await self.send(
            {"type": "http.response.start", "status": response.status, "headers": headers}
        )
        progress.started = True
        chunks = _once(progress.prefetched) if progress.prefetched else response.chunks()
        tail = b""  # the last bytes sent: did they end a line (NDJSON) or an event (SSE)?
        try:
            async for chunk in chunks:
                progress.scanner.feed(chunk, now=time.monotonic())
                await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
                progress.bytes_out += len(chunk)
                tail = (tail + chunk[-4:])[-4:]  # no copy of the whole chunk
        except UpstreamError as exc:
            message = f"upstream node {slot.node} broke off the stream: {exc}"
            last = stream_error(self.api, message, after=tail)
            await self.send({"type": "http.response.body", "body": last, "more_body": False})
            progress.bytes_out += len(last)
            await progress.finish("failure")
            log.warning("gateway: %s", message)
            return progress.outcome("stream_broken", error=message)
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        await progress.finish("success")  # a 4xx is Ollama answering: the node works
        return progress.outcome("ok")

    async def _refuse(
        self,
        progress: _Progress,
        status: int,
        kind: Kind,
        message: str,
        retry_after_s: int | None,
        error: str | None = None,
    ) -> Outcome:
        headers = [(b"content-type", b"application/json")]
        if retry_after_s is not None:
            headers.append((b"retry-after", str(retry_after_s).encode()))
        headers.extend(self.extra_headers)
        progress.status = status
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        data = error_body(self.api, message, status=status)
        await self.send({"type": "http.response.body", "body": data, "more_body": False})
        progress.bytes_out += len(data)
        return progress.outcome(kind, error=error or message)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _error_text(data: bytes) -> str:
    """The message of an error body, else the start of the body (one line)."""
    message = error_message(data)
    if message is not None:
        return message[:200]
    return data[:200].decode("utf-8", "replace").replace("\n", " ")
