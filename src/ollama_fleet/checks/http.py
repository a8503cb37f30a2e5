"""The HTTP side of probing: one httpx client per target, shared TLS contexts, timed GETs."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import functools
import json
import ssl
import time
from collections.abc import Iterator, Mapping
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
        # every request is timed and its phase tracked, for the timings and for timeouts
        event_hooks={"request": [_track_request]},
    )


class Phase(enum.StrEnum):
    """What a request (or a probe's own connection) is doing on the network right now."""

    QUEUED = "queued"  # waiting for a free connection of the target's client
    CONNECT = "connect"  # the TCP connect
    TLS = "tls"  # the TLS handshake
    WAIT = "wait"  # the request is sent (or being sent), no answer yet
    READ = "read"  # reading the answer

    @property
    def words(self) -> str:
        return _PHASE_WORDS[self]


_PHASE_WORDS = {
    Phase.QUEUED: "while waiting for a free connection to the target",
    Phase.CONNECT: "during the TCP connect",
    Phase.TLS: "during the TLS handshake",
    Phase.WAIT: "while waiting for the answer",
    Phase.READ: "while reading the answer",
}

# httpcore's trace events that move a request into the next phase
_PHASE_AFTER = {
    "connection.connect_tcp.started": Phase.CONNECT,
    "connection.connect_tcp.complete": Phase.WAIT,
    "connection.start_tls.started": Phase.TLS,
    "connection.start_tls.complete": Phase.WAIT,
    "http11.send_request_headers.started": Phase.WAIT,
    "http11.receive_response_headers.complete": Phase.READ,
}


@dataclass(slots=True)
class Timings:
    """One request's milestones (ms from its start, from httpcore's trace events) and phase.

    `label` names the request ("GET /api/tags"). A failed step keeps its phase, so a
    timeout can be told apart afterwards: a TCP connect or a TLS handshake.
    """

    label: str = ""
    start: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)
    phase: Phase = Phase.QUEUED
    done: bool = False

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        self.marks[event] = (time.perf_counter() - self.start) * 1000
        if event.endswith(".failed") or event.startswith("http11.response_closed"):
            self.done = True
        elif event in _PHASE_AFTER:
            self.phase = _PHASE_AFTER[event]

    def _span(self, prefix: str) -> float | None:
        begin = self.marks.get(f"{prefix}.started")
        end = self.marks.get(f"{prefix}.complete")
        return None if begin is None or end is None else round(end - begin, 2)

    def summary(self, total_ms: float | None = None) -> dict[str, float | None]:
        """The timings convention of CheckResult.details["timings"] (docs/checks.md)."""
        first_byte = self.marks.get("http11.receive_response_headers.complete")
        if total_ms is None:
            total_ms = (time.perf_counter() - self.start) * 1000
        return {
            # None means the request reused an open connection: no connect, no handshake.
            "connect_ms": self._span("connection.connect_tcp"),
            "tls_ms": self._span("connection.start_tls"),
            "first_byte_ms": None if first_byte is None else round(first_byte, 2),
            "total_ms": round(total_ms, 2),
        }


@dataclass(slots=True)
class Activity:
    """What one running check is doing on the network, for a timeout to name the phase.

    It holds the check's requests (and steps of its own, such as the tls check's
    handshakes) and the activities of shared requests it awaits (ProbeContext.get).
    """

    start: float = field(default_factory=time.perf_counter)
    steps: list[Timings] = field(default_factory=list)
    awaits: list[Activity] = field(default_factory=list)

    def add(self, step: Timings) -> None:
        self.steps = [s for s in self.steps if not s.done]
        self.steps.append(step)

    def _all(self) -> Iterator[Timings]:
        yield from self.steps
        for other in self.awaits:
            yield from other._all()

    def in_flight(self) -> Timings | None:
        """The oldest unfinished step on the network; a queued one only if none is."""
        pending = [step for step in self._all() if not step.done]
        active = [step for step in pending if step.phase is not Phase.QUEUED]
        if active or pending:
            return (active or pending)[0]
        return None

    @property
    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.start) * 1000, 2)


# The running check's Activity: set per check by the runner, inherited by its subtasks.
ACTIVITY: contextvars.ContextVar[Activity | None] = contextvars.ContextVar(
    "ollama_fleet_check_activity", default=None
)
TIMINGS_EXTENSION = "ollama_fleet.timings"


@contextlib.contextmanager
def network_step(phase: Phase, label: str) -> Iterator[Timings]:
    """A step a probe takes itself (a raw connect, a handshake), tracked like a request."""
    step = Timings(label=label, phase=phase)
    activity = ACTIVITY.get()
    if activity is not None:
        activity.add(step)
    try:
        yield step
    finally:
        step.done = True


async def _track_request(request: httpx.Request) -> None:
    """The client's request hook: every request gets Timings, seen by the running check."""
    timings = Timings(label=f"{request.method} {request.url.path}")
    inner = request.extensions.get("trace")
    tcp: list[Any] = []

    async def trace(event: str, info: Mapping[str, Any]) -> None:
        await timings.trace(event, info)
        if event == "connection.connect_tcp.complete":
            tcp[:] = [info.get("return_value")]
        elif event == "connection.start_tls.failed" and tcp and tcp[0] is not None:
            # httpcore closes the TCP stream of a failed handshake only for an Exception:
            # one stopped by a timeout of ours (a cancel) would leak the socket
            with contextlib.suppress(Exception):
                await tcp[0].aclose()
        if inner is not None:
            await inner(event, info)

    request.extensions["trace"] = trace
    request.extensions[TIMINGS_EXTENSION] = timings
    activity = ACTIVITY.get()
    if activity is not None:
        activity.add(timings)


def request_timings(request: httpx.Request) -> Timings | None:
    """The Timings the client's hook attached to `request`, if any."""
    timings = request.extensions.get(TIMINGS_EXTENSION)
    return timings if isinstance(timings, Timings) else None


class PhaseTimeout(TimeoutError):
    """A probe's own network step ran out of time; `phase` says which step."""

    def __init__(self, phase: Phase, message: str) -> None:
        super().__init__(message)
        self.phase = phase


def timeout_phase(exc: BaseException) -> Phase | None:
    """The phase a timeout happened in, when the request or step recorded it."""
    if isinstance(exc, PhaseTimeout):
        return exc.phase
    if isinstance(exc, httpx.RequestError):
        try:
            request = exc.request
        except RuntimeError:  # raised without a request
            return None
        timings = request_timings(request)
        return None if timings is None else timings.phase
    return None


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
    with network_step(Phase.CONNECT, f"GET {url}") as step:
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
                step.phase = Phase.WAIT
                try:
                    writer.write(request.encode("ascii"))
                    head = await reader.readuntil(b"\r\n\r\n")
                finally:
                    writer.close()
        except TimeoutError:
            waited = "no TCP connect" if step.phase is Phase.CONNECT else "no answer"
            raise PhaseTimeout(step.phase, f"{waited} within {timeout_s:g} s") from None
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
    # the request's timings (Timings.summary), None where the client did not time it
    timings: Mapping[str, float | None] | None = None


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
    timings = request_timings(request)
    return Answer(
        response.status_code,
        response.headers,
        bytes(body),
        response.http_version,
        None if timings is None else timings.summary(),
    )
