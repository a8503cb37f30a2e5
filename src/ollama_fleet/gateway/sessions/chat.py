"""POST /v1/chat: one turn of a session, through the gateway's keys, limits and nodes.

The steps: the body (400/422) -> the session (a new one, titled from the message, or the
key's own: 404 otherwise) and the model (403 by the key's globs, 404 unknown) -> per-key
concurrency and the rate limits (429) -> the user's message stored -> the history bounded
(history.py) and sent to Ollama's /api/chat on a node the balancer picks -> the answer streamed
back as SSE (events.py) and stored as it comes (recorder.py). A failure before the first word
is a problem answer with the session's id; one after it ends the stream with an `error` event,
the partial answer kept and marked incomplete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from starlette.types import Receive, Scope, Send

from ollama_fleet.gateway import dispatch
from ollama_fleet.gateway.accesslog import Exchange
from ollama_fleet.gateway.asgi import Refused, dump, read_body
from ollama_fleet.gateway.keys import RouteKind, authorize
from ollama_fleet.gateway.proxy import Outcome
from ollama_fleet.gateway.sessions.chat_request import ChatRequest, parse_chat, title_of
from ollama_fleet.gateway.sessions.database import Database
from ollama_fleet.gateway.sessions.events import ChatStream, event
from ollama_fleet.gateway.sessions.history import context
from ollama_fleet.gateway.sessions.problems import Problem, slug_for
from ollama_fleet.gateway.sessions.recorder import AnswerRecorder
from ollama_fleet.gateway.sessions.records import Message, Session
from ollama_fleet.gateway.sessions.store import Store
from ollama_fleet.gateway.settings import KeySpec, Role

MAX_CHAT_BODY = 1024 * 1024
CLIENT_GONE = "client_disconnect"
STOPPED = "gateway_stopped"


def visible(session: Session | None, key: KeySpec) -> Session | None:
    """The session if `key` may see it (its owner, or an admin key), else None (a 404)."""
    if session is None or (session.owner != key.name and key.role is not Role.ADMIN):
        return None
    return session


def no_session(session_id: str) -> Problem:
    return Problem(404, "session-not-found", f"no session {session_id}", field="session_id")


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds: 2026-12-01T21:40:00.123456Z."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def chat(
    gateway: dispatch.Gateway,
    database: Database,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    key: KeySpec,
    exchange: Exchange,
) -> None:
    """Answer one POST /v1/chat (or raise Problem / asgi.Refused for the app to answer)."""
    settings = gateway.config.sessions
    request = parse_chat(
        await read_body(receive, MAX_CHAT_BODY), max_message_chars=settings.max_message_chars
    )
    limit = settings.history_messages
    session, history = await database.run(lambda store: _session(store, request, key, limit))
    model = request.model or (session.model if session else None)
    if model is None:
        raise Problem(422, "invalid-field", "model is needed to start a session", field="model")
    authorize(key, route=RouteKind.GENERATE, model=model)
    exchange.model = model
    if not await dispatch.model_known(gateway, model):
        detail = f"model {model!r} is on no node of this gateway (GET /v1/models lists them)"
        raise Problem(404, "model-not-found", detail, field="model")
    async with dispatch.entered(gateway, key):
        await _turn(gateway, database, scope, receive, send,
                    request=request, session=session, history=history, model=model,
                    key=key, exchange=exchange)  # fmt: skip


async def _session(
    store: Store, request: ChatRequest, key: KeySpec, limit: int
) -> tuple[Session | None, tuple[Message, ...]]:
    """The session to continue and its history (one read), or (None, ()) for a new one."""
    if request.session_id is None:
        return None, ()
    found = await store.context(request.session_id, limit=limit)
    session = visible(found[0] if found else None, key)
    if session is None or found is None:
        raise no_session(request.session_id)
    if request.system is not None:
        detail = "system is set when a session starts; this session has started"
        raise Problem(422, "invalid-field", detail, field="system")
    return session, found[1]


async def _turn(
    gateway: dispatch.Gateway,
    database: Database,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    request: ChatRequest,
    session: Session | None,
    history: tuple[Message, ...],
    model: str,
    key: KeySpec,
    exchange: Exchange,
) -> None:
    settings = gateway.config.sessions
    messages = context(
        history,
        request.message,
        max_messages=settings.history_messages,
        max_tokens=settings.history_tokens,
    )
    if session is None and request.system is not None:
        messages.insert(0, {"role": "system", "content": request.system})
    payload: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
    if request.options:
        payload["options"] = request.options
    charge = await dispatch.reserve(gateway, key, payload)  # 429 before anything is stored
    outcome: Outcome | None = None
    try:
        session = await _store_message(database, request, session, model, key)
        recorder = AnswerRecorder(
            database.store(), session_id=session.id, interval_s=settings.flush_interval_s
        )
        stream = ChatStream(send, session_id=session.id, stream=request.stream, recorder=recorder)
        upstream_scope = {**scope, "query_string": b""}
        try:
            outcome = await dispatch.forward(
                gateway,
                upstream_scope,
                receive,
                stream,
                body=dump(payload),
                api="ollama",
                path="/api/chat",
                key=key,
                model=model,
                exchange=exchange,
                limit_headers=charge.headers,
            )
        except Refused as exc:  # no node now: the message is stored, say in which session
            raise Problem(
                exc.status, slug_for(exc.status), exc.message, session_id=session.id,
                headers=tuple(exc.headers),
            ) from None  # fmt: skip
        except asyncio.CancelledError:  # the gateway stops: keep what came, then go
            await asyncio.shield(recorder.finish(complete=False, tokens=None, error=STOPPED))
            raise
    finally:
        await dispatch.settle(gateway, charge, outcome)
    await _answer(send, stream, recorder, outcome, model=model, session_id=session.id)


async def _store_message(
    database: Database,
    request: ChatRequest,
    session: Session | None,
    model: str,
    key: KeySpec,
) -> Session:
    """The session (made now when new, with its system message) with the user's message in:
    one transaction, so a failure leaves no session without its message."""
    return await database.run(
        lambda store: store.begin_turn(
            session=session,
            owner=key.name,
            title=title_of(request.message),
            model=model,
            system=request.system,
            message=request.message,
            now=datetime.now(UTC),
        )
    )


async def _answer(
    send: Send,
    stream: ChatStream,
    recorder: AnswerRecorder,
    outcome: Outcome,
    *,
    model: str,
    session_id: str,
) -> None:
    """Store the answer's last state, then end the stream (or send the whole answer).

    The last event is `done` only when the whole answer is stored; an answer cut off, or one
    the database did not take, ends with `error`. Before the first word it is a problem."""
    if stream.status != 200:  # nothing of an answer: the node's or the relay's refusal
        if outcome.kind == "client_cancel":
            return
        status = stream.status or 502
        detail = stream.upstream_error() or f"the node answered HTTP {status}"
        raise Problem(
            status, slug_for(status), detail, session_id=session_id,
            headers=stream.problem_headers,
        )  # fmt: skip
    complete = stream.done and stream.error is None
    error = None if complete else _why(stream, outcome)
    message_id = await recorder.finish(complete=complete, tokens=stream.answer_tokens, error=error)
    stored = message_id is not None and not recorder.failed
    if outcome.kind == "client_cancel":
        return
    if stream.stream and (stream.started or (complete and stored)):
        if not stream.started:  # a whole answer without a word in it
            await stream.begin()
        await _end(send, event(_last_event(stream, session_id, message_id, error, stored)))
        return
    if not stored and complete:
        detail = "the answer came whole but the sessions database did not take it"
        raise Problem(503, "database-unavailable", detail, session_id=session_id)
    if not complete:
        kept = "what came is stored, marked incomplete" if message_id else "no word came"
        detail = f"the answer broke off: {error}; {kept}"
        raise Problem(502, "answer-incomplete", detail, session_id=session_id)
    created = recorder.created_at or datetime.now(UTC)
    body = {
        "id": message_id,
        "session_id": session_id,
        "content": recorder.content,
        "model": model,
        "created_at": iso(created),
        "tokens_used": stream.total_tokens,
    }
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), *stream.headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _last_event(
    stream: ChatStream, session_id: str, message_id: str | None, error: str | None, stored: bool
) -> dict[str, Any]:
    if error is None and stored:
        return {
            "type": "done",
            "session_id": session_id,
            "message_id": message_id,
            "total_tokens": stream.total_tokens,
        }
    detail = (
        f"the answer broke off: {error}"
        if error is not None
        else "the answer came whole but the sessions database did not take it"
    )
    return {"type": "error", "session_id": session_id, "message_id": message_id, "detail": detail}


def _why(stream: ChatStream, outcome: Outcome) -> str:
    if outcome.kind == "client_cancel":
        return CLIENT_GONE
    return f"upstream: {stream.error or outcome.error or 'the stream ended before done'}"


async def _end(send: Send, last: bytes) -> None:
    with contextlib.suppress(OSError):  # the client went away at the very end
        await send({"type": "http.response.body", "body": last, "more_body": False})
