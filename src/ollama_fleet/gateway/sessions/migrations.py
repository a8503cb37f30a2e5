"""The sessions schema as numbered migrations, for SQLite and PostgreSQL alike.

A database records the versions applied in `ollama_fleet_schema`; `open()` applies the missing
ones in one transaction (under an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite), so
replicas starting together migrate once. Never edit a released migration: add the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .store import SchemaTooNew

Dialect = Literal["sqlite", "postgresql"]

# pg_advisory_xact_lock's key: any constant that is ours ("ofsessio" as a big-endian int64)
ADVISORY_LOCK_KEY = 0x6F6673657373696F

SCHEMA_TABLE: dict[Dialect, str] = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS ollama_fleet_schema "
        "(version integer PRIMARY KEY, applied_at integer NOT NULL)"
    ),
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS ollama_fleet_schema "
        "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One schema step: the statements of each dialect, applied together."""

    version: int
    summary: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgresql


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        summary="sessions and messages",
        sqlite=(
            "CREATE TABLE sessions (id text PRIMARY KEY, owner text NOT NULL, title text NOT NULL,"
            " model text NOT NULL, created_at integer NOT NULL, updated_at integer NOT NULL)",
            "CREATE TABLE messages (seq integer PRIMARY KEY AUTOINCREMENT,"
            " id text NOT NULL UNIQUE,"
            " session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,"
            " role text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),"
            " content text NOT NULL, created_at integer NOT NULL, complete integer NOT NULL,"
            " tokens integer)",
            "CREATE INDEX messages_session_seq ON messages (session_id, seq)",
            "CREATE INDEX sessions_updated ON sessions (updated_at, id)",
        ),
        postgresql=(
            "CREATE TABLE sessions (id text PRIMARY KEY, owner text NOT NULL, title text NOT NULL,"
            " model text NOT NULL, created_at timestamptz NOT NULL,"
            " updated_at timestamptz NOT NULL)",
            "CREATE TABLE messages (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " id text NOT NULL UNIQUE,"
            " session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,"
            " role text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),"
            " content text NOT NULL, created_at timestamptz NOT NULL, complete boolean NOT NULL,"
            " tokens integer)",
            "CREATE INDEX messages_session_seq ON messages (session_id, seq)",
            "CREATE INDEX sessions_updated ON sessions (updated_at, id)",
        ),
    ),
    Migration(
        version=2,
        summary="why an answer is incomplete (messages.error); sessions by owner",
        sqlite=(
            "ALTER TABLE messages ADD COLUMN error text",
            "CREATE INDEX sessions_owner_updated ON sessions (owner, updated_at, id)",
        ),
        postgresql=(
            "ALTER TABLE messages ADD COLUMN error text",
            "CREATE INDEX sessions_owner_updated ON sessions (owner, updated_at, id)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


def pending(current: int, *, where: str) -> tuple[Migration, ...]:
    """The migrations a database at version `current` still needs (0: a new database);
    SchemaTooNew when it is newer than this code (`where`: the safe URL, for the message)."""
    if current > LATEST:
        raise SchemaTooNew(where=where, db_version=current, code_version=LATEST)
    return tuple(m for m in MIGRATIONS if m.version > current)
