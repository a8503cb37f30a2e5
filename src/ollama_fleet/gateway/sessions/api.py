"""GET /v1/sessions, GET /v1/sessions/{id}/messages, PATCH and DELETE /v1/sessions/{id}.

A session is its owner's (the key that made it); another key gets 404 (its existence is not
told), an admin key sees and changes every session. Answers are (status, JSON body or None).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from ollama_fleet.gateway.sessions.chat import iso, no_session, visible
from ollama_fleet.gateway.sessions.chat_request import SESSION_ID, storable
from ollama_fleet.gateway.sessions.database import Database
from ollama_fleet.gateway.sessions.problems import Problem
from ollama_fleet.gateway.sessions.records import Message, Session
from ollama_fleet.gateway.sessions.store import BadCursor, Store
from ollama_fleet.gateway.settings import KeySpec, Role

DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_TITLE_CHARS = 200


def session_json(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "title": session.title,
        "model": session.model,
        "created_at": iso(session.created_at),
        "updated_at": iso(session.updated_at),
        "message_count": session.message_count,
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "created_at": iso(message.created_at),
        "complete": message.complete,
        "tokens": message.tokens,
        "error": message.error,
    }


async def list_sessions(database: Database, *, key: KeySpec, query: bytes) -> dict[str, Any]:
    params = parse_qs(query.decode("latin-1"), keep_blank_values=True)
    unknown = sorted(set(params) - {"limit", "cursor"})
    if unknown:
        detail = "unknown query parameter (expected limit, cursor)"
        raise Problem(422, "invalid-field", detail, field=unknown[0])
    limit = _limit(params.get("limit"))
    cursor = params["cursor"][-1] if "cursor" in params else None
    owner = None if key.role is Role.ADMIN else key.name
    try:
        page = await database.run(
            lambda store: store.list_sessions(owner=owner, limit=limit, cursor=cursor)
        )
    except BadCursor:
        detail = "cursor is not one this API gave (start again without it)"
        raise Problem(422, "invalid-field", detail, field="cursor") from None
    return {"data": [session_json(s) for s in page.sessions], "next_cursor": page.next_cursor}


async def messages(database: Database, session_id: str, *, key: KeySpec) -> dict[str, Any]:
    async def read(store: Store) -> tuple[Session, tuple[Message, ...]]:
        session = await _owned(store, session_id, key)
        return session, await store.messages(session.id)

    session, found = await database.run(read)
    return {"session_id": session.id, "data": [message_json(m) for m in found]}


async def rename(
    database: Database, session_id: str, *, key: KeySpec, body: bytes
) -> dict[str, Any]:
    title = _title(body)

    async def change(store: Store) -> Session | None:
        await _owned(store, session_id, key)
        return await store.rename_session(session_id, title=title, now=datetime.now(UTC))

    renamed = await database.run(change)
    if renamed is None:  # deleted in between
        raise no_session(session_id)
    return session_json(renamed)


async def delete(database: Database, session_id: str, *, key: KeySpec) -> None:
    async def remove(store: Store) -> bool:
        await _owned(store, session_id, key)
        return await store.delete_session(session_id)

    gone = await database.run(remove)
    if not gone:
        raise no_session(session_id)


async def _owned(store: Store, session_id: str, key: KeySpec) -> Session:
    if not SESSION_ID.fullmatch(session_id):
        raise no_session(session_id)
    session = visible(await store.get_session(session_id), key)
    if session is None:
        raise no_session(session_id)
    return session


def _limit(values: list[str] | None) -> int:
    if not values:
        return DEFAULT_PAGE
    text = values[-1]
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        detail = f"limit must be a whole number from 1 to {MAX_PAGE}"
        raise Problem(422, "invalid-field", detail, field="limit")
    return int(text)


def _title(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Problem(400, "bad-json", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Problem(400, "bad-json", "the body must be a JSON object")
    unknown = sorted(set(data) - {"title"})
    if unknown:
        raise Problem(422, "invalid-field", "unknown field (expected title)", field=unknown[0])
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise Problem(422, "invalid-field", "title must be a non-empty string", field="title")
    storable(title, "title")
    if len(title) > MAX_TITLE_CHARS or any(c in title for c in "\r\n"):
        detail = f"title must be one line of at most {MAX_TITLE_CHARS} characters"
        raise Problem(422, "invalid-field", detail, field="title")
    return title.strip()
