"""The sessions benchmark's client: multi-turn streaming chats, plain or through sessions.

The same conversations go both ways. Plain: `POST /api/chat` (NDJSON), the client keeping the
history and sending all of it each turn, as an Ollama client does. Sessions: `POST /v1/chat`
(SSE), only the new message and the session's id, the gateway storing and sending the history.
Time to first token (TTFT) is from just before the request is sent to the first line (plain)
or event (sessions) that carries words. Conversations start spread over `spread_s` (the same
offsets both ways), so the streams overlap as a steady 100 rather than starting in one burst.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

Mode = Literal["plain", "sessions"]
QUESTIONS = (
    "why is the sky blue?",
    "and why are sunsets red then?",
    "does the same happen on mars?",
    "explain it to a child in two sentences",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """One conversation: when it starts, and each turn's message and answer length."""

    delay_s: float
    turns: tuple[tuple[str, int], ...]  # (message, max tokens)


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnResult:
    ok: bool
    ttft_s: float | None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """One mode's share of one round: every turn of every conversation."""

    mode: Mode
    turns: tuple[TurnResult, ...]
    wall_s: float
    client_cpu_s: float

    @property
    def ttfts(self) -> list[float]:
        return [t.ttft_s for t in self.turns if t.ok and t.ttft_s is not None]

    @property
    def failed(self) -> list[TurnResult]:
        return [t for t in self.turns if not t.ok]


def scripts(
    *, conversations: int, turns: int, max_tokens: int, spread_s: float
) -> tuple[Script, ...]:
    """A fixed set of conversations: answers of max_tokens/2 to 3*max_tokens/2 tokens, so that
    turns do not all end (and the next ones start) in the same millisecond."""
    rng = random.Random(20261212)
    low, high = max(1, max_tokens // 2), max(1, max_tokens * 3 // 2)
    found = []
    for index in range(conversations):
        script_turns = tuple(
            (f"{QUESTIONS[turn % len(QUESTIONS)]} ({index})", rng.randint(low, high))
            for turn in range(turns)
        )
        found.append(Script(delay_s=spread_s * index / conversations, turns=script_turns))
    return tuple(found)


def new_client(*, timeout_s: float) -> aiohttp.ClientSession:
    """An unbounded connection pool: the client must not be what limits the streams."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10.0)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)


async def _plain(
    client: aiohttp.ClientSession, base: str, headers: Mapping[str, str], model: str, s: Script
) -> list[TurnResult]:
    history: list[dict[str, str]] = []
    results = []
    for message, max_tokens in s.turns:
        history.append({"role": "user", "content": message})
        body = {
            "model": model,
            "messages": history,
            "stream": True,
            "options": {"num_predict": max_tokens},
        }
        start = time.perf_counter()
        ttft: float | None = None
        parts: list[str] = []
        done = False
        async with client.post(f"{base}/api/chat", json=body, headers=headers) as response:
            if response.status != 200:
                text = (await response.read())[:200].decode(errors="replace")
                results.append(TurnResult(ok=False, ttft_s=None, error=f"{response.status} {text}"))
                return results
            async for line in response.content:
                if not line.strip():
                    continue
                chunk: dict[str, Any] = json.loads(line)
                content = (chunk.get("message") or {}).get("content") or ""
                if content:
                    ttft = ttft if ttft is not None else time.perf_counter() - start
                    parts.append(content)
                done = done or bool(chunk.get("done"))
        history.append({"role": "assistant", "content": "".join(parts)})
        error = None if done and ttft is not None else "no words, or no done line"
        results.append(TurnResult(ok=error is None, ttft_s=ttft, error=error))
    return results


async def _sessions(
    client: aiohttp.ClientSession, base: str, headers: Mapping[str, str], model: str, s: Script
) -> list[TurnResult]:
    session_id: str | None = None
    results = []
    for message, max_tokens in s.turns:
        body: dict[str, Any] = {
            "message": message,
            "model": model,
            "options": {"max_tokens": max_tokens},
        }
        if session_id is not None:
            body["session_id"] = session_id
        start = time.perf_counter()
        ttft: float | None = None
        done = False
        async with client.post(f"{base}/v1/chat", json=body, headers=headers) as response:
            if response.status != 200:
                text = (await response.read())[:200].decode(errors="replace")
                results.append(TurnResult(ok=False, ttft_s=None, error=f"{response.status} {text}"))
                return results
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue
                event: dict[str, Any] = json.loads(line[5:])
                if event.get("type") == "token" and event.get("content"):
                    ttft = ttft if ttft is not None else time.perf_counter() - start
                elif event.get("type") == "done":
                    done, session_id = True, str(event["session_id"])
                elif event.get("type") == "error":
                    results.append(TurnResult(ok=False, ttft_s=ttft, error=str(event)))
                    return results
        error = None if done and ttft is not None else "no words, or no done event"
        results.append(TurnResult(ok=error is None, ttft_s=ttft, error=error))
        if error is not None:
            return results
    return results


async def run_phase(
    client: aiohttp.ClientSession,
    *,
    mode: Mode,
    base: str,
    headers: Mapping[str, str],
    model: str,
    conversations: Sequence[Script],
) -> Phase:
    """Every conversation at once (each after its delay), every turn of each in order."""
    talk = _plain if mode == "plain" else _sessions

    async def one(s: Script) -> list[TurnResult]:
        await asyncio.sleep(s.delay_s)
        try:
            return await talk(client, base, headers, model, s)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            return [TurnResult(ok=False, ttft_s=None, error=f"{type(exc).__name__}: {exc}")]

    cpu0, start = time.process_time(), time.perf_counter()
    found = await asyncio.gather(*(one(s) for s in conversations))
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu0
    turns = tuple(turn for conversation in found for turn in conversation)
    return Phase(mode=mode, turns=turns, wall_s=wall_s, client_cpu_s=cpu_s)
