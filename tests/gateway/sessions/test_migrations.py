"""The sessions schema's migrations: a new database, one from the previous version, one too new."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from ollama_fleet.gateway.sessions import migrations
from ollama_fleet.gateway.sessions.migrations import LATEST, MIGRATIONS, SCHEMA_TABLE
from ollama_fleet.gateway.sessions.store import SchemaTooNew, Store, open_store

from .conftest import RawDb, run_store

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 21, 40, tzinfo=UTC)
SESSION_ID, MESSAGE_ID = "a" * 32, "b" * 32


def tables(raw: RawDb) -> list[str]:
    if raw.kind == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY 1"
    else:
        sql = (
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' ORDER BY 1"
        )
    return [row[0] for row in raw.execute(sql)]


def test_the_migrations_are_numbered_from_one_for_both_dialects() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    assert LATEST >= 2
    for migration in MIGRATIONS:
        assert migration.summary
        assert migration.statements("sqlite") and migration.statements("postgresql")
    assert migrations.pending(0, where="db") == MIGRATIONS
    assert migrations.pending(1, where="db") == MIGRATIONS[1:]
    assert migrations.pending(LATEST, where="db") == ()
    with pytest.raises(SchemaTooNew, match=f"version {LATEST + 1}.*up to {LATEST}"):
        migrations.pending(LATEST + 1, where="db")


def test_a_new_database_gets_every_migration_once(store_url: str, raw: RawDb) -> None:
    async def body(store: Store) -> None:
        await store.create_session(owner="alice", title="t", model="m", now=T0)

    run_store(store_url, body)
    assert raw.versions() == list(range(1, LATEST + 1))
    run_store(store_url, body)  # reopening applies nothing again, keeps the rows
    assert raw.versions() == list(range(1, LATEST + 1))
    assert raw.execute("SELECT count(*) FROM sessions") == [(2,)]


def test_a_database_of_the_previous_version_is_upgraded_with_its_rows(
    store_url: str, raw: RawDb
) -> None:
    raw.execute(SCHEMA_TABLE[raw.kind])
    for statement in MIGRATIONS[0].statements(raw.kind):  # type: ignore[arg-type]
        raw.execute(statement)
    raw.execute(
        "INSERT INTO ollama_fleet_schema (version, applied_at) VALUES (1, ?)", (raw.stamp(T0),)
    )
    raw.execute(
        "INSERT INTO sessions (id, owner, title, model, created_at, updated_at)"
        " VALUES (?, 'alice', 'old talk', 'qwen3', ?, ?)",
        (SESSION_ID, raw.stamp(T0), raw.stamp(T0)),
    )
    raw.execute(
        "INSERT INTO messages (id, session_id, role, content, created_at, complete, tokens)"
        " VALUES (?, ?, 'assistant', 'half an ans', ?, ?, NULL)",
        (MESSAGE_ID, SESSION_ID, raw.stamp(T0), False),
    )
    assert "sessions_owner_updated" not in tables(raw)

    async def body(store: Store) -> None:
        session = await store.get_session(SESSION_ID)
        assert session is not None
        assert (session.title, session.owner, session.message_count) == ("old talk", "alice", 1)
        (old,) = await store.messages(SESSION_ID)
        assert (old.id, old.content, old.complete, old.error) == (
            MESSAGE_ID,
            "half an ans",
            False,
            None,
        )
        await store.update_message(
            MESSAGE_ID,
            content="half an ans",
            complete=False,
            tokens=None,
            error="upstream: gone",
            now=T0,
        )
        assert (await store.messages(SESSION_ID))[0].error == "upstream: gone"
        page = await store.list_sessions(owner="alice", limit=5, cursor=None)
        assert [s.id for s in page.sessions] == [SESSION_ID]

    run_store(store_url, body)
    assert raw.versions() == list(range(1, LATEST + 1))
    assert "sessions_owner_updated" in tables(raw)


def test_a_database_newer_than_the_code_is_refused_and_left_alone(
    store_url: str, raw: RawDb
) -> None:
    async def body(store: Store) -> None:
        await store.create_session(owner="alice", title="t", model="m", now=T0)

    run_store(store_url, body)
    raw.execute(
        "INSERT INTO ollama_fleet_schema (version, applied_at) VALUES (?, ?)",
        (LATEST + 1, raw.stamp(T0)),
    )
    before = (tables(raw), raw.versions(), raw.execute("SELECT id, title FROM sessions"))

    store = open_store(store_url)
    with pytest.raises(SchemaTooNew) as caught:
        asyncio.run(store.open())
    message = str(caught.value)
    assert f"schema version {LATEST + 1}" in message and f"up to {LATEST}" in message
    assert "upgrade ollama-fleet" in message and "\n" not in message
    assert (tables(raw), raw.versions(), raw.execute("SELECT id, title FROM sessions")) == before


def test_replicas_opening_together_migrate_once(store_url: str, raw: RawDb) -> None:
    async def main() -> None:
        stores = [open_store(store_url) for _ in range(4)]
        await asyncio.gather(*(store.open() for store in stores))
        try:
            made = await stores[0].create_session(owner="a", title="t", model="m", now=T0)
            assert await stores[3].get_session(made.id) == made
        finally:
            await asyncio.gather(*(store.close() for store in stores))

    asyncio.run(asyncio.wait_for(main(), 60))
    assert raw.versions() == list(range(1, LATEST + 1))
