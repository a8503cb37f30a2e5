"""The monitor's SQLite store: sample history, hourly roll-ups, alert states and the outbox.

One file, `monitor.sqlite3`, in the state dir, in WAL mode. Every call is one short
transaction on the event loop's thread; a state change and the notifications it made are
written together (`commit_step`), so a restart neither re-sends an alert nor forgets one.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ollama_fleet.checks.model import Status
from ollama_fleet.errors import ConfigError
from ollama_fleet.monitor.alerts import AlertState, Notification
from ollama_fleet.monitor.model import UPTIME_WINDOWS, Sample
from ollama_fleet.monitor.uptime import STATUS_BY_RANK, Tally
from ollama_fleet.monitor.uptime import bars as bars_of
from ollama_fleet.monitor.uptime import uptime as uptime_of

DB_NAME = "monitor.sqlite3"
SCHEMA_VERSION = 1
DIR_MODE = 0o750
FILE_MODE = 0o640
HOUR_S = 3600

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE series (
    id INTEGER PRIMARY KEY, target TEXT NOT NULL, check_name TEXT NOT NULL,
    UNIQUE (target, check_name));
CREATE TABLE samples (
    series INTEGER NOT NULL REFERENCES series (id), at REAL NOT NULL, status INTEGER NOT NULL,
    elapsed_ms REAL NOT NULL, failure_class TEXT, first_token_ms REAL, tokens_per_s REAL);
CREATE INDEX samples_by_series ON samples (series, at);
CREATE INDEX samples_by_time ON samples (at);
CREATE TABLE rollups (
    series INTEGER NOT NULL REFERENCES series (id), hour INTEGER NOT NULL,
    total INTEGER NOT NULL, up INTEGER NOT NULL, worst INTEGER NOT NULL,
    PRIMARY KEY (series, hour)) WITHOUT ROWID;
CREATE TABLE alert_states (
    target TEXT NOT NULL, check_name TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (target, check_name));
CREATE TABLE notifications (
    id TEXT PRIMARY KEY, target TEXT NOT NULL, check_name TEXT NOT NULL,
    body TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification TEXT NOT NULL REFERENCES notifications (id),
    receiver TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL,
    last_error TEXT);
CREATE INDEX deliveries_by_time ON deliveries (next_try);
"""

# A delivery is due when its time has come and no older delivery for the same receiver and
# alert waits before it: a resolved never overtakes the firing it resolves.
_DUE = """
SELECT d.id, d.receiver, n.body, d.attempts, d.next_try
FROM deliveries d JOIN notifications n ON n.id = d.notification
WHERE d.next_try <= ? AND NOT EXISTS (
    SELECT 1 FROM deliveries d2 JOIN notifications n2 ON n2.id = d2.notification
    WHERE d2.receiver = d.receiver AND n2.target = n.target
      AND n2.check_name = n.check_name AND d2.id < d.id)
ORDER BY d.id
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One notification owed to one receiver, with its tries so far."""

    id: int
    receiver: str
    notification: Notification
    attempts: int
    next_try: float


