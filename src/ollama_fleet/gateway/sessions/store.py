"""The sessions store's interface, its errors, and `open_store` choosing SQLite or PostgreSQL."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import UTC, datetime
from typing import Protocol

from ollama_fleet.errors import FleetError

from .records import Message, Role, Session, SessionPage
from .urls import safe_url

_ID = re.compile(r"[0-9a-f]{32}")


class StoreError(FleetError):
    """The sessions database refused or failed an operation."""


class StoreUnavailable(StoreError, ConnectionError):
    """The sessions database cannot be reached, or the connection to it was lost."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer ollama-fleet than this one."""

    def __init__(self, *, where: str, db_version: int, code_version: int) -> None:
        super().__init__(
            f"the sessions database {where} is at schema version {db_version}, but this "
            f"ollama-fleet knows versions up to {code_version}: upgrade ollama-fleet on this host "
            "(or point sessions.database_url at another database)"
        )
        self.db_version = db_version
        self.code_version = code_version


class SessionGone(StoreError):
    """A message for a session that was deleted meanwhile (the API answers 404)."""


class BadCursor(StoreError, ValueError):
    """A pagination cursor that this store did not hand out."""


class Store(Protocol):
    """Sessions and their messages, kept in a database; every call is one transaction."""

    kind: str  # "sqlite" | "postgresql"
    writes: int  # write transactions committed so far (metrics, benchmark)

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def create_session(
        self, *, owner: str, title: str, model: str, now: datetime
    ) -> Session: ...
    async def get_session(self, session_id: str) -> Session | None: ...
    async def list_sessions(
        self, *, owner: str | None, limit: int, cursor: str | None
    ) -> SessionPage: ...
    async def rename_session(
        self, session_id: str, *, title: str, now: datetime
    ) -> Session | None: ...
    async def delete_session(self, session_id: str) -> bool: ...
    async def add_message(
        self,
        *,
        session_id: str,
        role: Role,
        content: str,
        complete: bool,
        now: datetime,
        tokens: int | None = None,
        message_id: str | None = None,  # given: written again with it, the same row
    ) -> Message: ...
    async def update_message(
        self,
        message_id: str,
        *,
        content: str,
        complete: bool,
        tokens: int | None,
        error: str | None,
        now: datetime,
    ) -> None: ...
    async def messages(self, session_id: str) -> tuple[Message, ...]: ...
    async def context(
        self, session_id: str, *, limit: int
    ) -> tuple[Session, tuple[Message, ...]] | None:
        """The session and its context, read together (one call before a turn): every system
        message plus the newest `limit` others, oldest first; None for no such session."""
        ...

    async def begin_turn(
        self,
        *,
        session: Session | None,
        owner: str,
        title: str,
        model: str,
        system: str | None,
        message: str,
        now: datetime,
    ) -> Session:
        """The user's message stored, in `session` or, None, in a new session made with it
        (and with `system` as its first message): one transaction, the session returned."""
        ...


def open_store(url: str, *, pool_size: int = 20) -> Store:
    """The store for `url` (not yet opened: await `open()`); StoreError for an unknown scheme."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise StoreError(
                f"{safe_url(url)}: a SQLite URL is sqlite:///relative or sqlite:////abs"
            )
        from .sqlite_store import SqliteStore

        return SqliteStore(path=rest[1:])
    if sep and scheme in ("postgresql", "postgres"):
        from .postgres_store import PostgresStore

        return PostgresStore(url=url, pool_size=pool_size)
    shown = scheme if sep else "(none)"
    raise StoreError(
        f"{safe_url(url)}: unknown database scheme {shown!r} (use sqlite:// or postgresql://)"
    )


def new_id() -> str:
    """A fresh session or message id: uuid4 as 32 hex digits."""
    return uuid.uuid4().hex


def is_id(text: str) -> bool:
    """Whether `text` has the shape of an id this store makes (others are never found)."""
    return _ID.fullmatch(text) is not None


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is a programming error."""
    if moment.tzinfo is None:
        raise ValueError("the sessions store takes aware datetimes only")
    return moment.astimezone(UTC)


def encode_cursor(updated_at: datetime, session_id: str) -> str:
    """The keyset cursor after the session (updated_at, id): opaque to clients."""
    stamp = to_micros(updated_at)
    return base64.urlsafe_b64encode(f"{stamp}.{session_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(updated_at, id) from a cursor of `encode_cursor`; BadCursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        stamp, _, session_id = raw.partition(".")
        moment = from_micros(int(stamp))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise BadCursor("the cursor is not one this gateway handed out") from None
    if not is_id(session_id):
        raise BadCursor("the cursor is not one this gateway handed out")
    return moment, session_id


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch (how SQLite keeps times: exact, and sorted as numbers)."""
    delta = utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(stamp: int) -> datetime:
    """The aware UTC datetime of `to_micros`."""
    seconds, micros = divmod(stamp, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def check_limit(limit: int) -> None:
    """A page or history size must be a count."""
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
