"""The sessions store on PostgreSQL: a psycopg 3 connection pool, shared by gateway replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg_pool import AsyncConnectionPool

from . import migrations
from .records import Message, Role, Session, SessionPage
from .store import (
    SessionGone,
    StoreError,
    StoreUnavailable,
    check_limit,
    decode_cursor,
    encode_cursor,
    is_id,
    new_id,
    utc,
)
from .urls import safe_url

CONNECT_TIMEOUT_S = 5  # one connection attempt (libpq's connect_timeout)
OPEN_TIMEOUT_S = 10.0  # open(): the pool's first connection
CHECKOUT_TIMEOUT_S = 3.0  # a call waiting for a free (or, the server down, any) connection

Connection = psycopg.AsyncConnection[tuple[Any, ...]]

_SESSION = (
    "SELECT s.id, s.owner, s.title, s.model, s.created_at, s.updated_at,"
    " (SELECT count(*) FROM messages m WHERE m.session_id = s.id) FROM sessions s"
)
_MESSAGE = "SELECT id, session_id, role, content, created_at, complete, tokens, error FROM messages"
_INSERT_SESSION = (
    "INSERT INTO sessions (id, owner, title, model, created_at, updated_at)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
_HISTORY = (
    _MESSAGE + " WHERE session_id = %s AND (role = 'system' OR seq IN (SELECT seq FROM"
    " messages WHERE session_id = %s AND role <> 'system' ORDER BY seq DESC LIMIT %s))"
    " ORDER BY seq"
)
# the session's time bumped and the message written in one statement (no session: no row);
# the same id again (a write whose answer was lost, retried) is the same row
_ADD_MESSAGE = (
    "WITH s AS (UPDATE sessions SET updated_at = %s WHERE id = %s RETURNING id)"
    " INSERT INTO messages (id, session_id, role, content, created_at, complete, tokens)"
    " SELECT %s, s.id, %s, %s, %s, %s, %s FROM s"
    " ON CONFLICT (id) DO UPDATE SET content = excluded.content,"
    " complete = excluded.complete, tokens = excluded.tokens"
)


class PostgresStore:
    """Sessions in a PostgreSQL database; each call borrows a pooled connection."""

    kind = "postgresql"

    def __init__(
        self, *, url: str, pool_size: int = 10, checkout_timeout_s: float = CHECKOUT_TIMEOUT_S
    ) -> None:
        self._url = url
        self._checkout_timeout_s = checkout_timeout_s
        self._where = safe_url(url)
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._checking: asyncio.Task[None] | None = None
        self.writes = 0

    def __repr__(self) -> str:
        return f"PostgresStore({self._where})"

    async def open(self) -> None:
        # one direct connection first: a refused or bad URL fails now, not after pool retries
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._url, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(self._message("cannot connect to", exc)) from None
        try:
            await _migrate(conn, where=self._where)
        except psycopg.Error as exc:
            raise StoreUnavailable(self._message("cannot migrate", exc)) from None
        finally:
            await conn.close()
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self._url,
            min_size=self._pool_size,  # all at open: no connects under load
            max_size=self._pool_size,
            open=False,
            timeout=self._checkout_timeout_s,
            # autocommit: a read or a one-statement write is one round trip, not BEGIN ... COMMIT
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "autocommit": True},
            name="ollama-fleet-sessions",
        )
        try:
            await pool.open(wait=True, timeout=OPEN_TIMEOUT_S)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreUnavailable(self._message("cannot connect to", exc)) from None
        self._pool = pool

    async def close(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await self._checking
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.execute("SELECT 1")

    async def create_session(self, *, owner: str, title: str, model: str, now: datetime) -> Session:
        session_id, moment = new_id(), utc(now)
        async with self._transaction() as conn:
            await conn.execute(
                _INSERT_SESSION,
                (session_id, owner, title, model, moment, moment),
            )
        return Session(
            id=session_id,
            owner=owner,
            title=title,
            model=model,
            created_at=moment,
            updated_at=moment,
            message_count=0,
        )

    async def get_session(self, session_id: str) -> Session | None:
        if not is_id(session_id):
            return None
        async with self._connection() as conn:
            return await _get_session(conn, session_id)

    async def list_sessions(
        self, *, owner: str | None, limit: int, cursor: str | None
    ) -> SessionPage:
        if limit < 1:
            raise ValueError(f"limit must be 1 or more, not {limit}")
        where: list[str] = []
        args: list[object] = []
        if owner is not None:
            where.append("s.owner = %s")
            args.append(owner)
        if cursor is not None:
            after, after_id = decode_cursor(cursor)
            where.append("(s.updated_at, s.id) < (%s, %s)")
            args += [after, after_id]
        sql = _SESSION + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY s.updated_at DESC, s.id DESC LIMIT %s"
        args.append(limit + 1)
        async with self._connection() as conn:
            rows = await (await conn.execute(sql, args)).fetchall()
        sessions = tuple(_session(row) for row in rows[:limit])
        last = sessions[-1] if len(rows) > limit else None
        return SessionPage(
            sessions=sessions,
            next_cursor=encode_cursor(last.updated_at, last.id) if last else None,
        )

    async def rename_session(self, session_id: str, *, title: str, now: datetime) -> Session | None:
        if not is_id(session_id):
            return None
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE sessions SET title = %s, updated_at = %s WHERE id = %s",
                (title, utc(now), session_id),
            )
            return await _get_session(conn, session_id)

    async def delete_session(self, session_id: str) -> bool:
        if not is_id(session_id):
            return False
        async with self._transaction() as conn:
            cur = await conn.execute("DELETE FROM sessions WHERE id = %s", (session_id,))
            return cur.rowcount > 0

    async def add_message(
        self,
        *,
        session_id: str,
        role: Role,
        content: str,
        complete: bool,
        now: datetime,
        tokens: int | None = None,
        message_id: str | None = None,
    ) -> Message:
        message_id, moment = message_id or new_id(), utc(now)
        async with self._connection() as conn:  # one statement: one round trip
            cur = await conn.execute(_ADD_MESSAGE, (
                moment, session_id, message_id, role, content, moment, complete, tokens,
            ))  # fmt: skip
        if not cur.rowcount:
            raise SessionGone(f"session {session_id} does not exist (deleted meanwhile?)")
        self.writes += 1
        return Message(
            id=message_id,
            session_id=session_id,
            role=role,
            content=content,
            created_at=moment,
            complete=complete,
            tokens=tokens,
            error=None,
        )

    async def update_message(
        self,
        message_id: str,
        *,
        content: str,
        complete: bool,
        tokens: int | None,
        error: str | None,
        now: datetime,
    ) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "WITH m AS (UPDATE messages SET content = %s, complete = %s, tokens = %s,"
                " error = %s WHERE id = %s RETURNING session_id)"
                " UPDATE sessions SET updated_at = %s WHERE id IN (SELECT session_id FROM m)",
                (content, complete, tokens, error, message_id, utc(now)),
            )
        self.writes += 1

    async def context(
        self, session_id: str, *, limit: int
    ) -> tuple[Session, tuple[Message, ...]] | None:
        check_limit(limit)
        if not is_id(session_id):
            return None
        async with self._connection() as conn, conn.pipeline():  # one round trip for both
            found = await conn.execute(_SESSION + " WHERE s.id = %s", (session_id,))
            history = await conn.execute(_HISTORY, (session_id, session_id, limit))
            row = await found.fetchone()
            rows = await history.fetchall()
        if row is None:
            return None
        return _session(row), tuple(_message(r) for r in rows)

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
        moment = utc(now)
        if session is not None:
            await self.add_message(
                session_id=session.id, role="user", content=message, complete=True, now=now
            )
            return session
        made = Session(
            id=new_id(), owner=owner, title=title, model=model, created_at=moment,
            updated_at=moment, message_count=2 if system is not None else 1,
        )  # fmt: skip
        rows = [("system", system)] if system is not None else []
        rows.append(("user", message))
        async with self._connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(
                _INSERT_SESSION,
                (made.id, owner, title, model, moment, moment),
            )
            for role, content in rows:
                await conn.execute(
                    "INSERT INTO messages (id, session_id, role, content, created_at, complete)"
                    " VALUES (%s, %s, %s, %s, %s, true)",
                    (new_id(), made.id, role, content, moment),
                )
        self.writes += 1
        return made

    async def messages(self, session_id: str) -> tuple[Message, ...]:
        async with self._connection() as conn:
            cur = await conn.execute(
                _MESSAGE + " WHERE session_id = %s ORDER BY seq", (session_id,)
            )
            return tuple(_message(row) for row in await cur.fetchall())

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection (its work committed at the end); psycopg errors become ours."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable(f"the sessions database {self._where} is not open")
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.IntegrityError as exc:
            raise StoreError(self._message("a write was refused by", exc)) from None
        except psycopg.OperationalError as exc:  # also the pool's PoolTimeout
            self._check_soon(pool)
            raise StoreUnavailable(self._message("lost", exc)) from None
        except psycopg.Error as exc:
            raise StoreError(self._message("an error from", exc)) from None

    def _check_soon(self, pool: AsyncConnectionPool[Connection]) -> None:
        """A connection failed (a restarted server?): test the idle ones now, in the
        background, so the others are replaced before a request finds them dead (no test at
        every checkout: that is a round trip per call)."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(pool.check(), name="sessions-pool-check")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """A write transaction, counted in `writes` once committed."""
        async with self._connection() as conn, conn.transaction():
            yield conn
        self.writes += 1

    def _message(self, what: str, exc: psycopg.Error) -> str:
        """One line naming the database without its password (even should libpq echo it)."""
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        password = _password(self._url)
        if password:
            detail = detail.replace(password, "***").replace(unquote(password), "***")
        return f"{what} the sessions database {self._where}: {detail}"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


async def _migrate(conn: Connection, *, where: str) -> None:
    async with conn.transaction():
        # replicas starting together: the second waits here, then finds nothing to do
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.ADVISORY_LOCK_KEY,))
        await conn.execute(migrations.SCHEMA_TABLE["postgresql"])
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM ollama_fleet_schema")
        row = await cur.fetchone()
        for migration in migrations.pending(int(row[0]) if row else 0, where=where):
            for statement in migration.postgresql:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO ollama_fleet_schema (version) VALUES (%s)", (migration.version,)
            )


async def _get_session(conn: Connection, session_id: str) -> Session | None:
    cur = await conn.execute(_SESSION + " WHERE s.id = %s", (session_id,))
    row = await cur.fetchone()
    return None if row is None else _session(row)


def _session(row: tuple[Any, ...]) -> Session:
    return Session(
        id=row[0],
        owner=row[1],
        title=row[2],
        model=row[3],
        created_at=row[4].astimezone(UTC),
        updated_at=row[5].astimezone(UTC),
        message_count=row[6],
    )


def _message(row: tuple[Any, ...]) -> Message:
    return Message(
        id=row[0],
        session_id=row[1],
        role=cast(Role, row[2]),
        content=row[3],
        created_at=row[4].astimezone(UTC),
        complete=row[5],
        tokens=row[6],
        error=row[7],
    )
