"""The one HTTP client from the gateway to its nodes: aiohttp, a session per process.

Why aiohttp: benchmarks/gateway/upstream_clients.py, 64 concurrent streaming /api/chat
requests against one simulator in a child process, 32 tokens each, 2-core machine:

    client          req/s     ttfb p50   ttfb p99   client CPU per request
    httpx           121 (1x)  270 ms     533 ms     8.2 ms
    httpx+aiohttp   666 (5.5x) 52 ms     111 ms     1.0 ms
    aiohttp         738 (6.1x) 50 ms      84 ms     0.8 ms

(paced at 100 tokens/s: httpx 47 req/s, ttfb p50 657 ms; aiohttp 180 req/s, 33 ms).

The client's Accept-Encoding is not sent on, so a node answers uncompressed: the usage
scanner reads plain bytes, and the error chunk that ends a broken stream never lands inside a
compressed body (Caddy compresses for the client where it is configured to). Bytes pass as
they are: no decompression (a node that compresses anyway has its Content-Encoding relayed),
chunks are handed on as they arrive (`readany`), not split into lines. Hop-by-hop headers
are dropped both ways, the client's Authorization never goes upstream, and Host is the node
URL's host:port.
Timeouts (settings.Timeouts): connect; first byte = until the response headers (a cold model
load); read = between two chunks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

import aiohttp
from yarl import URL

from ollama_fleet.errors import FleetError
from ollama_fleet.gateway.settings import NodeSpec, Timeouts

log = logging.getLogger(__name__)

ErrorKind = Literal["connect", "timeout", "protocol"]

# RFC 9110 7.6.1, plus the ones the gateway sets itself or must not pass on
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_UPSTREAM = HOP_BY_HOP | {
    "host",
    "authorization",
    "content-length",
    "expect",
    "cookie",
    "accept-encoding",
}
# the body may be cut and end with an error chunk, so no length; uvicorn writes its own date
_NOT_DOWNSTREAM = HOP_BY_HOP | {"content-length", "date", "server"}
_SKIP_AUTO = ("Accept-Encoding", "User-Agent", "Content-Type")


class UpstreamError(FleetError, ConnectionError):
    """A node could not be reached or broke the exchange; `kind` says how, `node` which."""

    def __init__(self, message: str, *, kind: ErrorKind, node: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.node = node


def _connection_headers(headers: Iterable[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(token.strip().lower() for token in value.split(","))
    return named


def request_headers(headers: Iterable[tuple[str, str]], *, node: NodeSpec) -> list[tuple[str, str]]:
    """The client's headers as they go to `node`: end-to-end ones only, Host set to the node."""
    headers = list(headers)
    drop = _NOT_UPSTREAM | _connection_headers(headers)
    kept = [(name, value) for name, value in headers if name.lower() not in drop]
    return [("Host", host_header(node)), *kept]


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The node's response headers as they go to the client (end-to-end ones only)."""
    headers = list(headers)
    drop = _NOT_DOWNSTREAM | _connection_headers(headers)
    return [(name, value) for name, value in headers if name.lower() not in drop]


def host_header(node: NodeSpec) -> str:
    """host:port of the node's URL (IPv6 in brackets), as Ollama's host check wants it."""
    url = URL(node.url)
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}"


