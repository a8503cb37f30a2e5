"""The monitor's SQLite store: sample history, roll-ups, alert states and the outbox.

One file, `monitor.sqlite3`, in the state dir, in WAL mode. Every call is one short
transaction on the event loop's thread; a state change and the notifications it made are
written together (`commit_step`), so a restart neither re-sends an alert nor forgets one.
The status page asks the history for the whole fleet at once (`uptime_all`, `bars_all`,
`series_all`): a few grouped statements, not a query and thousands of rows per series.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.alerts import AlertState, Notification
from ollama_fleet.monitor.model import UPTIME_WINDOWS, Sample
from ollama_fleet.monitor.store_schema import DB_NAME, SCHEMA_VERSION, open_database
from ollama_fleet.monitor.uptime import (
    DAY_S,
    HOUR_S,
    STATUS_BY_RANK,
    Key,
    bars_query,
    day_start,
    hour_start,
    hourly_uptime_query,
    raw_uptime_query,
    series_query,
    slot_end,
)

__all__ = ("DB_NAME", "SCHEMA_VERSION", "SLOT_RETENTION_S", "Delivery", "Store")

# the ten-minute slots behind the bars are kept as long as the raw samples, and at least
# this long, so the 24 h of bars are whole whatever the retention
SLOT_RETENTION_S = 2 * 86400.0

Uptime = dict[str, float | None]
Bars = tuple[Status | None, ...]

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
        """Open (creating or upgrading where needed) the store in `state_dir`; ConfigError
        naming the file if it is unusable."""
        return cls(*open_database(state_dir))

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

    def uptime_all(self, now: float) -> dict[Key, Uptime]:
        """{(target, check): uptime per UPTIME_WINDOWS} of every series with a result in one.

        The shortest window from raw samples, the others from hours: an hour counts into a
        window when its start lies inside it, so a 24 h window covers 23 to 24 hours.
        """
        return self._uptime(now, None)

    def uptime(self, target: str, check: str, now: float) -> Uptime:
        """`uptime_all` of one series; every window None where it has no result."""
        return self._uptime(now, (target, check)).get((target, check)) or _no_uptime()

    def bars_all(self, now: float, span_s: float, count: int) -> dict[Key, Bars]:
        """{(target, check): the worst status per bucket over (now - span_s, now], oldest
        first} of every series with a result in the span.

        From the ten-minute slots, each counted at its end (the running one at `now`): a
        result lands at most SLOT_S late, and exactly where the bars are SLOT_S aligned.
        """
        return self._bars(now, span_s, count, None)

    def bars(self, target: str, check: str, now: float, span_s: float, count: int) -> Bars:
        """`bars_all` of one series; all None where it has no result."""
        if count <= 0 or span_s <= 0:
            return ()
        return self._bars(now, span_s, count, (target, check)).get((target, check)) or (
            (None,) * count
        )

    def series_all(
        self,
        check: str,
        since: float,
        field: str,
        *,
        until: float | None = None,
        max_points: int | None = None,
    ) -> dict[str, list[tuple[float, float]]]:
        """{target: [(at, value of `field`), ...] oldest first} of `check` from `since` on.

        `field` is elapsed_ms, first_token_ms or tokens_per_s; samples without it are left
        out. With `max_points` (and `until`), each target keeps at most that many points:
        the highest of each equal slice of [since, until].
        """
        sql, args = series_query(check, since, field, until=until, max_points=max_points)
        found: dict[str, list[tuple[float, float]]] = {}
        for target, at, value in self._db.execute(sql, args):
            found.setdefault(target, []).append((at, value))
        return found

    def prune(self, now: float, retention_s: float, rollup_retention_s: float) -> int:
        """Drop samples, slots, hours and undelivered notifications past retention; rows
        removed. A notification no receiver took within `retention_s` is given up.
        """
        with self._transaction():
            removed = self._db.execute(
                # series by series: samples are indexed by series, then time
                "DELETE FROM samples WHERE series IN (SELECT id FROM series) AND at < ?",
                (now - retention_s,),
            ).rowcount
            removed += self._db.execute(
                "DELETE FROM slots WHERE slot < ?", (now - max(retention_s, SLOT_RETENTION_S),)
            ).rowcount
            removed += self._db.execute(
                "DELETE FROM rollups WHERE hour + ? <= ?", (HOUR_S, now - rollup_retention_s)
            ).rowcount
            removed += self._db.execute(
                "DELETE FROM days WHERE day + ? <= ?", (DAY_S, now - rollup_retention_s)
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

    def forget(self, keys_kept: Iterable[Key]) -> int:
        """Delete the alert states of every (target, check) not in `keys_kept`; how many.

        For a config reload: a target that is removed and later added again starts afresh,
        not FIRING since long ago. History stays (retention ages it out); so does the outbox.
        """
        kept = set(keys_kept)
        with self._transaction():
            stale = [
                key
                for key in self._db.execute("SELECT target, check_name FROM alert_states")
                if key not in kept
            ]
            self._db.executemany(
                "DELETE FROM alert_states WHERE target = ? AND check_name = ?", stale
            )
        return len(stale)

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

    def give_up(self, delivery_id: int) -> None:
        """Drop a delivery that will never succeed, so the ones queued behind it move on."""
        self.delivered(delivery_id)

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
        rows = [(self._series_id(s.target, s.check), s) for s in samples]
        if not rows:
            return
        self._db.executemany(
            "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (series, s.at, s.status.rank, s.elapsed_ms, s.failure_class, s.first_token_ms,
                 s.tokens_per_s)
                for series, s in rows
            ],
        )  # fmt: skip
        # counted here first, so a batch costs one upsert per slot, hour and day, not per sample
        hours: dict[tuple[int, int], list[int]] = {}
        slots: dict[tuple[int, int], list[int]] = {}
        days: dict[tuple[int, int], list[int]] = {}
        for series, s in rows:
            for tallies, key in (
                (hours, (series, hour_start(s.at))),
                (slots, (series, slot_end(s.at))),
                (days, (series, day_start(s.at))),
            ):
                tally = tallies.setdefault(key, [0, 0, 0])
                tally[0] += 1
                tally[1] += int(s.up)
                tally[2] = max(tally[2], s.status.rank)
        for table, tallies in (("rollups", hours), ("slots", slots)):
            self._db.executemany(
                f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
                " SET total = total + excluded.total, up = up + excluded.up,"
                " worst = max(worst, excluded.worst)",
                [(*key, *tally) for key, tally in tallies.items()],
            )
        self._db.executemany(
            "INSERT INTO days VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE"
            " SET total = total + excluded.total, up = up + excluded.up",
            [(*key, total, up) for key, (total, up, _) in days.items()],
        )

    def _keys(self, key: Key | None) -> tuple[dict[int, Key], int | None]:
        """{series id: (target, check)} (of `key` alone when given) and the one id, if any."""
        sql = "SELECT id, target, check_name FROM series"
        rows = self._db.execute(sql + (" WHERE target = ? AND check_name = ?" if key else ""),
                                key or ())  # fmt: skip
        keys = {series: (target, check) for series, target, check in rows}
        return keys, next(iter(keys)) if key and keys else None

    def _uptime(self, now: float, key: Key | None) -> dict[Key, Uptime]:
        keys, series = self._keys(key)
        if key and series is None:
            return {}
        (shortest, shortest_s), *longer = UPTIME_WINDOWS
        found: dict[Key, Uptime] = {}
        for series_id, total, up in self._db.execute(*raw_uptime_query(now, shortest_s, series)):
            found[keys[series_id]] = _no_uptime() | {shortest: up / total}
        # a window's hours and days come as rows of their own: summed here
        counts: dict[tuple[int, int], list[int]] = {}
        for window, series_id, total, up in self._db.execute(
            *hourly_uptime_query(now, longer, series)
        ):
            tally = counts.setdefault((window, series_id), [0, 0])
            tally[0] += total
            tally[1] += up
        for (window, series_id), (total, up) in counts.items():
            shares = found.setdefault(keys[series_id], _no_uptime())
            shares[longer[window][0]] = up / total if total else None
        return found

    def _bars(self, now: float, span_s: float, count: int, key: Key | None) -> dict[Key, Bars]:
        keys, series = self._keys(key)
        if count <= 0 or span_s <= 0 or (key and series is None):
            return {}
        worst: dict[int, list[Status | None]] = {}
        for series_id, bar, rank in self._db.execute(*bars_query(now, span_s, count, series)):
            worst.setdefault(series_id, [None] * count)[bar] = STATUS_BY_RANK[rank]
        return {keys[series_id]: tuple(statuses) for series_id, statuses in worst.items()}

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


def _no_uptime() -> Uptime:
    return {name: None for name, _ in UPTIME_WINDOWS}
