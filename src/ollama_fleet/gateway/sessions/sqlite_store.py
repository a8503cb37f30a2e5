"""The sessions store on SQLite: one connection on the event loop, WAL, file mode 0600.

Why on the loop, not on a thread: a statement here takes tens of microseconds (WAL with
synchronous=NORMAL writes without fsync), while handing each one to a worker thread and back
waits for the GIL and the busy loop, milliseconds at p50 and seconds at p99 under 100 streams
(docs/performance.md, "Sessions"). What does fsync, the checkpoint of the WAL into the file,
runs on a thread of its own with its own connection (passive: it never blocks a write), and a
lock held by another process is waited for at most BUSY_TIMEOUT_MS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
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

# another process (a backup, a second gateway by mistake) holds the lock: wait this long, on
# the loop, then fail the call (503) rather than stall every stream
BUSY_TIMEOUT_MS = 200
CHECKPOINT_EVERY_S = 1.0
CHECKPOINT_PAGES = 1000  # SQLite's own default threshold, applied by the checkpoint thread

_SESSION = (
    "SELECT s.id, s.owner, s.title, s.model, s.created_at, s.updated_at,"
    " (SELECT count(*) FROM messages m WHERE m.session_id = s.id) FROM sessions s"
)
_MESSAGE = "SELECT id, session_id, role, content, created_at, complete, tokens, error FROM messages"
_INSERT_SESSION = (
    "INSERT INTO sessions (id, owner, title, model, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_HISTORY = (
    _MESSAGE + " WHERE session_id = ? AND (role = 'system' OR seq IN (SELECT seq FROM"
    " messages WHERE session_id = ? AND role <> 'system' ORDER BY seq DESC LIMIT ?))"
    " ORDER BY seq"
)


class SqliteStore:
    """Sessions in one SQLite file; every call runs on the event loop's thread."""

    kind = "sqlite"

    def __init__(self, *, path: str) -> None:
        self.path = path
        self.writes = 0
        self._conn: sqlite3.Connection | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._checkpointed = 0  # self.writes at the last checkpoint

    async def open(self) -> None:
        self._connect()
        self._checkpoints = asyncio.create_task(self._checkpoint_loop(), name="sqlite-checkpoint")

    async def close(self) -> None:
        task, self._checkpoints = self._checkpoints, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # the WAL folded in, as a clean close does
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()

    async def _checkpoint_loop(self) -> None:
        """Fold the WAL into the file now and then, off the loop (it fsyncs)."""
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            if self.writes - self._checkpointed < CHECKPOINT_PAGES // 10:
                continue
            self._checkpointed = self.writes
            try:
                await asyncio.to_thread(_checkpoint, self.path)
            except sqlite3.Error:  # busy or away: the next round tries again
                continue

    async def ping(self) -> None:
        await self._call(lambda conn: conn.execute("SELECT 1").fetchone())

    async def create_session(self, *, owner: str, title: str, model: str, now: datetime) -> Session:
        session_id, stamp = new_id(), to_micros(now)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                _INSERT_SESSION,
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

    async def context(
        self, session_id: str, *, limit: int
    ) -> tuple[Session, tuple[Message, ...]] | None:
        check_limit(limit)
        if not is_id(session_id):
            return None

        def read(conn: sqlite3.Connection) -> tuple[Session, tuple[Message, ...]] | None:
            session = _get_session(conn, session_id)
            if session is None:
                return None
            rows = conn.execute(_HISTORY, (session_id, session_id, limit)).fetchall()
            return session, tuple(_message(row) for row in rows)

        return await self._call(read)

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
        stamp = to_micros(now)
        moment = from_micros(stamp)
        made = session or Session(
            id=new_id(), owner=owner, title=title, model=model, created_at=moment,
            updated_at=moment, message_count=2 if system is not None else 1,
        )  # fmt: skip
        rows = [("system", system)] if session is None and system is not None else []
        rows.append(("user", message))

        def write(conn: sqlite3.Connection) -> None:
            if session is None:
                conn.execute(
                    _INSERT_SESSION,
                    (made.id, owner, title, model, stamp, stamp),
                )
            elif not conn.execute(
                "UPDATE sessions SET updated_at = ? WHERE id = ?", (stamp, made.id)
            ).rowcount:
                raise SessionGone(f"session {made.id} does not exist (deleted meanwhile?)")
            conn.executemany(
                "INSERT INTO messages (id, session_id, role, content, created_at, complete)"
                " VALUES (?, ?, ?, ?, ?, 1)",
                [(new_id(), made.id, role, content, stamp) for role, content in rows],
            )

        await self._write(write)
        return made

    async def messages(self, session_id: str) -> tuple[Message, ...]:
        sql = _MESSAGE + " WHERE session_id = ? ORDER BY seq"
        rows = await self._call(lambda conn: conn.execute(sql, (session_id,)).fetchall())
        return tuple(_message(row) for row in rows)

    def _connect(self) -> None:
        """Create the file 0600, connect, set up, migrate."""
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
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpoint thread does it
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"the sessions database {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable(f"the sessions database {self.path} is not open")
        return _run(conn, work, self.path)

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


def _checkpoint(path: str) -> None:
    """A passive checkpoint on a connection of this thread's own (never blocks a writer)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()


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
