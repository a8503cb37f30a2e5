"""The load test's driver: n chat requests through one httpx client, c of them in flight."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from ollama_fleet import __version__
from ollama_fleet.checks.classify import classify_exception, classify_stream_error
from ollama_fleet.checks.http import client_context
from ollama_fleet.checks.model import FailureClass, Finding, fail
from ollama_fleet.loadtest.api import (
    BadAnswer,
    Piece,
    chat_path,
    classify_answer,
    parse_native,
    parse_openai,
    request_body,
)
from ollama_fleet.loadtest.model import Api, LoadRun, LoadSettings, RequestOutcome, TokenSource

__all__ = ["MAX_ANSWER_BYTES", "Progress", "run_loadtest"]

log = logging.getLogger(__name__)

# one answer of a bounded chat is small: more is a server (or something posing as one) gone
# wrong, and reading it whole would only grow memory until the timeout
MAX_ANSWER_BYTES = 16 << 20
CONNECT_TIMEOUT_S = 10.0
IDENTIFY_TIMEOUT_S = 5.0
SIMULATOR_HEADER = "x-ollama-simulator"
SIMULATOR_VERSION_SUFFIX = "-simulator"

Progress = Callable[[RequestOutcome], None]


class _TooLarge(BadAnswer):
    def __init__(self) -> None:
        super().__init__(f"answer larger than {MAX_ANSWER_BYTES} bytes")


@dataclass(slots=True)
class _Seen:
    """What the answers said about the server, gathered by the client's response hook."""

    simulator: bool = False

    async def response(self, response: httpx.Response) -> None:
        if response.headers.get(SIMULATOR_HEADER) == "1":
            self.simulator = True


def _client(
    settings: LoadSettings, seen: _Seen, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    headers = {"User-Agent": f"ollama-fleet-loadtest/{__version__}"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    return httpx.AsyncClient(
        base_url=settings.url,
        verify=client_context(settings.ca_file),
        http2=False,
        limits=httpx.Limits(
            max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
        ),
        headers=headers,
        # the connect has its own, shorter limit, so a dead host is told from a slow answer
        timeout=httpx.Timeout(
            settings.timeout_s, connect=min(CONNECT_TIMEOUT_S, settings.timeout_s)
        ),
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        event_hooks={"response": [seen.response]},
    )


async def _identify(client: httpx.AsyncClient, seen: _Seen) -> str | None:
    """The server's version from GET /api/version, None where it does not answer one.

    Only for the report's label: a gateway that serves only /v1 answers 404 here, and a
    host that cannot be reached fails every request anyway, where the report counts it.
    """
    try:
        response = await client.get("/api/version", timeout=IDENTIFY_TIMEOUT_S)
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        log.debug("GET /api/version: %s", type(exc).__name__)
        return None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str):
        return None
    if version.endswith(SIMULATOR_VERSION_SUFFIX):
        seen.simulator = True
    return version[:100]


def _parse(settings: LoadSettings, line: str | bytes) -> Piece | None:
    if settings.api is Api.OLLAMA:
        return parse_native(line) if line.strip() else None
    return parse_openai(line, stream=settings.stream)


async def _read_all(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise _TooLarge()
    return bytes(body)


@dataclass(slots=True)
class _Answer:
    """What one successful answer held, as it was read."""

    first_token_s: float | None = None
    chunks: int = 0
    tokens: int | None = None
    done: bool = False
    error: str | None = None

    def add(self, piece: Piece, at: float) -> None:
        if piece.error is not None:
            self.error = piece.error
        if piece.content:
            self.chunks += 1
            if self.first_token_s is None:
                self.first_token_s = at
        if piece.tokens is not None:
            self.tokens = piece.tokens
        self.done = self.done or piece.done


async def _read_answer(settings: LoadSettings, response: httpx.Response) -> _Answer:
    answer = _Answer()
    if not settings.stream:
        piece = _parse(settings, await _read_all(response))
        if piece is not None:
            answer.add(piece, time.perf_counter())
        return answer
    received = 0
    async for line in response.aiter_lines():
        received += len(line)
        if received > MAX_ANSWER_BYTES:
            raise _TooLarge()
        piece = _parse(settings, line)
        if piece is None:
            continue
        answer.add(piece, time.perf_counter())
        if answer.error is not None or answer.done:
            break
    return answer


def _tokens(settings: LoadSettings, answer: _Answer) -> tuple[int | None, TokenSource | None]:
    if answer.tokens is not None:
        source = TokenSource.EVAL_COUNT if settings.api is Api.OLLAMA else TokenSource.USAGE
        return answer.tokens, source
    if settings.stream:
        return answer.chunks, TokenSource.CHUNKS
    return None, None


async def _one_request(
    client: httpx.AsyncClient, settings: LoadSettings, index: int, body: dict[str, object]
) -> RequestOutcome:
    path = chat_path(settings.api)
    action = f"POST {path}"
    start = time.perf_counter()

    def since_start_ms(at: float | None = None) -> float:
        return round(((time.perf_counter() if at is None else at) - start) * 1000, 3)

    def failed(finding: Finding, status: int | None = None) -> RequestOutcome:
        return RequestOutcome(
            index=index, latency_ms=since_start_ms(), status_code=status, failure=finding
        )

    status: int | None = None
    try:
        async with asyncio.timeout(settings.timeout_s):
            async with client.stream("POST", path, json=body) as response:
                status = response.status_code
                if status != 200:
                    raw = await _read_all(response)
                    return failed(
                        classify_answer(status, raw, action=action, model=settings.model), status
                    )
                answer = await _read_answer(settings, response)
                latency_ms = since_start_ms()
    except BadAnswer as exc:
        return failed(fail(FailureClass.BAD_RESPONSE, f"{action}: {exc}"), status)
    except Exception as exc:  # every failure of a request is counted, by its class
        return failed(classify_exception(exc, action=action), status)
    if answer.error is not None:
        return failed(
            classify_stream_error(answer.error, action=action, model=settings.model), status
        )
    if not answer.done:
        end = "its final chunk" if settings.api is Api.OLLAMA else "[DONE]"
        return failed(
            fail(FailureClass.BAD_RESPONSE, f"{action}: stream ended without {end}"), status
        )
    tokens, source = _tokens(settings, answer)
    first = answer.first_token_s
    return RequestOutcome(
        index=index,
        latency_ms=latency_ms,
        first_token_ms=since_start_ms(first) if settings.stream and first is not None else None,
        tokens=tokens,
        tokens_source=source,
        status_code=status,
    )


async def run_loadtest(
    settings: LoadSettings,
    *,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LoadRun:
    """Send `settings.requests` chat requests, `settings.concurrency` in flight, and measure.

    `progress` is called after each request with its outcome. `transport` replaces the
    network (tests). A failed request is an outcome, never an exception.
    """
    seen = _Seen()
    body = request_body(settings)
    outcomes: list[RequestOutcome] = []
    async with _client(settings, seen, transport) as client:
        version = await _identify(client, seen)
        indexes = iter(range(settings.requests))  # shared: each worker takes the next one

        async def worker() -> None:
            for index in indexes:
                outcome = await _one_request(client, settings, index, body)
                outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)

        started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        start = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(settings.concurrency):
                group.create_task(worker())
        wall_ms = round((time.perf_counter() - start) * 1000, 3)
    return LoadRun(
        settings=settings,
        started_at=started_at,
        wall_ms=wall_ms,
        outcomes=tuple(sorted(outcomes, key=lambda o: o.index)),
        simulator=seen.simulator,
        server_version=version,
    )
