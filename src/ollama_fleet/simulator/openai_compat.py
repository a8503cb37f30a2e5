"""OpenAI-compatible endpoints of the simulator (test double): /v1/chat/completions, /v1/models.

Also the pieces the other /v1 endpoints share: OpenAI's error shape, usage and SSE streams.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.simulator import generation as gen
from ollama_fleet.simulator.chat import Run, start_run
from ollama_fleet.simulator.payload import (
    ApiError,
    BadRequest,
    Endpoint,
    message_texts,
    model_name,
    opt_bool,
    opt_int,
    opt_object,
    read_object,
)
from ollama_fleet.simulator.state import Installed, SimulatorState
from ollama_fleet.simulator.streams import SSE, Chunk, FaultableStream, Final, sse

# one streamed choice as a JSON object, from its text and finish_reason
ChoiceChunk = Callable[[str, str | None], dict[str, Any]]

_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def openai_error(message: str, status: int) -> JSONResponse:
    """An error in OpenAI's shape, typed the way Ollama's compatibility layer types it."""
    return JSONResponse(openai_error_body(message, status), status_code=status)


def openai_error_body(message: str, status: int) -> dict[str, Any]:
    """{"error": {"message", "type", "param", "code"}}."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def openai_endpoint(handler: Endpoint) -> Endpoint:
    """Wrap a handler so an ApiError becomes an OpenAI-style error answer."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return openai_error(exc.message, exc.status)

    return wrapped


def _model_entry(item: Installed) -> dict[str, Any]:
    return {
        "id": item.model.name,
        "object": "model",
        "created": int(item.modified_at.timestamp()),
        "owned_by": "library",
    }


def usage(run: Run) -> dict[str, int]:
    """OpenAI's usage object for a run."""
    prompt, completion = run.counters.prompt_eval_count, run.counters.eval_count
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def sse_answer(
    state: SimulatorState, request: Request, run: Run, chunk: ChoiceChunk, include_usage: bool
) -> FaultableStream:
    """A run streamed as server-sent events: one `chunk` per token, one with the
    finish_reason, a usage chunk if asked for, then `data: [DONE]`; faults applied."""

    async def chunks() -> AsyncGenerator[Chunk, None]:
        async with aclosing(run.produce()) as tokens:
            async for token in tokens:
                yield sse(chunk(token, None))
        tail = sse(chunk("", run.done_reason))
        if include_usage:
            tail += sse(chunk("", None) | {"choices": [], "usage": usage(run)})
        yield Final(tail + b"data: [DONE]\n\n")

    return FaultableStream(
        chunks(),
        state.faults_for(request.url.path),
        media_type=SSE,
        error_chunk=lambda text: sse(openai_error_body(text, 500)),
    )


def _chat_chunk(run: Run, ident: str) -> ChoiceChunk:
    def chunk(content: str, finish: str | None) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": run.name,
            "system_fingerprint": "fp_ollama",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
        }

    return chunk


def routes(state: SimulatorState) -> list[Route]:
    """The /v1 routes bound to `state`."""

    @openai_endpoint
    async def chat_completions(request: Request) -> Response:
        body = await read_object(request)
        name = model_name(body)
        messages = message_texts(body)
        if not messages:
            raise BadRequest("[] is too short - 'messages'")
        max_tokens = opt_int(body, "max_completion_tokens")
        max_tokens = max_tokens if max_tokens is not None else opt_int(body, "max_tokens")
        stream = opt_bool(body, "stream", False)
        include_usage = opt_bool(opt_object(body, "stream_options"), "include_usage", False)
        run = start_run(
            state,
            name,
            "chat",
            prompt_tokens=gen.chat_prompt_tokens(messages),
            source_text=gen.last_user_text(messages),
            max_tokens=max_tokens,
        )
        ident = f"chatcmpl-{state.next_id()}"
        if stream:
            return sse_answer(state, request, run, _chat_chunk(run, ident), include_usage)
        await run.produce_whole(request.receive)
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": name,
                "system_fingerprint": "fp_ollama",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": run.text},
                        "finish_reason": run.done_reason,
                    }
                ],
                "usage": usage(run),
            }
        )

    async def list_models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [_model_entry(i) for i in state.installed()]}
        )

    async def get_model(request: Request) -> Response:
        name = str(request.path_params["model"])
        item = state.find(name)
        if item is None:
            return openai_error(f"model '{name}' not found", 404)
        return JSONResponse(_model_entry(item))

    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    ]