class Store:
    """The state dir's database; open with `Store.open(state_dir)`, close when done."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._series: dict[tuple[str, str], int] = {}

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        """Open (creating where missing) the store in `state_dir`; ConfigError if unusable."""
        path = state_dir / DB_NAME
        try:
            if not state_dir.exists():
                state_dir.mkdir(parents=True, mode=DIR_MODE)
                os.chmod(state_dir, DIR_MODE)  # the umask may have taken bits away
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
                os.chmod(path, FILE_MODE)
            connection = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{path}: cannot open the monitor's store: {exc}") from None
        try:
            _prepare(connection, path)
        except BaseException:
            connection.close()
            raise
        return cls(connection, path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # history

    def add_samples(self, samples: Iterable[Sample]) -> None:
        """Keep samples and count them into their hours, in one transaction."""
        with self._transaction():
            self._add_samples(samples)

    def samples(self, target: str, check: str, since: float) -> list[Sample]:
        """The raw samples of (target, check) at or after `since`, oldest first."""
        rows = self._db.execute(
            "SELECT at, status, elapsed_ms, failure_class, first_token_ms, tokens_per_s"
            " FROM samples JOIN series ON series.id = samples.series"
            " WHERE target = ? AND check_name = ? AND at >= ? ORDER BY at",
            (target, check, since),
        )
        return [
            Sample(
                target=target,
                check=check,
                at=at,
                status=STATUS_BY_RANK[status],
                elapsed_ms=elapsed_ms,
                failure_class=failure_class,
                first_token_ms=first_token_ms,
                tokens_per_s=tokens_per_s,
            )
            for at, status, elapsed_ms, failure_class, first_token_ms, tokens_per_s in rows
        ]

    def uptime(self, target: str, check: str, now: float) -> dict[str, float | None]:
        """Uptime per UPTIME_WINDOWS: the shortest from raw samples, the others from hours.

        An hour counts into a window when its start lies inside the window, so a 24 h
        window covers between 23 and 24 hours (the hour it began in is left out).
        """
        (shortest, shortest_s), *longer = UPTIME_WINDOWS
        shares = uptime_of(
            self.samples(target, check, now - shortest_s),
            now=now,
            windows=[(shortest, shortest_s)],
        )
        if longer:
            oldest = max(seconds for _, seconds in longer)
            hours = self._hours(target, check, now - oldest, now)
            shares |= uptime_of(hours, now=now, windows=longer)
        return shares

    def bars(
        self, target: str, check: str, now: float, span_s: float, count: int
    ) -> tuple[Status | None, ...]:
        """The worst status per bucket over (now - span_s, now], oldest first.

        Raw samples where they are kept; before the oldest, hourly roll-ups (each counted at
        its hour's start).
        """
        raw = self.samples(target, check, now - span_s)
        items: list[Sample | Tally] = list(raw)
        oldest_raw = raw[0].at if raw else now
        first_raw_hour = int(oldest_raw // HOUR_S) * HOUR_S
        items += [h for h in self._hours(target, check, now - span_s, now) if h.at < first_raw_hour]
        return bars_of(items, now=now, span_s=span_s, count=count)

    def prune(self, now: float, retention_s: float, rollup_retention_s: float) -> int:
        """Drop samples, hours and undelivered notifications past retention; rows removed.

        A notification no receiver took within `retention_s` is given up.
        """
        with self._transaction():
            removed = self._db.execute(
                "DELETE FROM samples WHERE at < ?", (now - retention_s,)
            ).rowcount
            removed += self._db.execute(
                "DELETE FROM rollups WHERE hour + ? <= ?", (HOUR_S, now - rollup_retention_s)
            ).rowcount
            removed += self._db.execute(
                "DELETE FROM deliveries WHERE notification IN"
                " (SELECT id FROM notifications WHERE created < ?)",
                (now - retention_s,),
            ).rowcount
            removed += self._drop_orphans()
        return removed

    # alert states

    def alert_states(self) -> dict[tuple[str, str], AlertState]:
        rows = self._db.execute("SELECT target, check_name, state FROM alert_states")
        return {(t, c): AlertState.from_json(json.loads(state)) for t, c, state in rows}

    def save_alert_state(self, target: str, check: str, state: AlertState) -> None:
        with self._transaction():
            self._save_state(target, check, state)

    def commit_step(
        self,
        target: str,
        check: str,
        state: AlertState,
        notifications: Iterable[Notification],
        receivers: Iterable[str],
        *,
        samples: Iterable[Sample] = (),
    ) -> None:
        """Save an alert's new state, queue its notifications (and keep samples) at once."""
        names = tuple(receivers)
        with self._transaction():
            self._add_samples(samples)
            self._save_state(target, check, state)
            for notification in notifications:
                self._enqueue(notification, names)

    # outbox

    def enqueue(self, notification: Notification, receivers: Iterable[str]) -> None:
        """Queue `notification` for each receiver name, due at once."""
        names = tuple(receivers)
        with self._transaction():
            self._enqueue(notification, names)

    def due(self, now: float) -> list[Delivery]:
        return [
            Delivery(
                id=delivery_id,
                receiver=receiver,
                notification=Notification.from_json(json.loads(body)),
                attempts=attempts,
                next_try=next_try,
            )
            for delivery_id, receiver, body, attempts, next_try in self._db.execute(_DUE, (now,))
        ]

    def delivered(self, delivery_id: int) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))
            self._drop_orphans()

    def retry_later(self, delivery_id: int, next_try: float, error_class: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, next_try = ?, last_error = ?"
                " WHERE id = ?",
                (next_try, error_class, delivery_id),
            )

    def pending_count(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM deliveries").fetchone()
        return int(count)

    # inside a transaction

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _series_id(self, target: str, check: str) -> int:
        key = (target, check)
        if key not in self._series:
            self._db.execute("INSERT OR IGNORE INTO series (target, check_name) VALUES (?, ?)", key)
            (self._series[key],) = self._db.execute(
                "SELECT id FROM series WHERE target = ? AND check_name = ?", key
            ).fetchone()
        return self._series[key]

    def _add_samples(self, samples: Iterable[Sample]) -> None:
        for s in samples:
            series = self._series_id(s.target, s.check)
            rank = s.status.rank
            self._db.execute(
                "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    series,
                    s.at,
                    rank,
                    s.elapsed_ms,
                    s.failure_class,
                    s.first_token_ms,
                    s.tokens_per_s,
                ),
            )
            self._db.execute(
                "INSERT INTO rollups VALUES (?, ?, 1, ?, ?) ON CONFLICT (series, hour) DO UPDATE"
                " SET total = total + 1, up = up + excluded.up, worst = max(worst, excluded.worst)",
                (series, int(s.at // HOUR_S) * HOUR_S, int(s.up), rank),
            )

    def _hours(self, target: str, check: str, after: float, until: float) -> list[Tally]:
        rows = self._db.execute(
            "SELECT hour, total, up, worst FROM rollups JOIN series ON series.id = rollups.series"
            " WHERE target = ? AND check_name = ? AND hour > ? AND hour <= ? ORDER BY hour",
            (target, check, after, until),
        )
        return [
            Tally(at=float(hour), total=total, up=up, worst=STATUS_BY_RANK[worst])
            for hour, total, up, worst in rows
        ]

    def _save_state(self, target: str, check: str, state: AlertState) -> None:
        self._db.execute(
            "INSERT INTO alert_states VALUES (?, ?, ?)"
            " ON CONFLICT (target, check_name) DO UPDATE SET state = excluded.state",
            (target, check, json.dumps(state.to_json())),
        )

    def _enqueue(self, notification: Notification, receivers: tuple[str, ...]) -> None:
        if not receivers:
            return
        n = notification
        self._db.execute(
            "INSERT INTO notifications VALUES (?, ?, ?, ?, ?)",
            (n.id, n.target, n.check, json.dumps(n.to_json()), n.at),
        )
        self._db.executemany(
            "INSERT INTO deliveries (notification, receiver, next_try) VALUES (?, ?, ?)",
            [(n.id, name, n.at) for name in receivers],
        )

    def _drop_orphans(self) -> int:
        return self._db.execute(
            "DELETE FROM notifications WHERE id NOT IN (SELECT notification FROM deliveries)"
        ).rowcount


def _prepare(connection: sqlite3.Connection, path: Path) -> None:
    """Set the journal up and create or check the schema; ConfigError naming `path`."""
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("BEGIN IMMEDIATE")
        try:
            has_version = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if has_version is None:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                version = SCHEMA_VERSION
            else:
                row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
                version = int(row[0] or 0)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: not a usable monitor store: {exc}") from None
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: the store has schema version {version}, newer than this ollama-fleet "
            f"understands ({SCHEMA_VERSION}); upgrade ollama-fleet or move the file away"
        )
