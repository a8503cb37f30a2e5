"""The gateway's sessions database: opened (and migrated) at start, retried while it is away.

A database newer than the code stops the start (SchemaTooNew: the gateway must be upgraded).
One that cannot be reached does not: the relay routes go on, the sessions routes answer 503
with a problem, and the gateway tries again every RETRY_S, logging once when it is lost and
once when it is back. Messages name the database by `safe_url` (no password).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from ollama_fleet.gateway.sessions.problems import Problem
from ollama_fleet.gateway.sessions.store import (
    BadCursor,
    SchemaTooNew,
    SessionGone,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
)
from ollama_fleet.gateway.sessions.urls import safe_url
from ollama_fleet.gateway.settings import Sessions

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_S = 5.0
OPEN_TIMEOUT_S = 10.0
PING_TIMEOUT_S = 2.0
UNAVAILABLE = "the sessions database is unavailable now; the gateway keeps trying"


def default_database_url() -> str:
    """SQLite under $STATE_DIRECTORY (systemd's) or $XDG_STATE_HOME/ollama-fleet/gateway."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[-1]
    if state:
        folder = Path(state)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        folder = Path(base) / "ollama-fleet" / "gateway"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{folder.resolve() / 'sessions.sqlite3'}"


class Database:
    """The store behind the sessions routes, or why there is none right now."""

    def __init__(self, settings: Sessions) -> None:
        self.url = settings.database_url
        self._store: Store | None = None
        self._retry: asyncio.Task[None] | None = None
        self._lost = False
        self._started = False

    @property
    def up(self) -> bool:
        """Open, and its last call worked."""
        return self._store is not None and not self._lost

    @property
    def writes(self) -> int:
        """Write transactions committed so far (0 before it opened)."""
        return self._store.writes if self._store is not None else 0

    @property
    def shown(self) -> str:
        return safe_url(self.url) if self.url else "SQLite (default file)"

    async def start(self) -> None:
        """Open and migrate; SchemaTooNew is raised (the start fails), anything else retried.
        Once: a second call (the app's lifespan after the service opened it) does nothing."""
        if self._started:
            return
        self._started = True
        if self.url is None:
            self.url = default_database_url()
        if await self._try_open():
            return
        self._retry = asyncio.create_task(self._keep_trying(), name="sessions-database")

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    def store(self) -> Store:
        """The open store; Problem 503 while there is none."""
        if self._store is None:
            raise Problem(503, "database-unavailable", UNAVAILABLE)
        return self._store

    async def run(self, operation: Callable[[Store], Awaitable[T]]) -> T:
        """`operation` on the store, its failures as the API answers them: 503 while the
        database is away (logged once, and once when it answers again), 404 for a session
        deleted meanwhile, 500 for a change it refused (logged); BadCursor passes."""
        store = self.store()
        try:
            result = await operation(store)
        except StoreUnavailable as exc:
            raise self.lost(exc) from None
        except SessionGone:
            raise Problem(404, "session-not-found", "the session was deleted meanwhile") from None
        except BadCursor:
            raise
        except StoreError as exc:
            log.error("gateway: sessions database %s: %s", self.shown, exc)
            raise Problem(500, "database-error", "the sessions database refused it") from None
        self._answers()
        return result

    def lost(self, exc: StoreError) -> Problem:
        """A call failed on the store: log it once, and the Problem to answer (503)."""
        if not self._lost:
            self._lost = True
            log.error("gateway: sessions database %s failed: %s", self.shown, exc)
        return Problem(503, "database-unavailable", UNAVAILABLE)

    def _answers(self) -> None:
        if self._lost:
            self._lost = False
            log.info("gateway: sessions database %s answers again", self.shown)

    async def status(self) -> str:
        """ "ok" when the database answers a ping now, else "unavailable" (for /health)."""
        if self._store is None:
            return "unavailable"
        try:
            await asyncio.wait_for(self._store.ping(), PING_TIMEOUT_S)
        except (StoreError, TimeoutError) as exc:
            self.lost(exc if isinstance(exc, StoreError) else StoreError("no answer to a ping"))
            return "unavailable"
        self._answers()
        return "ok"

    async def _try_open(self) -> bool:
        assert self.url is not None
        store = open_store(self.url)
        try:
            await asyncio.wait_for(store.open(), OPEN_TIMEOUT_S)
        except SchemaTooNew:
            await store.close()
            raise
        except (StoreError, TimeoutError, OSError) as exc:
            await store.close()
            if not self._lost:
                self._lost = True
                why = exc if str(exc) else type(exc).__name__
                log.error(
                    "gateway: sessions database %s cannot be opened (%s); /v1/chat and "
                    "/v1/sessions answer 503 until it can; trying again every %gs",
                    self.shown,
                    why,
                    RETRY_S,
                )
            return False
        self._store = store
        if self._lost:
            self._lost = False
            log.info("gateway: sessions database %s opened", self.shown)
        return True

    async def _keep_trying(self) -> None:
        while True:
            await asyncio.sleep(RETRY_S)
            try:
                if await self._try_open():
                    return
            except SchemaTooNew as exc:
                log.error("gateway: sessions database %s: %s", self.shown, exc)
                return
