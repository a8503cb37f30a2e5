"""The HTTP side of probing: one httpx client per target, shared TLS contexts, timed GETs."""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ollama_fleet.checks.model import Target
from ollama_fleet.checks.settings import ProbeSettings

ALPN_PROTOCOLS = ("h2", "http/1.1")


@functools.lru_cache(maxsize=32)
def client_context(ca_file: str | None) -> ssl.SSLContext:
    """The verifying context of the HTTP clients, for the system store or a CA file.

    Built once per CA file: loading the system store costs milliseconds, and a run over
    hundreds of targets shares it. httpx sets its own ALPN on it, so the tls check, which
    reports what the server offers, uses `probe_context` instead.
    """
    return ssl.create_default_context(cafile=ca_file)


@functools.lru_cache(maxsize=32)
def probe_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying context offering h2 and http/1.1, for the tls check's own handshake."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
    return ctx


def make_client(target: Target, settings: ProbeSettings) -> httpx.AsyncClient:
    """The client every HTTP check of `target` shares, so they reuse its connection."""
    headers = {"User-Agent": "ollama-fleet-check"}
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    return httpx.AsyncClient(
        base_url=target.url,
        verify=client_context(target.tls.ca_file),
        # HTTP/1.1 on purpose: for many small requests httpx's HTTP/2 pool costs more CPU
        # (docs/performance.md). The tls check reports the ALPN the server offers itself.
        http2=False,
        limits=httpx.Limits(max_connections=2),
        headers=headers,
        timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
        follow_redirects=False,
        trust_env=False,
    )


@dataclass(slots=True)
class Timings:
    """Milestones of one request, in ms from its start, from httpcore's trace events."""

    start: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        self.marks[event] = (time.perf_counter() - self.start) * 1000

    def _span(self, prefix: str) -> float | None:
        begin = self.marks.get(f"{prefix}.started")
        end = self.marks.get(f"{prefix}.complete")
        return None if begin is None or end is None else round(end - begin, 2)

    def summary(self, total_ms: float) -> dict[str, float | None]:
        first_byte = self.marks.get("http11.receive_response_headers.complete")
        return {
            # None means the request reused an open connection: no connect, no handshake.
            "connect_ms": self._span("connection.connect_tcp"),
            "tls_ms": self._span("connection.start_tls"),
            "first_byte_ms": None if first_byte is None else round(first_byte, 2),
            "total_ms": round(total_ms, 2),
        }


def json_body(response: Answer) -> Any:
    """The response's JSON; raises json.JSONDecodeError for anything else."""
    return json.loads(response.content)


async def plain_http_status(url: str, *, timeout_s: float) -> tuple[int, str]:
    """Status code and Location of a plain-HTTP GET, read off the status line and headers.

    A raw request on purpose: this probe only needs the first lines of the answer, and a
    full client per target cost more than all the rest of the tls check.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "User-Agent: ollama-fleet-check\r\nConnection: close\r\n\r\n"
    )
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request.encode("ascii"))
            head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP answer: {lines[0][:80]!r}")
    location = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "location":
            location = value.strip()
    return int(status_line[1]), location


class AnswerTooLarge(Exception):
    """A server sent more than the run allows for one answer (settings.max_answer_bytes)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer read in full, but never more than the cap."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    http_version: str


async def fetch(client: httpx.AsyncClient, request: httpx.Request, *, max_bytes: int) -> Answer:
    """Send `request` and read its body up to `max_bytes`; AnswerTooLarge beyond that.

    A server can send an endless body: reading it whole would grow memory until a timeout.
    """
    response = await client.send(request, stream=True)
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise AnswerTooLarge(f"answer larger than {max_bytes} bytes")
    finally:
        await response.aclose()
    return Answer(response.status_code, response.headers, bytes(body), response.http_version)
