"""Ollama's other write endpoints in the simulator (test double): push, create, copy, blobs.

Pull and delete live with the model endpoints. These answer as Ollama 0.12 does where it
matters to clients and to the checks: the same validation errors (an empty or invalid name
is a 400 before anything else happens), `model "x" not found` for a missing source, HEAD
/api/blobs answering 200 or 404 without a body. What the simulator cannot do it says so:
it has no registry to push to, and it builds no models from uploaded files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import AsyncGenerator
from typing import TypeGuard

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.simulator.config import SimModel
from ollama_fleet.simulator.payload import (
    ApiError,
    BadRequest,
    JsonObject,
    ollama_endpoint,
    opt_bool,
    opt_str,
    read_object,
)
from ollama_fleet.simulator.state import SimulatorState
from ollama_fleet.simulator.streams import Chunk, Final, ndjson, ndjson_stream

INVALID_NAME = "invalid model name"
NO_SOURCE = "neither 'from' or 'files' was specified"
NO_REGISTRY = "the ollama-fleet simulator (a test double) has no registry to push to"
NO_FILES = "the ollama-fleet simulator (a test double) cannot create a model from files"
# Loosely Ollama's model.ParseName: [host[:port]/][namespace/]model[:tag], no odd characters.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:/-]{0,349}")
_DIGEST = re.compile(r"sha256[:-][0-9a-fA-F]{64}")


def valid_name(name: str | None) -> TypeGuard[str]:
    """True for a name Ollama would accept as a model name (an empty one never is)."""
    return name is not None and _NAME.fullmatch(name) is not None and not name.endswith((":", "/"))


def _name(body: JsonObject) -> str | None:
    return opt_str(body, "model") or opt_str(body, "name")


def _installed(state: SimulatorState, name: str) -> SimModel:
    item = state.find(name)
    if item is None:
        raise ApiError(f'model "{name}" not found', 404)
    return item.model


async def _created(
    state: SimulatorState, model: SimModel, source: SimModel
) -> AsyncGenerator[Chunk, None]:
    yield ndjson({"status": f"using existing layer sha256:{source.digest}"})
    yield ndjson({"status": "writing manifest"})
    yield Final(ndjson({"status": "success"}), commit=lambda: state.add(model))


async def _pushed() -> AsyncGenerator[Chunk, None]:
    yield ndjson({"status": "retrieving manifest"})
    yield Final(ndjson({"error": NO_REGISTRY}))


def routes(state: SimulatorState) -> list[Route]:
    """Routes for push, create, copy and blobs bound to `state`."""

    @ollama_endpoint
    async def push(request: Request) -> Response:
        body = await read_object(request)
        name = _name(body)
        if not name:
            raise BadRequest("model is required")
        if not valid_name(name):
            raise BadRequest(INVALID_NAME)
        _installed(state, name)
        if not opt_bool(body, "stream", True):
            raise ApiError(NO_REGISTRY, 500)
        return ndjson_stream(_pushed(), state.faults_for(request.url.path))

    @ollama_endpoint
    async def create(request: Request) -> Response:
        body = await read_object(request)
        name = _name(body)
        if not valid_name(name):
            raise BadRequest(INVALID_NAME)
        source_name = opt_str(body, "from")
        if body.get("files"):
            raise BadRequest(NO_FILES)
        if not source_name:
            raise BadRequest(NO_SOURCE)
        source = _installed(state, source_name)
        model = dataclasses.replace(source, name=name, digest="")  # a new manifest: new digest
        if not opt_bool(body, "stream", True):
            state.add(model)
            return JSONResponse({"status": "success"})
        return ndjson_stream(_created(state, model, source), state.faults_for(request.url.path))

    @ollama_endpoint
    async def copy(request: Request) -> Response:
        body = await read_object(request)
        source, destination = opt_str(body, "source"), opt_str(body, "destination")
        if not valid_name(source):
            raise BadRequest(f'source "{source or ""}" is invalid')
        if not valid_name(destination):
            raise BadRequest(f'destination "{destination or ""}" is invalid')
        model = _installed(state, source)
        state.add(dataclasses.replace(model, name=destination))  # same manifest, same digest
        return Response(status_code=200)

    @ollama_endpoint
    async def blob(request: Request) -> Response:
        digest = request.path_params["digest"]
        if _DIGEST.fullmatch(digest) is None:
            raise BadRequest("invalid digest format")
        if request.method == "HEAD":
            # Ollama only stats the file here, and a HEAD answer has no body
            return Response(status_code=200 if state.has_blob(digest) else 404)
        if state.has_blob(digest):
            return Response(status_code=200)
        sha = hashlib.sha256()
        async for part in request.stream():
            sha.update(part)
        got = f"sha256:{sha.hexdigest()}"
        expected = "sha256:" + digest[len("sha256:") :].lower()
        if got != expected:
            raise BadRequest(f'digest mismatch, expected "{digest}", got "{got}"')
        state.add_blob(digest)
        return Response(status_code=201)

    return [
        Route("/api/push", push, methods=["POST"]),
        Route("/api/create", create, methods=["POST"]),
        Route("/api/copy", copy, methods=["POST"]),
        Route("/api/blobs/{digest}", blob, methods=["HEAD", "POST"]),
    ]
