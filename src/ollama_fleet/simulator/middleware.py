"""Pure ASGI middleware of the simulator (test double): label header, stats, Host check, faults."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ollama_fleet.simulator.config import Faults
from ollama_fleet.simulator.openai_compat import openai_error_body
from ollama_fleet.simulator.state import SimulatorState

CONTROL_PREFIX = "/_simulator/"
SIMULATOR_HEADER = (b"x-ollama-simulator", b"1")
MALFORMED_BODY = b'{"model": "simulated", "message": {"role": "assistant", "content": "trunc'
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
_MAX_PEEK = 1 << 20
_MESSAGES = {
    401: "unauthorized",
    429: "too many requests",
    500: "internal server error",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


class SimulatorHeader:
    """Adds `X-Ollama-Simulator: 1` to every response, so nobody mistakes it for Ollama."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def labelled(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), SIMULATOR_HEADER]}
            await send(message)

        await self.app(scope, receive, labelled)


class StatsRecorder:
    """Counts every request by path and how many are being served (control requests aside)."""

    def __init__(self, app: ASGIApp, *, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        stats = self.state.stats
        stats.request_started(path)
        try:
            await self.app(scope, receive, send)
        finally:
            stats.request_finished()


def host_without_port(host: str) -> str:
    """The host part of a Host header: "[::1]:11434" -> "::1", "localhost:1" -> "localhost"."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end != -1 else host
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def allowed_host(host_header: str) -> bool:
    """Ollama's rule on a loopback listener: local names and loopback/unspecified IPs only."""
    host = host_without_port(host_header.strip()).lower().rstrip(".")
    if host in ("", "localhost") or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class HostCheck:
    """403 with an empty body for a foreign Host header (the control endpoint is exempt)."""

    def __init__(self, app: ASGIApp, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.enabled
            and scope["type"] == "http"
            and not str(scope["path"]).startswith(CONTROL_PREFIX)
            and not allowed_host(Headers(scope=scope).get("host", ""))
        ):
            await Response(status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def fault_message(status: int, model: str) -> str:
    """The error text Ollama (or a proxy before it) would send with `status`."""
    if status == 404:
        return f"model '{model}' not found"
    if status in _MESSAGES:
        return _MESSAGES[status]
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "simulated error"


async def _peek_model(receive: Receive) -> str:
    """The "model" of a JSON request body, read only to word a 404 fault."""
    body = b""
    while len(body) < _MAX_PEEK:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    model = value.get("model") if isinstance(value, dict) else None
    return model if isinstance(model, str) else ""


class FaultInjector:
    """Applies latency, status and malformed faults; stream faults are left to the handlers."""

    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        faults = self.state.faults_for(path) if scope["type"] == "http" else None
        if faults is None:
            await self.app(scope, receive, send)
            return
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        response = await self._faulty_response(faults, path, receive)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    @staticmethod
    async def _faulty_response(faults: Faults, path: str, receive: Receive) -> Response | None:
        if faults.status is not None:
            model = await _peek_model(receive) if faults.status == 404 else ""
            message = fault_message(faults.status, model)
            if path.startswith("/v1/"):
                return JSONResponse(openai_error_body(message, faults.status), faults.status)
            return JSONResponse({"error": message}, status_code=faults.status)
        if faults.malformed:
            return Response(MALFORMED_BODY, media_type="application/json")
        return None
