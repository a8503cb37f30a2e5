"""The gateway benchmark's client: concurrent streaming chats, time to first token per request.

One aiohttp session serves every column, so each sees the same client and the same requests:
POST /v1/chat/completions with `stream: true`, read as Server-Sent Events. Time to first token
is the time from sending the request to the first `data:` event whose delta has content
(LiteLLM, for one, may send a role-only event first). A request counts as ok when it
answered 200 and its stream ended with `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

PATH = "/v1/chat/completions"


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One way to the simulators: base URLs the client rotates over, and its headers."""

    name: str
    bases: tuple[str, ...]  # "http://127.0.0.1:PORT", no path
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold a key


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """One request: ok or not, its time to first token (None when no content came)."""

    ok: bool
    ttft_s: float | None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """One column's share of one round."""

    results: tuple[Result, ...]
    wall_s: float


def chat_bodies(*, model: str, max_tokens: int, count: int) -> tuple[bytes, ...]:
    """The requests of one batch, the same for every column: answers of max_tokens/2 to
    3*max_tokens/2 tokens (a fixed sequence), so that the streams do not all end, and the
    next ones all start, in the same millisecond, as equal lengths at one pace would make them.
    """
    rng = random.Random(20261201)
    low, high = max(1, max_tokens // 2), max(1, max_tokens * 3 // 2)
    bodies = []
    for _ in range(count):
        body = {
            "model": model,
            "stream": True,
            "max_tokens": rng.randint(low, high),
            "messages": [{"role": "user", "content": "why is the sky blue? answer in detail"}],
        }
        bodies.append(json.dumps(body).encode())
    return tuple(bodies)


def has_content(line: bytes) -> bool:
    """True for an SSE `data:` line whose first choice's delta carries text."""
    if not line.startswith(b"data:"):
        return False
    payload = line[5:].strip()
    if not payload or payload == b"[DONE]":
        return False
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    choices = event.get("choices") if isinstance(event, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return False
    delta = choices[0].get("delta") or {}
    return bool(isinstance(delta, dict) and delta.get("content"))


async def one_chat(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], body: bytes
) -> Result:
    """Send one chat and read its whole stream."""
    start = time.perf_counter()
    ttft: float | None = None
    done = False
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                text = (await response.read())[:200].decode(errors="replace")
                return Result(ok=False, ttft_s=None, error=f"HTTP {response.status}: {text}")
            async for line in response.content:
                if ttft is None and has_content(line):
                    ttft = time.perf_counter() - start
                elif line.startswith(b"data: [DONE]"):
                    done = True
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Result(ok=False, ttft_s=ttft, error=f"{type(exc).__name__}: {exc}")
    if not done:
        return Result(ok=False, ttft_s=ttft, error="stream ended without data: [DONE]")
    return Result(ok=ttft is not None, ttft_s=ttft, error=None if ttft else "no content")


async def run_batch(
    session: aiohttp.ClientSession,
    column: Column,
    *,
    bodies: Sequence[bytes],
    concurrency: int,
) -> Batch:
    """One chat per body, `concurrency` in flight, in order, base URLs in turn."""
    urls = itertools.cycle([f"{base}{PATH}" for base in column.bases])
    headers = {"Content-Type": "application/json", **column.headers}
    left = iter(bodies)
    results: list[Result] = []

    async def worker() -> None:
        for body in left:
            results.append(await one_chat(session, next(urls), headers, body))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(bodies)))))
    return Batch(results=tuple(results), wall_s=time.perf_counter() - start)


def new_session(*, timeout_s: float) -> aiohttp.ClientSession:
    """Unbounded connection pool (the client must not be what limits concurrency)."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10.0)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in (0, 1]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(1, math.ceil(len(ordered) * q)) - 1]


@dataclass(slots=True, kw_only=True)
class Tally:
    """One column's figures, summed over the rounds (mutable while the rounds run)."""

    column: Column
    pid: int | None  # the proxy's; None for direct
    ttft_s: list[float] = field(default_factory=list)
    rounds: list[list[float]] = field(default_factory=list)  # each round's TTFTs
    requests: int = 0
    failed: int = 0
    first_error: str | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0  # the proxy's
    client_cpu_s: float = 0.0
    end_rss_kib: int = 0
    hwm_kib: int = 0

    def add(self, batch: Batch, *, cpu_s: float, client_cpu_s: float) -> None:
        self.wall_s += batch.wall_s
        self.cpu_s += cpu_s
        self.client_cpu_s += client_cpu_s
        self.rounds.append([])
        for result in batch.results:
            self.requests += 1
            if result.ok and result.ttft_s is not None:
                self.ttft_s.append(result.ttft_s)
                self.rounds[-1].append(result.ttft_s)
            else:
                self.failed += 1
                self.first_error = self.first_error or result.error

    def ttft_ms(self, q: float) -> float:
        return 1000 * percentile(self.ttft_s, q)

    def added_by_round_ms(self, direct: Tally, q: float) -> list[float]:
        """Per round: this column's TTFT percentile minus the direct column's."""
        return [
            1000 * (percentile(ours, q) - percentile(theirs, q))
            for ours, theirs in zip(self.rounds, direct.rounds, strict=True)
        ]

    def added_ms(self, direct: Tally, q: float) -> float:
        """The median over the rounds of the added TTFT: each round compares columns
        measured within seconds of each other, so a burst of load from elsewhere on the
        machine moves one round, not the figure."""
        return statistics.median(self.added_by_round_ms(direct, q))

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0
