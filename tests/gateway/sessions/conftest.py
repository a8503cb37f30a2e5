"""Fixtures of the sessions store's tests: each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ollama_fleet.gateway.sessions.store import Store, open_store, to_micros
from pg_cluster import pg_cluster

__all__ = ["RawDb", "pg_cluster", "raw", "run_store", "store_url"]

StoreTest = Callable[[Store], Awaitable[None]]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database in the session's cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    new_database: Callable[[], str] = request.getfixturevalue("pg_cluster")
    return new_database()


def run_store(url: str, body: StoreTest, *, timeout_s: float = 30.0) -> None:
    """Open a store on `url`, run `body` with it in a fresh event loop, close it."""

    async def main() -> None:
        store = open_store(url)
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(main(), timeout_s))


class RawDb:
    """The test's own connection to a store's database, for what the Store API cannot do.

    SQL uses `?` placeholders for both dialects; `stamp()` turns a datetime into the column's type.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "sqlite" if url.startswith("sqlite:") else "postgresql"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            with closing(sqlite3.connect(path, isolation_level=None)) as conn:
                conn.execute("PRAGMA foreign_keys = ON")
                return conn.execute(sql, params).fetchall()
        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(sql.replace("?", "%s").encode(), params)
            return cur.fetchall() if cur.description else []

    def stamp(self, moment: datetime) -> object:
        return to_micros(moment) if self.kind == "sqlite" else moment

    def versions(self) -> list[int]:
        return [
            row[0] for row in self.execute("SELECT version FROM ollama_fleet_schema ORDER BY 1")
        ]


@pytest.fixture
def raw(store_url: str) -> RawDb:
    return RawDb(store_url)
