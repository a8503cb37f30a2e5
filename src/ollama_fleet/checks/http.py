"""The HTTP side of probing: one httpx client per target, shared TLS contexts, timed GETs."""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ollama_fleet.checks.model import Target
from ollama_fleet.checks.settings import ProbeSettings

ALPN_PROTOCOLS = ("h2", "http/1.1")


@functools.lru_cache(maxsize=32)
def verify_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context for the system store or a given CA file (built once each).

    Loading the system store costs milliseconds; a run over hundreds of targets shares it.
    """
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
        verify=verify_context(target.tls.ca_file),
        http2=True,
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
        first_byte = next(
            (
                self.marks[name]
                for name in (
                    "http11.receive_response_headers.complete",
                    "http2.receive_response_headers.complete",
                )
                if name in self.marks
            ),
            None,
        )
        return {
            # None means the request reused an open connection: no connect, no handshake.
            "connect_ms": self._span("connection.connect_tcp"),
            "tls_ms": self._span("connection.start_tls"),
            "first_byte_ms": None if first_byte is None else round(first_byte, 2),
            "total_ms": round(total_ms, 2),
        }


def json_body(response: httpx.Response) -> Any:
    """The response's JSON; raises json.JSONDecodeError for anything else."""
    return json.loads(response.content)
