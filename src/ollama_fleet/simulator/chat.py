"""/api/chat and /api/generate of the simulator (test double): paced, deterministic replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive

from ollama_fleet.simulator import generation as gen
from ollama_fleet.simulator.config import SimModel
from ollama_fleet.simulator.payload import (
    ApiError,
    BadRequest,
    JsonObject,
    message_texts,
    model_name,
    ollama_endpoint,
    opt_bool,
    opt_int,
    opt_object,
    opt_str,
    read_object,
)
from ollama_fleet.simulator.state import SimulatorState, parse_keep_alive, rfc3339, utcnow
from ollama_fleet.simulator.stats import Stats
from ollama_fleet.simulator.streams import Chunk, Final, ndjson, ndjson_stream, paced


def find_model(state: SimulatorState, name: str, action: str | None) -> SimModel:
    """The installed model `name`, refusing like Ollama: 404 if missing, 400 if `action`
    ("chat", "generate") is something an embedding model cannot do."""
    installed = state.find(name)
    if installed is None:
        raise ApiError(f'model "{name}" not found, try pulling it first', 404)
    if action is not None and installed.model.is_embedding:
        raise BadRequest(f'"{name}" does not support {action}')
    return installed.model


async def _client_gone(receive: Receive) -> None:
    """Return when the client disconnects (the request body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass(frozen=True, kw_only=True)
class Run:
    """One generation: who asked for what, the reply tokens and the counters to report."""

    name: str
    tokens: list[str]
    done_reason: str
    counters: gen.Counters
    rate: float
    stats: Stats

    @property
    def text(self) -> str:
        """The whole reply."""
        return "".join(self.tokens)

    async def produce(self) -> AsyncGenerator[str, None]:
        """The reply's tokens at the run's pace, each counted in the stats as it is produced.

        Closed or cancelled before the last token (the client went away), the generation
        stops there and counts as cancelled, as Ollama stops generating for a lost client.
        """
        generation = self.stats.begin_generation()
        completed = False
        try:
            async with aclosing(paced(self.tokens, self.rate)) as tokens:
                async for token in tokens:
                    generation.token()
                    yield token
            completed = True
        finally:
            generation.end(completed=completed)

    async def produce_whole(self, receive: Receive) -> None:
        """Produce the whole reply for a non-streaming answer (as long as streaming takes),
        stopping early if the client disconnects meanwhile."""
        producer = asyncio.create_task(self._drain())
        watcher = asyncio.create_task(_client_gone(receive))
        try:
            await asyncio.wait((producer, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            producer.cancel()
            watcher.cancel()
            await asyncio.gather(producer, watcher, return_exceptions=True)
        if not producer.cancelled():
            producer.result()  # a bug in producing must not pass as a disconnect

    async def _drain(self) -> None:
        async with aclosing(self.produce()) as tokens:
            async for _ in tokens:
                pass


def start_run(
    state: SimulatorState,
    name: str,
    action: str,
    *,
    prompt_tokens: int,
    source_text: str,
    max_tokens: int | None,
    keep_alive: object = None,
) -> Run:
    """Validate the model, mark it loaded and plan the reply."""
    model = find_model(state, name, action)
    try:
        keep_alive_s = parse_keep_alive(keep_alive)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    loaded = state.use(model, keep_alive_s)
    count, done_reason = gen.token_budget(max_tokens)
    rate = state.tokens_per_second
    counters = gen.Counters.for_run(
        prompt_tokens=prompt_tokens, eval_tokens=count, tokens_per_second=rate, loaded=loaded
    )
    return Run(
        name=name,
        tokens=gen.reply_tokens(source_text, count),
        done_reason=done_reason,
        counters=counters,
        rate=rate,
        stats=state.stats,
    )


def _num_predict(body: JsonObject) -> int | None:
    return opt_int(opt_object(body, "options"), "num_predict")


def _load_only(state: SimulatorState, body: JsonObject, name: str, field: str) -> Response:
    """Ollama's answer to an empty chat/prompt: load (or, with keep_alive 0, unload) the model."""
    model = find_model(state, name, None)
    try:
        keep_alive_s = parse_keep_alive(body.get("keep_alive"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    state.use(model, keep_alive_s)
    content: Any = {"role": "assistant", "content": ""} if field == "message" else ""
    reason = "unload" if keep_alive_s <= 0 else "load"
    return JSONResponse(
        {
            "model": name,
            "created_at": rfc3339(utcnow()),
            field: content,
            "done_reason": reason,
            "done": True,
        }
    )


async def native_answer(
    state: SimulatorState, run: Run, body: JsonObject, field: str, request: Request
) -> Response:
    """Stream (default) or return whole: `field` is "message" (chat) or "response" (generate)."""

    def piece(text: str) -> Any:
        return {"role": "assistant", "content": text} if field == "message" else text

    def head() -> dict[str, Any]:
        return {"model": run.name, "created_at": rfc3339(utcnow())}

    def final(text: str) -> dict[str, Any]:
        done = {field: piece(text), "done_reason": run.done_reason, "done": True}
        return head() | done | run.counters.as_dict()

    if not opt_bool(body, "stream", True):
        await run.produce_whole(request.receive)
        return JSONResponse(final(run.text))

    async def chunks() -> AsyncGenerator[Chunk, None]:
        async with aclosing(run.produce()) as tokens:
            async for token in tokens:
                yield ndjson(head() | {field: piece(token), "done": False})
        yield Final(ndjson(final("")))

    return ndjson_stream(chunks(), state.faults_for(request.url.path))


def routes(state: SimulatorState) -> list[Route]:
    """The /api/chat and /api/generate routes bound to `state`."""

    @ollama_endpoint
    async def chat(request: Request) -> Response:
        body = await read_object(request)
        name = model_name(body)
        messages = message_texts(body)
        if not messages:
            return _load_only(state, body, name, "message")
        run = start_run(
            state,
            name,
            "chat",
            prompt_tokens=gen.chat_prompt_tokens(messages),
            source_text=gen.last_user_text(messages),
            max_tokens=_num_predict(body),
            keep_alive=body.get("keep_alive"),
        )
        return await native_answer(state, run, body, "message", request)

    @ollama_endpoint
    async def generate(request: Request) -> Response:
        body = await read_object(request)
        name = model_name(body)
        prompt = opt_str(body, "prompt") or ""
        if not prompt:
            return _load_only(state, body, name, "response")
        system = opt_str(body, "system") or ""
        run = start_run(
            state,
            name,
            "generate",
            prompt_tokens=gen.count_tokens(f"{system} {prompt}") + gen.MESSAGE_OVERHEAD,
            source_text=prompt,
            max_tokens=_num_predict(body),
            keep_alive=body.get("keep_alive"),
        )
        return await native_answer(state, run, body, "response", request)

    return [
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
    ]
