"""The admin API (role admin): node states, drain/undrain, pull and delete on the nodes, usage.

Pull streams each node's /api/pull progress as NDJSON lines, each with `"node"`, node after
node, and ends every node's part with one summary line `{"node", "done": true, "ok", "error"}`;
a node that pulled reads its /api/tags again so it is routed to for the new model at once.
Delete calls /api/delete on every target node that lists the model. Usage counts per key name
since the process started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ollama_fleet.gateway.asgi import dump
from ollama_fleet.gateway.health import HealthChecker
from ollama_fleet.gateway.keys import normalise_model
from ollama_fleet.gateway.nodes import Pool
from ollama_fleet.gateway.routes import Action
from ollama_fleet.gateway.shapes import error_message
from ollama_fleet.gateway.upstream import Upstream, UpstreamError

log = logging.getLogger(__name__)

JSON_HEADERS = (("Content-Type", "application/json"),)
AdminAnswer = dict[str, Any] | AsyncGenerator[bytes, None]  # a JSON answer, or NDJSON lines
_ERROR_BODY_LIMIT = 64 * 1024


class AdminError(Exception):
    """An admin request that cannot be done: its HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class KeyUsage:
    """What one key did since the gateway started (mutable: counted as requests end)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    rate_limited: int = 0


class UsageTally:
    """Per key name: requests, tokens in and out, refusals by a rate limit."""

    def __init__(self) -> None:
        self._keys: dict[str, KeyUsage] = {}

    def count(self, key: str, *, tokens_in: int | None, tokens_out: int | None) -> None:
        usage = self._keys.setdefault(key, KeyUsage())
        usage.requests += 1
        usage.tokens_in += tokens_in or 0
        usage.tokens_out += tokens_out or 0

    def count_rate_limited(self, key: str) -> None:
        self._keys.setdefault(key, KeyUsage()).rate_limited += 1

    def as_json(self) -> dict[str, Any]:
        return {"keys": {name: dataclasses.asdict(u) for name, u in sorted(self._keys.items())}}


async def handle(
    action: Action,
    param: str | None,
    body: bytes,
    *,
    pool: Pool,
    upstream: Upstream,
    health: HealthChecker,
    usage: UsageTally,
) -> AdminAnswer:
    """The answer to one admin request (AdminError for one that cannot be done)."""
    if action is Action.ADMIN_NODES:
        return nodes_json(pool)
    if action in (Action.ADMIN_DRAIN, Action.ADMIN_UNDRAIN):
        assert param is not None
        return drain(pool, param, on=action is Action.ADMIN_DRAIN)
    if action is Action.ADMIN_USAGE:
        return usage.as_json()
    model, nodes = parse_target(body, pool)
    if action is Action.ADMIN_PULL:
        return pull(model=model, nodes=nodes, pool=pool, upstream=upstream, health=health)
    return await delete(model=model, nodes=nodes, pool=pool, upstream=upstream, health=health)


def nodes_json(pool: Pool) -> dict[str, Any]:
    """GET /admin/nodes: every node's state."""
    return {"nodes": [dataclasses.asdict(state) for state in pool.snapshot()]}


def drain(pool: Pool, name: str, *, on: bool) -> dict[str, Any]:
    """POST /admin/nodes/{name}/drain or /undrain: the node's state after it."""
    try:
        if on:
            pool.drain(name)
        else:
            pool.undrain(name)
    except KeyError:
        raise AdminError(404, f"no node named {name!r}") from None
    log.info("gateway: node %s %s by the admin API", name, "drained" if on else "undrained")
    state = next(s for s in pool.snapshot() if s.name == name)
    return dataclasses.asdict(state)