class UpstreamResponse:
    """A node's answer whose headers arrived; read `chunks()` once, then `aclose()`."""

    def __init__(self, response: aiohttp.ClientResponse, *, node: str, read_s: float) -> None:
        self._response = response
        self._node = node
        self._read_s = read_s
        self._complete = False
        self.status = response.status
        self.headers = response_headers(response.headers.items())

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; raises UpstreamError when the node breaks off."""
        content = self._response.content
        while True:
            try:
                async with asyncio.timeout(self._read_s):
                    chunk = await content.readany()
            except TimeoutError:
                raise UpstreamError(
                    f"no data for {self._read_s:g} s", kind="timeout", node=self._node
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise UpstreamError(_describe(exc), kind="protocol", node=self._node) from None
            if not chunk:
                self._complete = True
                return
            yield chunk

    async def read(self, *, limit: int) -> bytes:
        """The whole body (at most `limit` bytes kept), for small answers such as errors."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            if size < limit:
                parts.append(chunk[: limit - size])
            size += len(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        """Give the connection back when the body was read whole, else close it, so the node
        sees the client go and stops generating."""
        if self._complete:
            self._response.release()
        else:
            self._response.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class Upstream:
    """The long-lived client session to every node (made on first use, inside the loop)."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # no connection limits: the pool already holds each node to max_parallel in
            # flight (queued requests hold no connection), and a second, hidden queue here
            # would stall health checks behind streams and hide waiting from the metrics
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.timeouts.connect_s, sock_read=None
                ),
                skip_auto_headers=_SKIP_AUTO,
            )
        return self._session

    async def open(
        self,
        node: NodeSpec,
        method: str,
        path: str,
        *,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        first_byte_s: float | None = None,
    ) -> UpstreamResponse:
        """Send one request to `node` and wait for its response headers.

        `path` includes the query string. `first_byte_s` overrides the configured time to
        wait for the headers. Raises UpstreamError: "connect" (refused, unreachable, no TCP
        connect within timeouts.connect), "timeout" (connected, but no headers in time: the
        node may be generating) or "protocol" (it hung up or answered something not HTTP).
        """
        url = node.url.rstrip("/") + path
        wait = self.timeouts.first_byte_s if first_byte_s is None else first_byte_s
        try:
            async with asyncio.timeout(wait):
                response = await self._client().request(
                    method,
                    URL(url, encoded=True),
                    headers=request_headers(headers, node=node),
                    data=body if body else None,
                    allow_redirects=False,
                    # per request, so a reloaded connect timeout applies to new connections
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=self.timeouts.connect_s, sock_read=None
                    ),
                )
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(
                f"cannot connect to {node.url}: {_describe(exc.os_error)}",
                kind="connect",
                node=node.name,
            ) from None
        except aiohttp.ConnectionTimeoutError:
            # a connect error like any other: nothing reached the node, another may take it
            raise UpstreamError(
                f"cannot connect to {node.url} within {self.timeouts.connect_s:g} s",
                kind="connect",
                node=node.name,
            ) from None
        except (aiohttp.ServerTimeoutError, TimeoutError):
            raise UpstreamError(
                f"no answer from {node.url} within {wait:g} s", kind="timeout", node=node.name
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(
                f"{node.url} broke off before answering: {_describe(exc)}",
                kind="protocol",
                node=node.name,
            ) from None
        return UpstreamResponse(response, node=node.name, read_s=self.timeouts.read_s)

    async def get_json(self, node: NodeSpec, path: str, timeout_s: float) -> Any:
        """GET `path` from `node` and parse its JSON, all within `timeout_s`.

        Raises UpstreamError also for a non-2xx status ("protocol") or a body that is not JSON.
        """
        try:
            async with asyncio.timeout(timeout_s):
                response = await self.open(
                    node, "GET", path, headers=(), body=b"", first_byte_s=timeout_s
                )
                try:
                    data = await response.read(limit=64 * 1024 * 1024)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise UpstreamError(
                f"no answer from {node.url}{path} in {timeout_s:g} s",
                kind="timeout",
                node=node.name,
            ) from None
        if not 200 <= response.status < 300:
            raise UpstreamError(
                f"{node.url}{path} answered HTTP {response.status}", kind="protocol", node=node.name
            )
        try:
            return json.loads(data)
        except ValueError:
            raise UpstreamError(
                f"{node.url}{path} answered something that is not JSON",
                kind="protocol",
                node=node.name,
            ) from None

    async def aclose(self) -> None:
        """Close every connection; a later call opens a fresh session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
