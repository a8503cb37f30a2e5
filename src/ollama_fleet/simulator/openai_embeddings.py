"""/v1/embeddings of the simulator (test double): OpenAI's shape over /api/embed's vectors."""

from __future__ import annotations

import base64
import struct

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.simulator import generation as gen
from ollama_fleet.simulator.chat import find_model
from ollama_fleet.simulator.models import embed_inputs
from ollama_fleet.simulator.openai_compat import openai_endpoint
from ollama_fleet.simulator.payload import BadRequest, model_name, opt_str, read_object
from ollama_fleet.simulator.state import SimulatorState, parse_keep_alive


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32s."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def routes(state: SimulatorState) -> list[Route]:
    """The /v1/embeddings route bound to `state`."""

    @openai_endpoint
    async def embeddings(request: Request) -> Response:
        body = await read_object(request)
        name = model_name(body)
        if body.get("input") is None:
            raise BadRequest("invalid input")
        inputs = embed_inputs(body["input"])
        encoding_format = opt_str(body, "encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise BadRequest(f"invalid encoding format: {encoding_format}")
        model = find_model(state, name, None)
        state.use(model, parse_keep_alive(None))
        tokens = sum(gen.count_tokens(text) for text in inputs)
        data = [
            {
                "object": "embedding",
                "embedding": encode(gen.embedding(model.name, text), encoding_format),
                "index": index,
            }
            for index, text in enumerate(inputs)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    return [Route("/v1/embeddings", embeddings, methods=["POST"])]
