"""The sessions store on SQLite: one connection on one thread of its own, WAL, file mode 0600."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar, cast

from . import migrations
from .records import Message, Role, Session, SessionPage
from .store import (
    SessionGone,
    StoreError,
    StoreUnavailable,
    check_limit,
    decode_cursor,
    encode_cursor,
    from_micros,
    is_id,
    new_id,
    to_micros,
)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000  # another process (a second gateway on the same file) holds the lock

_SESSION = (
    "SELECT s.id, s.owner, s.title, s.model, s.created_at, s.updated_at,"
    " (SELECT count(*) FROM messages m WHERE m.session_id = s.id) FROM sessions s"
)
_MESSAGE = "SELECT id, session_id, role, content, created_at, complete, tokens, error FROM messages"


class SqliteStore:
    """Sessions in one SQLite file; every call runs on the store's single worker thread."""

    kind = "sqlite"

    def __init__(self, *, path: str) -> None:
        self.path = path
        self.writes = 0
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sessions-sqlite")
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._call(lambda conn: conn.execute("SELECT 1").fetchone())

    async def create_session(self, *, owner: str, title: str, model: str, now: datetime) -> Session:
        session_id, stamp = new_id(), to_micros(now)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO sessions (id, owner, title, model, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, owner, title, model, stamp, stamp),
            )

        await self._write(insert)
        moment = from_micros(stamp)
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
        return await self._call(lambda conn: _get_session(conn, session_id))

    async def list_sessions(
        self, *, owner: str | None, limit: int, cursor: str | None
    ) -> SessionPage:
        if limit < 1:
            raise ValueError(f"limit must be 1 or more, not {limit}")
        where: list[str] = []
        args: list[object] = []
        if owner is not None:
            where.append("s.owner = ?")
            args.append(owner)
        if cursor is not None:
            after, after_id = decode_cursor(cursor)
            stamp = to_micros(after)
            where.append("(s.updated_at < ? OR (s.updated_at = ? AND s.id < ?))")
            args += [stamp, stamp, after_id]
        sql = _SESSION + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY s.updated_at DESC, s.id DESC LIMIT ?"
        args.append(limit + 1)
        rows = await self._call(lambda conn: conn.execute(sql, args).fetchall())
        sessions = tuple(_session(row) for row in rows[:limit])
        more = len(rows) > limit
        last = sessions[-1] if more else None
        return SessionPage(
            sessions=sessions,
            next_cursor=encode_cursor(last.updated_at, last.id) if last else None,
        )

    async def rename_session(self, session_id: str, *, title: str, now: datetime) -> Session | None:
        if not is_id(session_id):
            return None
        stamp = to_micros(now)

        def rename(conn: sqlite3.Connection) -> Session | None:
            conn.execute(
                "UPDATE sessions SET title = ?, updated_at = ? WHERE id = ?",
                (title, stamp, session_id),
            )
            return _get_session(conn, session_id)

        return await self._write(rename)

    async def delete_session(self, session_id: str) -> bool:
        if not is_id(session_id):
            return False

        def delete(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

        return await self._write(delete)

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
        message_id, stamp = message_id or new_id(), to_micros(now)

        def insert(conn: sqlite3.Connection) -> None:
            bumped = conn.execute(
                "UPDATE sessions SET updated_at = ? WHERE id = ?", (stamp, session_id)
            ).rowcount
            if not bumped:
                raise SessionGone(f"session {session_id} does not exist (deleted meanwhile?)")
            conn.execute(
                "INSERT INTO messages (id, session_id, role, content, created_at, complete, tokens)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                # the same id again (a write whose answer was lost, retried): the same row
                " ON CONFLICT (id) DO UPDATE SET content = excluded.content,"
                " complete = excluded.complete, tokens = excluded.tokens",
                (message_id, session_id, role, content, stamp, int(complete), tokens),
            )

        await self._write(insert)
        return Message(
            id=message_id,
            session_id=session_id,
            role=role,
            content=content,
            created_at=from_micros(stamp),
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
        stamp = to_micros(now)

        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE messages SET content = ?, complete = ?, tokens = ?, error = ? WHERE id = ?",
                (content, int(complete), tokens, error, message_id),
            )
            conn.execute(
                "UPDATE sessions SET updated_at = ?"
                " WHERE id = (SELECT session_id FROM messages WHERE id = ?)",
                (stamp, message_id),
            )

        await self._write(update)

    async def messages(self, session_id: str) -> tuple[Message, ...]:
        sql = _MESSAGE + " WHERE session_id = ? ORDER BY seq"
        rows = await self._call(lambda conn: conn.execute(sql, (session_id,)).fetchall())
        return tuple(_message(row) for row in rows)

    async def history(self, session_id: str, *, limit: int) -> tuple[Message, ...]:
        check_limit(limit)
        sql = (
            _MESSAGE + " WHERE session_id = ? AND (role = 'system' OR seq IN (SELECT seq FROM"
            " messages WHERE session_id = ? AND role <> 'system' ORDER BY seq DESC LIMIT ?))"
            " ORDER BY seq"
        )
        args = (session_id, session_id, limit)
        rows = await self._call(lambda conn: conn.execute(sql, args).fetchall())
        return tuple(_message(row) for row in rows)

    def _connect(self) -> None:
        """On the worker thread: create the file 0600, connect, set up, migrate."""
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            # SQLite gives -wal and -shm the main file's mode
            conn = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"cannot open the sessions database {self.path}: {exc}"
            ) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, where=self.path)  # first: a database too new is left as it was
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash loses nothing committed
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"the sessions database {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        executor, conn = self._executor, self._conn
        if executor is None or conn is None:
            raise StoreUnavailable(f"the sessions database {self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(
            executor, _run, conn, work, self.path
        )

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)  # also after a failed COMMIT: never leave it open
                raise
            return result

        result = await self._call(transaction)
        self.writes += 1
        return result


def _run(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], where: str) -> T:
    try:
        return work(conn)
    except sqlite3.IntegrityError as exc:
        raise StoreError(f"the sessions database {where} refused a write: {exc}") from None
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"the sessions database {where} failed: {exc}") from None


def _rollback(conn: sqlite3.Connection) -> None:
    """End a transaction that failed; a rollback that fails too must not hide the first error."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _migrate(conn: sqlite3.Connection, *, where: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(migrations.SCHEMA_TABLE["sqlite"])
        current = conn.execute("SELECT coalesce(max(version), 0) FROM ollama_fleet_schema")
        for migration in migrations.pending(int(current.fetchone()[0]), where=where):
            for statement in migration.sqlite:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO ollama_fleet_schema (version, applied_at) VALUES (?, ?)",
                (migration.version, int(time.time())),
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _get_session(conn: sqlite3.Connection, session_id: str) -> Session | None:
    row = conn.execute(_SESSION + " WHERE s.id = ?", (session_id,)).fetchone()
    return None if row is None else _session(row)


def _session(row: Any) -> Session:
    return Session(
        id=row[0],
        owner=row[1],
        title=row[2],
        model=row[3],
        created_at=from_micros(row[4]),
        updated_at=from_micros(row[5]),
        message_count=row[6],
    )


def _message(row: Any) -> Message:
    return Message(
        id=row[0],
        session_id=row[1],
        role=cast(Role, row[2]),
        content=row[3],
        created_at=from_micros(row[4]),
        complete=bool(row[5]),
        tokens=row[6],
        error=row[7],
    )
