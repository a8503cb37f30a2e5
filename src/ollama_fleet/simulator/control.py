"""The simulator's control endpoints (not part of Ollama): faults, token pace and stats."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.errors import ConfigError
from ollama_fleet.simulator.config import Faults
from ollama_fleet.simulator.payload import BadRequest, ollama_endpoint, read_object
from ollama_fleet.simulator.state import SimulatorState

FAULTS_PATH = "/_simulator/faults"
PACE_PATH = "/_simulator/pace"
STATS_PATH = "/_simulator/stats"
_OPTIONAL_INT = ("status", "cut_stream_after")


def faults_to_json(faults: Faults) -> dict[str, Any]:
    """Faults as a JSON object (paths as a list)."""
    data = dataclasses.asdict(faults)
    data["paths"] = list(faults.paths)
    return data


def faults_from_json(data: Mapping[str, Any]) -> Faults:
    """Faults from a JSON object; BadRequest for an unknown field, a wrong type or value."""
    known = {f.name for f in dataclasses.fields(Faults)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadRequest(f"unknown fault field(s): {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "paths":
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise BadRequest("paths must be a list of strings")
            kwargs[key] = tuple(value)
        elif key == "malformed":
            if not isinstance(value, bool):
                raise BadRequest("malformed must be a boolean")
            kwargs[key] = value
        elif key == "stream_error":
            if value is not None and not isinstance(value, str):
                raise BadRequest("stream_error must be a string or null")
            kwargs[key] = value
        else:
            nullable = key in _OPTIONAL_INT
            if not (isinstance(value, int) and not isinstance(value, bool)) and not (
                nullable and value is None
            ):
                raise BadRequest(f"{key} must be an integer" + (" or null" if nullable else ""))
            kwargs[key] = value
    try:
        return Faults(**kwargs)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None


def pace_from_json(data: Mapping[str, Any]) -> float:
    """tokens_per_second from {"tokens_per_second": X}; BadRequest unless X is a number >= 0."""
    unknown = sorted(set(data) - {"tokens_per_second"})
    if unknown:
        raise BadRequest(f"unknown pace field(s): {', '.join(unknown)}")
    value = data.get("tokens_per_second")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise BadRequest("tokens_per_second must be a number >= 0")
    return float(value)


def routes(state: SimulatorState) -> list[Route]:
    """GET/PUT/DELETE /_simulator/faults and /_simulator/pace, GET/DELETE /_simulator/stats,
    bound to `state`."""

    @ollama_endpoint
    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            state.faults = faults_from_json(await read_object(request))
        elif request.method == "DELETE":
            state.faults = Faults()
        return JSONResponse(faults_to_json(state.faults))

    @ollama_endpoint
    async def pace(request: Request) -> Response:
        if request.method == "PUT":
            state.tokens_per_second = pace_from_json(await read_object(request))
        elif request.method == "DELETE":
            state.tokens_per_second = state.config.tokens_per_second
        return JSONResponse({"tokens_per_second": state.tokens_per_second})

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            state.stats.reset()
        return JSONResponse(state.stats.as_json())

    return [
        Route(FAULTS_PATH, faults, methods=["GET", "PUT", "DELETE"]),
        Route(PACE_PATH, pace, methods=["GET", "PUT", "DELETE"]),
        Route(STATS_PATH, stats, methods=["GET", "DELETE"]),
    ]
