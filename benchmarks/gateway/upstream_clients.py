"""Benchmark: which HTTP client the gateway should use to stream answers from its nodes.

Starts one simulator as a child process (`ollama-fleet simulator --port 0`, so client and
server share neither an event loop nor a GIL), then, in the same run and in turn, has each
client make CONCURRENCY concurrent streaming POST /api/chat requests, ROUNDS times:

- httpx: httpx.AsyncClient (the reference, ratios are against it);
- httpx+aiohttp: httpx.AsyncClient over httpx_aiohttp.AiohttpTransport;
- aiohttp: aiohttp.ClientSession with `iter_any()`.

Each reads the body chunk by chunk as it arrives. Printed per client: requests/s, time to
the first body byte p50/p99, the client's own CPU per request, and each as a ratio to httpx.

    .venv/bin/python benchmarks/gateway/upstream_clients.py [--concurrency 64] [--rounds 5]
        [--tokens 32] [--tokens-per-second 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

BANNER = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
MODEL = "llama3.2:1b"


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """One client's results over all rounds."""

    name: str
    requests: int
    wall_s: float
    cpu_s: float
    ttfb_s: tuple[float, ...]

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    def ttfb(self, q: float) -> float:
        ordered = sorted(self.ttfb_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.requests


@contextlib.contextmanager
def simulator(tokens_per_second: float) -> Iterator[str]:
    """The simulator in its own process group; yields its base URL."""
    exe = Path(sys.executable).with_name("ollama-fleet")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "simulator.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(exe),
                    "simulator",
                    "--port",
                    "0",
                    "--tokens-per-second",
                    f"{tokens_per_second}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 30
            while not (found := BANNER.search(log.read_text(errors="replace"))):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"simulator did not start: {log.read_text()[-500:]}")
                time.sleep(0.05)
            yield found.group(1)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


Stream = Callable[[bytes], AsyncIterator[bytes]]


@contextlib.asynccontextmanager
async def httpx_stream(base: str, *, over_aiohttp: bool) -> AsyncIterator[Stream]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    transport = AiohttpTransport() if over_aiohttp else httpx.AsyncHTTPTransport(limits=limits)
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(
        base_url=base, transport=transport, limits=limits, timeout=timeout
    ) as client:

        async def stream(body: bytes) -> AsyncIterator[bytes]:
            async with client.stream("POST", "/api/chat", content=body) as response:
                async for chunk in response.aiter_raw():
                    yield chunk

        yield stream


@contextlib.asynccontextmanager
async def aiohttp_stream(base: str) -> AsyncIterator[Stream]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=60)
    async with aiohttp.ClientSession(
        base, connector=connector, timeout=timeout, auto_decompress=False
    ) as session:

        async def stream(body: bytes) -> AsyncIterator[bytes]:
            async with session.post("/api/chat", data=body) as response:
                async for chunk in response.content.iter_any():
                    yield chunk

        yield stream


async def one(stream: Stream, body: bytes) -> float:
    """Read one whole answer; returns the time to its first body byte."""
    start = time.perf_counter()
    first = 0.0
    async for chunk in stream(body):
        if chunk and not first:
            first = time.perf_counter() - start
    return first


async def measure(
    name: str,
    client: Callable[[], contextlib.AbstractAsyncContextManager[Stream]],
    *,
    concurrency: int,
    rounds: int,
    body: bytes,
) -> Figures:
    async with client() as stream:
        await asyncio.gather(*(one(stream, body) for _ in range(concurrency)))  # warm up
        ttfb: list[float] = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            results: list[Awaitable[float]] = [one(stream, body) for _ in range(concurrency)]
            ttfb.extend(await asyncio.gather(*results))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Figures(name=name, requests=len(ttfb), wall_s=wall, cpu_s=cpu, ttfb_s=tuple(ttfb))


async def run(base: str, *, concurrency: int, rounds: int, tokens: int) -> list[Figures]:
    body = (
        b'{"model": "%s", "messages": [{"role": "user", "content": "why is the sky blue"}],'
        b' "options": {"num_predict": %d}}' % (MODEL.encode(), tokens)
    )
    clients: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Stream]]] = {
        "httpx": lambda: httpx_stream(base, over_aiohttp=False),
        "httpx+aiohttp": lambda: httpx_stream(base, over_aiohttp=True),
        "aiohttp": lambda: aiohttp_stream(base),
    }
    return [
        await measure(name, make, concurrency=concurrency, rounds=rounds, body=body)
        for name, make in clients.items()
    ]


def report(figures: list[Figures]) -> str:
    ref = figures[0]
    lines = [
        f"{'client':<14} {'req/s':>8} {'x':>6} {'ttfb p50 ms':>12} {'x':>6} "
        f"{'ttfb p99 ms':>12} {'x':>6} {'cpu ms/req':>11} {'x':>6}"
    ]
    for f in figures:
        lines.append(
            f"{f.name:<14} {f.rps:8.1f} {f.rps / ref.rps:6.2f} "
            f"{1000 * f.ttfb(0.5):12.2f} {f.ttfb(0.5) / ref.ttfb(0.5):6.2f} "
            f"{1000 * f.ttfb(0.99):12.2f} {f.ttfb(0.99) / ref.ttfb(0.99):6.2f} "
            f"{f.cpu_ms_per_request:11.3f} {f.cpu_ms_per_request / ref.cpu_ms_per_request:6.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32, help="num_predict of each answer")
    parser.add_argument("--tokens-per-second", type=float, default=0.0)
    args = parser.parse_args()
    with simulator(args.tokens_per_second) as base:
        figures = asyncio.run(
            run(base, concurrency=args.concurrency, rounds=args.rounds, tokens=args.tokens)
        )
    print(
        f"{args.concurrency} concurrent streaming /api/chat x {args.rounds} rounds, "
        f"{args.tokens} tokens each at {args.tokens_per_second:g} tokens/s (0: unpaced)"
    )
    print(report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