def parse_target(body: bytes, pool: Pool) -> tuple[str, tuple[str, ...]]:
    """The `model` and the `nodes` (all by default) of a pull or delete request."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        raise AdminError(400, "the body is not JSON") from None
    if not isinstance(data, Mapping):
        raise AdminError(400, 'send a JSON object: {"model": NAME, "nodes": [NODE, ...]}')
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise AdminError(400, "model is required")
    nodes = data.get("nodes")
    if nodes is None:
        return model, tuple(pool.names())
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes) or not nodes:
        raise AdminError(400, "nodes must be a list of node names")
    unknown = sorted(set(nodes) - set(pool.names()))
    if unknown:
        raise AdminError(404, f"no node named {', '.join(map(repr, unknown))}")
    return model, tuple(dict.fromkeys(nodes))


async def pull(
    *, model: str, nodes: Sequence[str], pool: Pool, upstream: Upstream, health: HealthChecker
) -> AsyncGenerator[bytes, None]:
    """POST /admin/pull: the NDJSON progress of pulling `model` on each node in turn.

    Cancelled (the client went away), it closes the node's pull stream and stops: Ollama
    stops a pull whose client hangs up, and the nodes after it are not started."""
    for name in nodes:
        ok, error = False, None
        progress = _pull_one(name, model=model, pool=pool, upstream=upstream)
        try:
            async with contextlib.aclosing(progress):  # closed also when this one is
                async for line in progress:
                    if "error" in line:
                        error = str(line["error"])
                    elif line.get("status") == "success":
                        ok = True
                    yield _line({**line, "node": name})
        except UpstreamError as exc:
            error = str(exc)
        except asyncio.CancelledError:
            log.info("gateway: pull %s on %s stopped: the client went away", model, name)
            raise
        if ok and error is None:
            await health.refresh_models(name)
        ok = ok and error is None
        log.info("gateway: pull %s on %s: %s", model, name, "done" if ok else error)
        yield _line({"node": name, "done": True, "ok": ok, "error": error})


async def _pull_one(
    name: str, *, model: str, pool: Pool, upstream: Upstream
) -> AsyncGenerator[dict[str, Any], None]:
    body = json.dumps({"model": model, "stream": True}).encode()
    response = await upstream.open(
        pool.spec(name), "POST", "/api/pull", headers=JSON_HEADERS, body=body
    )
    try:
        if response.status != 200:
            text = await response.read(limit=_ERROR_BODY_LIMIT)
            yield {"error": _error_text(text, response.status)}
            return
        pending = b""
        async for chunk in response.chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                if raw.strip():
                    yield _parsed(raw)
        if pending.strip():
            yield _parsed(pending)
    finally:
        await response.aclose()


async def delete(
    *, model: str, nodes: Sequence[str], pool: Pool, upstream: Upstream, health: HealthChecker
) -> dict[str, Any]:
    """DELETE /admin/models: /api/delete on each target node that lists `model`."""
    wanted = normalise_model(model)
    holding = [
        s.name
        for s in pool.snapshot()
        if s.name in nodes and wanted in {normalise_model(m) for m in s.models}
    ]
    if not holding:
        raise AdminError(404, f"no node lists model {model!r}")
    results: dict[str, str] = {}
    body = json.dumps({"model": model}).encode()
    for name in holding:
        try:
            response = await upstream.open(
                pool.spec(name), "DELETE", "/api/delete", headers=JSON_HEADERS, body=body
            )
            try:
                text = await response.read(limit=_ERROR_BODY_LIMIT)
            finally:
                await response.aclose()
            ok = response.status == 200
            results[name] = "deleted" if ok else _error_text(text, response.status)
        except UpstreamError as exc:
            results[name] = str(exc)
        await health.refresh_models(name)
        log.info("gateway: delete %s on %s: %s", model, name, results[name])
    return {"model": model, "nodes": results}


def _line(data: Mapping[str, Any]) -> bytes:
    return dump(data) + b"\n"


def _parsed(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {"error": "the node sent a line that is not JSON"}
    return data if isinstance(data, dict) else {"error": "the node sent a line that is not JSON"}


def _error_text(body: bytes, status: int) -> str:
    message = error_message(body)
    return f"HTTP {status}: {message}" if message is not None else f"HTTP {status}"
