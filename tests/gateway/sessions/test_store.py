"""The sessions store, the same suite on SQLite and PostgreSQL: what the API layer relies on."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ollama_fleet.gateway.sessions.postgres_store import PostgresStore
from ollama_fleet.gateway.sessions.records import Role
from ollama_fleet.gateway.sessions.store import (
    BadCursor,
    SessionGone,
    Store,
    StoreError,
    StoreUnavailable,
    encode_cursor,
    open_store,
)
from ollama_fleet.testbed.servers import free_port
from pg_cluster import running_cluster

from .conftest import RawDb, run_store

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 21, 40, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_session_is_created_read_and_renamed(store_url: str) -> None:
    async def body(store: Store) -> None:
        made = await store.create_session(owner="alice", title="Plans", model="qwen3", now=T0)
        assert (made.owner, made.title, made.model, made.message_count) == (
            "alice",
            "Plans",
            "qwen3",
            0,
        )
        assert made.created_at == made.updated_at == T0
        assert await store.get_session(made.id) == made

        await store.add_message(
            session_id=made.id, role="user", content="hi", complete=True, now=at(1)
        )
        renamed = await store.rename_session(made.id, title="Holiday plans", now=at(2))
        assert renamed is not None
        assert (renamed.title, renamed.updated_at, renamed.message_count) == (
            "Holiday plans",
            at(2),
            1,
        )
        assert renamed.created_at == T0
        assert await store.get_session(made.id) == renamed

    run_store(store_url, body)


def test_unknown_and_malformed_ids_are_not_found(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.create_session(owner="alice", title="t", model="m", now=T0)
        for missing in ("0" * 32, "not-an-id", "", "'; DROP TABLE sessions; --"):
            assert await store.get_session(missing) is None
            assert await store.rename_session(missing, title="x", now=T0) is None
            assert await store.delete_session(missing) is False
            assert await store.messages(missing) == ()
        page = await store.list_sessions(owner=None, limit=10, cursor=None)
        assert len(page.sessions) == 1

    run_store(store_url, body)


def test_times_come_back_as_the_same_instant_in_utc(store_url: str) -> None:
    local = datetime(2026, 12, 2, 1, 10, 0, 5, tzinfo=timezone(timedelta(hours=3, minutes=30)))

    async def body(store: Store) -> None:
        made = await store.create_session(owner="a", title="t", model="m", now=local)
        message = await store.add_message(
            session_id=made.id, role="user", content="x", complete=True, now=local
        )
        for moment in (
            made.created_at,
            (await store.get_session(made.id)).created_at,  # type: ignore[union-attr]
            message.created_at,
            (await store.messages(made.id))[0].created_at,
        ):
            assert moment == local
            assert moment.utcoffset() == timedelta(0)

    run_store(store_url, body)


def test_sessions_are_listed_newest_first_through_cursors(store_url: str) -> None:
    async def body(store: Store) -> None:
        alice = [
            await store.create_session(owner="alice", title=f"a{i}", model="m", now=at(i))
            for i in range(5)
        ]
        # two sessions updated at the same instant: the id breaks the tie, none is lost
        twins = [
            await store.create_session(owner="alice", title=f"twin{i}", model="m", now=at(10))
            for i in range(2)
        ]
        bob = await store.create_session(owner="bob", title="b", model="m", now=at(20))
        # a message moves an old session to the top
        for n in range(3):
            await store.add_message(
                session_id=alice[0].id, role="user", content=str(n), complete=True, now=at(30 + n)
            )

        walked, cursor, pages = [], None, 0
        while True:
            page = await store.list_sessions(owner="alice", limit=2, cursor=cursor)
            walked += page.sessions
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 4  # 7 sessions, 2 a page
        twin_ids = sorted((t.id for t in twins), reverse=True)
        expected = [alice[0].id, *twin_ids, *(s.id for s in reversed(alice[1:]))]
        assert [s.id for s in walked] == expected
        assert walked[0].message_count == 3 and walked[0].updated_at == at(32)
        assert {s.message_count for s in walked[1:]} == {0}
        assert {s.owner for s in walked} == {"alice"}

        everyone = await store.list_sessions(owner=None, limit=100, cursor=None)
        assert [s.id for s in everyone.sessions] == [alice[0].id, bob.id, *expected[1:]]
        assert everyone.next_cursor is None
        exact = await store.list_sessions(owner="bob", limit=1, cursor=None)
        assert [s.id for s in exact.sessions] == [bob.id]
        assert exact.next_cursor is None
        assert (await store.list_sessions(owner="carol", limit=5, cursor=None)).sessions == ()

    run_store(store_url, body)


def test_a_cursor_not_handed_out_is_refused(store_url: str) -> None:
    async def body(store: Store) -> None:
        await store.create_session(owner="alice", title="t", model="m", now=T0)
        forged = encode_cursor(T0, "0" * 32)[:-3] + "!!!"
        for bad in ("garbage", "", forged, "MTIzLm5vdC1hbi1pZA"):  # the last: "123.not-an-id"
            with pytest.raises(BadCursor):
                await store.list_sessions(owner=None, limit=5, cursor=bad)
        # a well-formed cursor past every session: an empty last page
        far = await store.list_sessions(
            owner=None, limit=5, cursor=encode_cursor(at(-60), "0" * 32)
        )
        assert far.sessions == () and far.next_cursor is None

    run_store(store_url, body)


def test_deleting_a_session_deletes_its_messages(store_url: str) -> None:
    raw = RawDb(store_url)
    ids: dict[str, str] = {}

    async def body(store: Store) -> None:
        gone = await store.create_session(owner="alice", title="t", model="m", now=T0)
        kept = await store.create_session(owner="alice", title="k", model="m", now=T0)
        for session in (gone, kept):
            for role in ("system", "user", "assistant"):
                await store.add_message(
                    session_id=session.id, role=role, content=role, complete=True, now=at(1)
                )
        assert await store.delete_session(gone.id) is True
        assert await store.get_session(gone.id) is None
        assert await store.messages(gone.id) == ()
        assert await store.delete_session(gone.id) is False
        assert len(await store.messages(kept.id)) == 3
        with pytest.raises(StoreError, match="does not exist"):
            await store.add_message(
                session_id=gone.id, role="user", content="late", complete=True, now=at(2)
            )
        ids.update(gone=gone.id, kept=kept.id)

    run_store(store_url, body)
    counts = dict(raw.execute("SELECT session_id, count(*) FROM messages GROUP BY session_id"))
    assert counts == {ids["kept"]: 3}


def test_the_database_itself_refuses_an_unknown_role(store_url: str) -> None:
    raw = RawDb(store_url)
    holder: list[str] = []

    async def body(store: Store) -> None:
        session = await store.create_session(owner="alice", title="t", model="m", now=T0)
        holder.append(session.id)
        robot: Role = "robot"  # type: ignore[assignment]
        with pytest.raises(StoreError, match="refused"):
            await store.add_message(
                session_id=session.id, role=robot, content="beep", complete=True, now=T0
            )
        assert await store.messages(session.id) == ()

    run_store(store_url, body)
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        raw.execute(
            "INSERT INTO messages (id, session_id, role, content, created_at, complete)"
            " VALUES (?, ?, 'robot', 'beep', ?, ?)",
            ("1" * 32, holder[0], raw.stamp(T0), True),
        )
    assert raw.execute("SELECT count(*) FROM messages") == [(0,)]


def test_a_streamed_answer_is_one_row_updated_in_place(store_url: str) -> None:
    raw = RawDb(store_url)

    async def body(store: Store) -> None:
        session = await store.create_session(owner="alice", title="t", model="m", now=T0)
        question = await store.add_message(
            session_id=session.id, role="user", content="why?", complete=True, now=at(1)
        )
        answer = await store.add_message(
            session_id=session.id, role="assistant", content="", complete=False, now=at(2)
        )
        assert (answer.complete, answer.tokens, answer.error) == (False, None, None)
        text = ""
        for n, piece in enumerate(("Because ", "the sky ", "is blue.")):
            text += piece
            await store.update_message(
                answer.id, content=text, complete=False, tokens=None, error=None, now=at(3 + n)
            )
        await store.update_message(
            answer.id, content=text, complete=True, tokens=7, error=None, now=at(9)
        )
        stored = await store.messages(session.id)
        assert [m.id for m in stored] == [question.id, answer.id]
        final = stored[1]
        assert (final.content, final.complete, final.tokens, final.error) == (
            "Because the sky is blue.",
            True,
            7,
            None,
        )
        assert final.created_at == at(2)
        now_session = await store.get_session(session.id)
        assert now_session is not None
        assert (now_session.updated_at, now_session.message_count) == (at(9), 2)

        cut = await store.add_message(
            session_id=session.id, role="assistant", content="", complete=False, now=at(10)
        )
        await store.update_message(
            cut.id,
            content="Half",
            complete=False,
            tokens=None,
            error="client_disconnect",
            now=at(11),
        )
        last = (await store.messages(session.id))[-1]
        assert (last.content, last.complete, last.error) == ("Half", False, "client_disconnect")

    run_store(store_url, body)
    assert raw.execute("SELECT count(*) FROM messages") == [(3,)]


def test_history_keeps_system_messages_and_the_newest_others(store_url: str) -> None:
    async def body(store: Store) -> None:
        session = await store.create_session(owner="alice", title="t", model="m", now=T0)
        other = await store.create_session(owner="alice", title="o", model="m", now=T0)
        await store.add_message(
            session_id=other.id, role="user", content="elsewhere", complete=True, now=T0
        )
        script: list[tuple[Role, str]] = [
            ("system", "be brief"),
            ("user", "q1"),
            ("assistant", "a1"),
            ("user", "q2"),
            ("system", "now in French"),
            ("assistant", "a2"),
            ("user", "q3"),
            ("assistant", "a3"),
        ]
        for n, (role, content) in enumerate(script):
            await store.add_message(
                session_id=session.id, role=role, content=content, complete=True, now=at(n)
            )

        async def contents(limit: int) -> list[str]:
            found = await store.context(session.id, limit=limit)
            assert found is not None
            return [m.content for m in found[1]]

        assert await contents(3) == ["be brief", "now in French", "a2", "q3", "a3"]
        assert await contents(0) == ["be brief", "now in French"]
        assert await contents(100) == [content for _, content in script]
        assert [m.content for m in await store.messages(session.id)] == await contents(6)
        with pytest.raises(ValueError):
            await store.context(session.id, limit=-1)

    run_store(store_url, body)


def test_writes_are_counted(store_url: str) -> None:
    async def body(store: Store) -> None:
        start = store.writes
        session = await store.create_session(owner="a", title="t", model="m", now=T0)
        message = await store.add_message(
            session_id=session.id, role="user", content="x", complete=True, now=T0
        )
        await store.update_message(
            message.id, content="y", complete=True, tokens=1, error=None, now=T0
        )
        await store.rename_session(session.id, title="u", now=T0)
        await store.get_session(session.id)
        await store.list_sessions(owner=None, limit=5, cursor=None)
        await store.delete_session(session.id)
        assert store.writes - start == 5

    run_store(store_url, body)


def test_a_closed_store_is_unavailable(store_url: str) -> None:
    async def main() -> None:
        store = open_store(store_url)
        await store.open()
        await store.ping()
        await store.close()
        with pytest.raises(StoreUnavailable, match="not open"):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.create_session(owner="a", title="t", model="m", now=T0)

    asyncio.run(main())


def test_the_sqlite_file_and_its_journal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    previous = os.umask(0o022)
    try:

        async def body(store: Store) -> None:
            session = await store.create_session(owner="a", title="t", model="m", now=T0)
            await store.add_message(
                session_id=session.id, role="user", content="secret", complete=True, now=T0
            )
            made = sorted(p.name for p in tmp_path.iterdir())
            assert made == ["sessions.sqlite3", "sessions.sqlite3-shm", "sessions.sqlite3-wal"]
            for name in made:
                assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name

        run_store(f"sqlite:///{path}", body)
    finally:
        os.umask(previous)


def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/missing-dir/s.sqlite3", f"sqlite:///{tmp_path}"):
        store = open_store(url)
        with pytest.raises(StoreUnavailable, match=str(tmp_path)):
            asyncio.run(store.open())


def test_postgresql_refusing_connections_is_unavailable_without_the_password() -> None:
    url = f"postgresql://alice:hunter2@127.0.0.1:{free_port()}/fleet"
    store = open_store(url)
    with pytest.raises(StoreUnavailable) as caught:
        asyncio.run(store.open())
    message = str(caught.value)
    assert "hunter2" not in message and "alice" not in message
    assert "***@127.0.0.1" in message
    assert "\n" not in message


def test_postgresql_going_down_makes_calls_unavailable() -> None:
    with running_cluster() as cluster:
        url = cluster.new_database().replace("postgres@", "postgres:hunter2@")  # trust: ignored

        async def main() -> None:
            store = PostgresStore(url=url, pool_size=2, checkout_timeout_s=0.5)
            await store.open()
            try:
                session = await store.create_session(owner="a", title="t", model="m", now=T0)
                await store.ping()
                cluster.stop()
                with pytest.raises(StoreUnavailable) as caught:
                    await store.ping()
                assert "hunter2" not in str(caught.value)
                with pytest.raises(StoreUnavailable):
                    await store.get_session(session.id)
            finally:
                await store.close()

        asyncio.run(asyncio.wait_for(main(), 60))


def test_open_store_picks_the_backend_by_scheme(tmp_path: Path) -> None:
    assert open_store(f"sqlite:///{tmp_path}/a.sqlite3").kind == "sqlite"
    assert open_store("sqlite:///relative.sqlite3").kind == "sqlite"
    assert open_store("postgresql://u:p@db:5432/fleet").kind == "postgresql"
    assert open_store("postgres://db/fleet").kind == "postgresql"
    for url, named in (
        ("mysql://root:hunter2@db/fleet", "'mysql'"),
        ("sessions.sqlite3", "(none)"),
        ("sqlite://", "a SQLite URL"),
    ):
        with pytest.raises(
            StoreError, match=named.replace("(", r"\(").replace(")", r"\)")
        ) as caught:
            open_store(url)
        assert "hunter2" not in str(caught.value)


def test_a_turn_begins_in_one_write_and_its_context_is_one_read(store_url: str) -> None:
    async def body(store: Store) -> None:
        before = store.writes
        made = await store.begin_turn(
            session=None, owner="alice", title="Trip", model="m", system="Be brief.",
            message="Where to?", now=T0,
        )  # fmt: skip
        assert store.writes - before == 1
        assert (made.owner, made.title, made.model, made.message_count) == ("alice", "Trip", "m", 2)
        assert await store.get_session(made.id) == made
        found = await store.context(made.id, limit=10)
        assert found is not None and found[0] == made
        assert [(m.role, m.content) for m in found[1]] == [
            ("system", "Be brief."),
            ("user", "Where to?"),
        ]
        again = await store.begin_turn(
            session=made, owner="alice", title="ignored", model="m", system=None,
            message="And then?", now=at(5),
        )  # fmt: skip
        assert again.id == made.id
        found = await store.context(made.id, limit=1)
        assert found is not None and found[0].updated_at == at(5)
        assert [m.content for m in found[1]] == ["Be brief.", "And then?"]
        assert await store.context("0" * 32, limit=5) is None
        assert await store.context("not an id", limit=5) is None
        await store.delete_session(made.id)
        with pytest.raises(SessionGone):
            await store.begin_turn(
                session=made, owner="alice", title="x", model="m", system=None,
                message="too late", now=at(9),
            )  # fmt: skip
        assert await store.messages(made.id) == ()

    run_store(store_url, body)


def test_a_turn_postgresql_refuses_leaves_no_session_behind(pg_cluster: Any) -> None:
    url = pg_cluster()

    async def body(store: Store) -> None:
        with pytest.raises(StoreError):  # PostgreSQL's text takes no NUL: the whole turn goes
            await store.begin_turn(
                session=None, owner="alice", title="t", model="m", system="ok",
                message="bad \x00 byte", now=T0,
            )  # fmt: skip

    run_store(url, body)
    assert RawDb(url).execute("SELECT count(*) FROM sessions") == [(0,)]
