"""The store's file: created private, in WAL mode, its schema made or upgraded in place."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ollama_fleet.errors import ConfigError
from ollama_fleet.monitor.uptime import DAY_S, FAIL_RANK, SLOT_S

DB_NAME = "monitor.sqlite3"
SCHEMA_VERSION = 2
DIR_MODE = 0o750
FILE_MODE = 0o640

# version 1, as the first release made it; later versions are _MIGRATIONS on top of it
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

# Schema changes by the version they bring, applied in order at open, in the transaction
# that checks the version: a store of any older version upgrades in place.
_MIGRATIONS: dict[int, str] = {
    2: f"""
CREATE TABLE slots (
    series INTEGER NOT NULL REFERENCES series (id), slot INTEGER NOT NULL,
    total INTEGER NOT NULL, up INTEGER NOT NULL, worst INTEGER NOT NULL,
    PRIMARY KEY (series, slot)) WITHOUT ROWID;
INSERT INTO slots
    SELECT series,
           (CAST(at / {SLOT_S} AS INTEGER) + (at / {SLOT_S} > CAST(at / {SLOT_S} AS INTEGER)))
           * {SLOT_S} AS slot_end,
           count(*), sum(status < {FAIL_RANK}), max(status)
    FROM samples GROUP BY series, slot_end;
-- the whole fleet's last day is one range of these, read without the table
CREATE INDEX slots_by_time ON slots (slot, series, worst);
CREATE INDEX rollups_by_hour ON rollups (hour, series, total, up);
-- the hours summed by day (UTC): a month's uptime reads 30 of these, not 720 hours
CREATE TABLE days (
    series INTEGER NOT NULL REFERENCES series (id), day INTEGER NOT NULL,
    total INTEGER NOT NULL, up INTEGER NOT NULL,
    PRIMARY KEY (series, day)) WITHOUT ROWID;
INSERT INTO days
    SELECT series, CAST(hour / {DAY_S} AS INTEGER) * {DAY_S} AS day_start, sum(total), sum(up)
    FROM rollups GROUP BY series, day_start;
CREATE INDEX days_by_time ON days (day, series, total, up);
-- the status and the charts' fields too: the last hour's uptime and the charts of every
-- series are read from the index alone. By time, samples are only pruned, series by series
DROP INDEX samples_by_series;
DROP INDEX samples_by_time;
CREATE INDEX samples_by_series ON samples (series, at, status, elapsed_ms, first_token_ms);
""",
}


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
                _run_script(connection, _SCHEMA)
                connection.execute("INSERT INTO schema_version VALUES (1)")
            row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
            version = int(row[0] or 0)
            for upgrade in range(version + 1, SCHEMA_VERSION + 1):
                _run_script(connection, _MIGRATIONS[upgrade])
                connection.execute("UPDATE schema_version SET version = ?", (upgrade,))
                version = upgrade
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


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    # statement by statement (so no ";" in a comment): executescript would commit the open
    # transaction
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def open_database(state_dir: Path) -> tuple[sqlite3.Connection, Path]:
    """The connection to `state_dir`'s store and its path; ConfigError if unusable."""
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
    return connection, path
