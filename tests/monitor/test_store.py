"""The SQLite store on real files: what is written is there after a reopen, in WAL mode,
and what the status page asks for the whole fleet is what it would ask series by series."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ollama_fleet.checks.model import Status
from ollama_fleet.errors import ConfigError
from ollama_fleet.monitor.alerts import AlertState, Notification, Phase
from ollama_fleet.monitor.model import UPTIME_WINDOWS, Sample, Severity
from ollama_fleet.monitor.store import DB_NAME, SCHEMA_VERSION, Store
from ollama_fleet.monitor.uptime import Tally, hour_start, slot_end
from ollama_fleet.monitor.uptime import bars as bars_of
from ollama_fleet.monitor.uptime import uptime as uptime_of

HOUR = 3600.0
NOW = 1_000 * HOUR + 1800.0  # half past an hour
OK, WARN, FAIL = Status.OK, Status.WARN, Status.FAIL


def sample(at: float, status: Status = OK, *, target: str = "gpu-1", check: str = "chat") -> Sample:
    return Sample(target=target, check=check, at=at, status=status, elapsed_ms=12.5)


def note(
    kind: str = "firing", *, at: float = NOW, target: str = "gpu-1", id: str = ""
) -> Notification:
    return Notification(
        id=id or f"{kind}-{target}-{at}",
        kind=kind,
        target=target,
        check="chat",
        url="https://gpu-1.example.test",
        severity=Severity.CRITICAL,
        summary="connection refused",
        reason="consecutive",
        since=NOW - 60,
        at=at,
    )  # fmt: skip


FIRING = AlertState(
    phase=Phase.FIRING, severity=Severity.CRITICAL, failures=3, recent=(False,) * 3,
    since=NOW - 60, summary="connection refused", last_notified_at=NOW - 60,
)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


def test_files_are_private_and_in_wal_mode(tmp_path: Path) -> None:
    state_dir = tmp_path / "var" / "state"
    old_umask = os.umask(0)  # the modes must not depend on the service's umask
    try:
        with Store.open(state_dir) as store:
            store.add_samples([sample(NOW)])
            modes = {
                p.name: stat.S_IMODE(p.stat().st_mode)
                for p in [state_dir, *state_dir.iterdir()]
            }  # fmt: skip
    finally:
        os.umask(old_umask)
    assert modes == {
        "state": 0o750,
        DB_NAME: 0o640,
        f"{DB_NAME}-wal": 0o640,
        f"{DB_NAME}-shm": 0o640,
    }
    with sqlite3.connect(state_dir / DB_NAME) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()


def test_everything_is_there_after_a_reopen(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.add_samples([sample(NOW - 20, FAIL), sample(NOW - 10, WARN)])
        store.commit_step("gpu-1", "chat", FIRING, [note()], ["hook", "slack"])
        store.save_alert_state("gpu-2", "models", AlertState(phase=Phase.PENDING, failures=1))
    with Store.open(tmp_path) as store:
        assert [(s.at, s.status) for s in store.samples("gpu-1", "chat", 0)] == [
            (NOW - 20, FAIL),
            (NOW - 10, WARN),
        ]
        assert store.alert_states() == {
            ("gpu-1", "chat"): FIRING,
            ("gpu-2", "models"): AlertState(phase=Phase.PENDING, failures=1),
        }
        assert sorted((d.receiver, d.notification) for d in store.due(NOW)) == [
            ("hook", note()),
            ("slack", note()),
        ]
        assert store.uptime("gpu-1", "chat", NOW)["24h"] == 0.5


def test_samples_keep_their_facts_and_filter_by_series_and_time(store: Store) -> None:
    rich = Sample(
        target="gpu-1", check="chat", at=NOW, status=FAIL, elapsed_ms=1500.0,
        failure_class="read_timeout", first_token_ms=800.0, tokens_per_s=42.5,
    )  # fmt: skip
    store.add_samples([rich, sample(NOW - 100), sample(NOW, check="models")])
    store.add_samples([sample(NOW - 50, target="gpu-2")])
    assert store.samples("gpu-1", "chat", NOW - 99) == [rich]
    assert [s.at for s in store.samples("gpu-1", "chat", 0)] == [NOW - 100, NOW]
    assert store.samples("gpu-3", "chat", 0) == []


def test_uptime_short_window_raw_longer_from_hours(store: Store) -> None:
    hour_start = NOW - 1800
    store.add_samples([sample(NOW - 600, FAIL), sample(NOW - 300, OK), sample(NOW - 5, WARN)])
    # two hours ago: three of four up; 25 h ago: outside 24 h, inside 7 d
    store.add_samples([sample(hour_start - 2 * HOUR + t, s) for t, s in
                       [(1, OK), (2, OK), (3, FAIL), (4, OK)]])  # fmt: skip
    store.add_samples([sample(hour_start - 25 * HOUR + 10, FAIL)])
    assert store.uptime("gpu-1", "chat", NOW) == {
        "1h": 2 / 3,
        "24h": 5 / 7,
        "7d": 5 / 8,
        "30d": 5 / 8,
    }
    assert store.uptime("nobody", "chat", NOW) == {"1h": None, "24h": None, "7d": None, "30d": None}


def test_uptime_survives_pruning_of_raw_samples(store: Store) -> None:
    store.add_samples([sample(NOW - 5 * HOUR, FAIL), sample(NOW - 5 * HOUR + 1, OK)])
    removed = store.prune(NOW, retention_s=HOUR, rollup_retention_s=400 * 86400)
    assert removed == 2
    assert store.samples("gpu-1", "chat", 0) == []
    assert store.uptime("gpu-1", "chat", NOW) == {"1h": None, "24h": 0.5, "7d": 0.5, "30d": 0.5}


def test_hours_roll_up_with_their_worst(store: Store) -> None:
    base = NOW - 1800 - 3 * HOUR  # the start of an hour three hours back
    store.add_samples([sample(base + 1, OK), sample(base + 2, WARN), sample(base + HOUR + 1, OK)])
    store.prune(NOW, retention_s=60, rollup_retention_s=400 * 86400)
    # four buckets of an hour over (NOW-4h, NOW]: the hours land at their start
    assert store.bars("gpu-1", "chat", NOW, 4 * HOUR, 4) == (WARN, OK, None, None)


def test_bars_count_each_ten_minutes_at_their_end(store: Store) -> None:
    # NOW is ten-minute aligned: three bars of ten minutes over (NOW-30m, NOW]
    store.add_samples([
        sample(NOW - 1500, OK),
        sample(NOW - 650, FAIL),  # its ten minutes end at NOW-600: the older bar's edge
        sample(NOW - 5, WARN), sample(NOW - 4, OK),
    ])  # fmt: skip
    assert store.bars("gpu-1", "chat", NOW, 1800, 3) == (OK, FAIL, WARN)
    assert store.bars("gpu-1", "models", NOW, 1800, 3) == (None, None, None)
    # the ten minutes running now count at now, in the newest bar
    store.add_samples([sample(NOW + 50, FAIL)])
    assert store.bars("gpu-1", "chat", NOW + 100, 1800, 3) == (OK, FAIL, FAIL)


def test_bars_all_is_bars_of_each_series_and_the_pure_rule(store: Store) -> None:
    rng = random.Random(9)
    now = NOW + 123.4  # not aligned to anything
    keys = [(t, c) for t in ("gpu-1", "gpu-2", "gpu-3") for c in ("chat", "models")]
    samples = [
        sample(now - rng.uniform(0, 26 * HOUR), rng.choice((OK, OK, OK, WARN, FAIL)),
               target=t, check=c)
        for t, c in keys[:-1]  # the last series has no sample at all
        for _ in range(300)
    ]  # fmt: skip
    store.add_samples(samples)
    every = store.bars_all(now, 24 * HOUR, 48)
    assert set(every) == set(keys[:-1])
    for key in keys[:-1]:
        counted = [
            replace(s, at=min(slot_end(s.at), now)) for s in samples if (s.target, s.check) == key
        ]
        expected = bars_of(counted, now=now, span_s=24 * HOUR, count=48)
        assert every[key] == store.bars(*key, now, 24 * HOUR, 48) == expected
        assert len(expected) == 48 and FAIL in expected
    assert store.bars(*keys[-1], now, 24 * HOUR, 48) == (None,) * 48


def test_uptime_all_is_uptime_of_each_series(store: Store) -> None:
    store.add_samples([sample(NOW - 600, FAIL), sample(NOW - 300, OK, target="gpu-2")])
    store.add_samples([sample(NOW - 3 * HOUR, FAIL, check="models"), sample(NOW - 2 * HOUR)])
    every = store.uptime_all(NOW)
    assert every == {
        ("gpu-1", "chat"): {"1h": 0.0, "24h": 0.5, "7d": 0.5, "30d": 0.5},
        ("gpu-2", "chat"): {"1h": 1.0, "24h": 1.0, "7d": 1.0, "30d": 1.0},
        ("gpu-1", "models"): {"1h": None, "24h": 0.0, "7d": 0.0, "30d": 0.0},
    }
    assert all(store.uptime(*key, NOW) == shares for key, shares in every.items())


def test_uptime_all_over_days_is_the_uptime_of_the_hours(store: Store) -> None:
    # the long windows read whole days and the hours before the first: the same hours
    rng = random.Random(30)
    now = NOW + 7777.7
    samples = [
        sample(now - rng.uniform(0, 40 * 86400), rng.choice((OK, OK, WARN, FAIL)), target=t)
        for t in ("gpu-1", "gpu-2")
        for _ in range(2000)
    ]
    store.add_samples(samples)
    every = store.uptime_all(now)
    for target in ("gpu-1", "gpu-2"):
        mine = [s for s in samples if s.target == target]
        hours: dict[int, list[Sample]] = {}
        for s in mine:
            hours.setdefault(hour_start(s.at), []).append(s)
        tallies = [
            Tally(at=float(h), total=len(group), up=sum(s.up for s in group), worst=OK)
            for h, group in hours.items()
        ]
        expected = uptime_of(mine, now=now, windows=UPTIME_WINDOWS[:1])
        expected |= uptime_of(tallies, now=now, windows=UPTIME_WINDOWS[1:])
        assert every[(target, "chat")] == pytest.approx(expected)
        assert store.uptime(target, "chat", now) == every[(target, "chat")]


def test_series_all_per_target_without_nulls_and_thinned(store: Store) -> None:
    def chat(at: float, target: str, ms: float | None) -> Sample:
        return Sample(target=target, check="chat", at=at, status=OK, elapsed_ms=at - NOW + 1e4,
                      first_token_ms=ms)  # fmt: skip

    store.add_samples([chat(NOW - 100, "gpu-1", 80.0), chat(NOW - 50, "gpu-1", None)])
    store.add_samples([chat(NOW - 40, "gpu-2", 90.0), chat(NOW - 999, "gpu-2", 70.0)])
    store.add_samples([sample(NOW - 10, check="models")])
    assert store.series_all("chat", NOW - 500, "first_token_ms") == {
        "gpu-1": [(NOW - 100, 80.0)],
        "gpu-2": [(NOW - 40, 90.0)],
    }
    assert store.series_all("chat", NOW - 60, "elapsed_ms") == {
        "gpu-1": [(NOW - 50, 1e4 - 50)],
        "gpu-2": [(NOW - 40, 1e4 - 40)],
    }
    with pytest.raises(ValueError, match="unknown series field"):
        store.series_all("chat", 0, "status; DROP TABLE samples")


def test_series_all_thins_to_the_highest_point_of_each_slice(store: Store) -> None:
    values = [10.0] * 100
    values[37] = 900.0  # a spike thinning must keep
    store.add_samples([
        Sample(target="gpu-1", check="connectivity", at=NOW - 1000 + 10 * i, status=OK,
               elapsed_ms=v)
        for i, v in enumerate(values)
    ])  # fmt: skip
    thin = store.series_all("connectivity", NOW - 1000, "elapsed_ms", until=NOW, max_points=10)
    points = thin["gpu-1"]
    assert len(points) == 10
    assert (NOW - 1000 + 370, 900.0) in points
    assert [at for at, _ in points] == sorted(at for at, _ in points)
    with pytest.raises(ValueError, match="until"):
        store.series_all("connectivity", NOW - 1000, "elapsed_ms", max_points=10)


def test_forget_deletes_the_states_of_pairs_no_longer_configured(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_alert_state("gpu-1", "chat", FIRING)
        store.save_alert_state("gpu-1", "models", FIRING)
        store.save_alert_state("gpu-2", "chat", FIRING)
        store.add_samples([sample(NOW, target="gpu-2")])
        assert store.forget({("gpu-1", "chat"), ("gpu-9", "tls")}) == 2
        assert store.forget({("gpu-1", "chat")}) == 0
    with Store.open(tmp_path) as store:
        assert store.alert_states() == {("gpu-1", "chat"): FIRING}
        assert [s.at for s in store.samples("gpu-2", "chat", 0)] == [NOW]  # history stays


def test_a_version_1_store_upgrades_in_place(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.add_samples([sample(NOW - 650, FAIL), sample(NOW - 5, WARN)])
        store.save_alert_state("gpu-1", "chat", FIRING)
    # back to what version 1 had: no ten-minute slots, no index of the hours by time, the
    # samples indexed by series and time and by time
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("DROP TABLE slots")
        db.execute("DROP TABLE days")
        db.execute("DROP INDEX rollups_by_hour")
        db.execute("DROP INDEX samples_by_series")
        db.execute("CREATE INDEX samples_by_series ON samples (series, at)")
        db.execute("CREATE INDEX samples_by_time ON samples (at)")
        db.execute("UPDATE schema_version SET version = 1")
    db.close()
    with Store.open(tmp_path) as store:
        assert store.bars("gpu-1", "chat", NOW, 1800, 3) == (None, FAIL, WARN)
        assert store.alert_states() == {("gpu-1", "chat"): FIRING}
        assert store.uptime("gpu-1", "chat", NOW)["1h"] == 0.5
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert {"slots", "slots_by_time", "days", "rollups_by_hour", "samples_by_series"} <= names
    assert "samples_by_time" not in names


def test_prune_keeps_the_slots_of_the_bars_at_least_two_days(store: Store) -> None:
    store.add_samples([sample(NOW - 3 * 86400, FAIL), sample(NOW - 80000, FAIL)])
    store.prune(NOW, retention_s=60, rollup_retention_s=400 * 86400)
    assert store.samples("gpu-1", "chat", 0) == []
    # a day back: still in the bars; three days back: gone with its slot
    assert store.bars("gpu-1", "chat", NOW, 4 * 86400, 4) == (None, None, None, FAIL)


def test_prune_drops_old_hours_and_given_up_deliveries(store: Store) -> None:
    store.add_samples([sample(NOW - 10 * HOUR), sample(NOW - 1)])
    store.enqueue(note(at=NOW - 10 * HOUR), ["hook"])
    store.enqueue(note(at=NOW - 1, target="gpu-2"), ["hook"])
    # 1 raw sample, 1 hour, 1 delivery and its notification
    assert store.prune(NOW, retention_s=5 * HOUR, rollup_retention_s=5 * HOUR) == 4
    assert store.pending_count() == 1
    assert [d.notification.target for d in store.due(NOW)] == ["gpu-2"]
    assert store.uptime("gpu-1", "chat", NOW)["30d"] == 1.0
    assert store.prune(NOW, retention_s=5 * HOUR, rollup_retention_s=5 * HOUR) == 0


def test_outbox_one_delivery_per_receiver(store: Store) -> None:
    store.enqueue(note(), ["hook", "am"])
    store.enqueue(note(), [])  # no receiver: nothing to owe
    assert store.pending_count() == 2
    first, second = store.due(NOW)
    assert (first.receiver, second.receiver) == ("hook", "am")
    assert first.attempts == 0 and first.next_try == NOW
    assert store.due(NOW - 1) == []  # not due before it was made
    store.delivered(first.id)
    assert [d.receiver for d in store.due(NOW)] == ["am"]


def test_retry_later_waits_and_counts(store: Store) -> None:
    store.enqueue(note(), ["hook"])
    (delivery,) = store.due(NOW)
    store.retry_later(delivery.id, NOW + 30, "http_500")
    assert store.due(NOW + 29) == []
    (again,) = store.due(NOW + 30)
    assert (again.id, again.attempts, again.next_try) == (delivery.id, 1, NOW + 30)


def test_a_resolved_never_overtakes_its_firing(store: Store) -> None:
    store.enqueue(note("firing"), ["hook"])
    store.enqueue(note("resolved", at=NOW + 60), ["hook"])
    store.enqueue(note("firing", target="gpu-2"), ["hook"])
    firing, other = store.due(NOW + 60)
    store.retry_later(firing.id, NOW + 600, "timeout")
    # the resolved waits behind the failed firing; another alert does not
    assert [d.notification.target for d in store.due(NOW + 60)] == ["gpu-2"]
    store.delivered(firing.id)
    assert [d.notification.kind for d in store.due(NOW + 60)] == ["resolved", "firing"]


def test_commit_step_is_one_transaction(store: Store) -> None:
    store.commit_step("gpu-1", "chat", AlertState(phase=Phase.PENDING, failures=2), [], ["hook"])
    twice = note()
    with pytest.raises(sqlite3.IntegrityError):
        # the second copy of the notification fails: the state must not be saved either
        store.commit_step("gpu-1", "chat", FIRING, [twice, twice], ["hook"],
                          samples=[sample(NOW)])  # fmt: skip
    assert store.alert_states()[("gpu-1", "chat")].phase is Phase.PENDING
    assert store.pending_count() == 0
    assert store.samples("gpu-1", "chat", 0) == []


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("UPDATE schema_version SET version = 99")
    db.close()
    with pytest.raises(ConfigError, match=r"monitor\.sqlite3.*schema version 99"):
        Store.open(tmp_path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_text("not a database, just text that is long enough " * 40)
    with pytest.raises(ConfigError, match=str(tmp_path / DB_NAME)):
        Store.open(tmp_path)
