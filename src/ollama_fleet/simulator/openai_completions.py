"""/v1/completions of the simulator (test double): OpenAI's text completions, paced like chat."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.simulator import generation as gen
from ollama_fleet.simulator.chat import Run, start_run
from ollama_fleet.simulator.openai_compat import ChoiceChunk, openai_endpoint, sse_answer, usage
from ollama_fleet.simulator.payload import (
    model_name,
    opt_bool,
    opt_int,
    opt_object,
    opt_str,
    read_object,
)
from ollama_fleet.simulator.state import SimulatorState


def _completion(run: Run, ident: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "text_completion",
        "created": int(time.time()),
        "model": run.name,
        "system_fingerprint": "fp_ollama",
        "choices": choices,
    }


def _completion_chunk(run: Run, ident: str) -> ChoiceChunk:
    def chunk(text: str, finish: str | None) -> dict[str, Any]:
        return _completion(run, ident, [{"text": text, "index": 0, "finish_reason": finish}])

    return chunk


def routes(state: SimulatorState) -> list[Route]:
    """The /v1/completions route bound to `state`."""

    @openai_endpoint
    async def completions(request: Request) -> Response:
        body = await read_object(request)
        name = model_name(body)
        prompt = opt_str(body, "prompt") or ""
        stream = opt_bool(body, "stream", False)
        include_usage = opt_bool(opt_object(body, "stream_options"), "include_usage", False)
        run = start_run(
            state,
            name,
            "generate",
            prompt_tokens=gen.count_tokens(prompt) + gen.MESSAGE_OVERHEAD,
            source_text=prompt,
            max_tokens=opt_int(body, "max_tokens"),
        )
        ident = f"cmpl-{state.next_id()}"
        if stream:
            return sse_answer(state, request, run, _completion_chunk(run, ident), include_usage)
        await run.produce_whole(request.receive)
        choice = {"text": run.text, "index": 0, "finish_reason": run.done_reason}
        return JSONResponse(_completion(run, ident, [choice]) | {"usage": usage(run)})

    return [Route("/v1/completions", completions, methods=["POST"])]
