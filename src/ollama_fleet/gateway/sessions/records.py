"""The sessions' records: a conversation, one message of it, and a page of conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Role = Literal["user", "assistant", "system"]
ROLES: tuple[Role, ...] = ("user", "assistant", "system")


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A conversation of one key (`owner`); times are aware UTC datetimes."""

    id: str
    owner: str
    title: str
    model: str
    created_at: datetime
    updated_at: datetime  # the last message's time (or rename)
    message_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One message of a session; an answer being streamed is `complete=False` until it ends."""

    id: str
    session_id: str
    role: Role
    content: str
    created_at: datetime
    complete: bool
    tokens: int | None  # eval_count for an answer, None unknown
    error: str | None  # why an answer is incomplete: "client_disconnect", "upstream: ...", None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionPage:
    """Sessions newest first, and the cursor of the next page (None: this was the last)."""

    sessions: tuple[Session, ...]
    next_cursor: str | None
