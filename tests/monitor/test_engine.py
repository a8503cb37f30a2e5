"""The monitor's core: which checks it schedules, what it reads from /api/ps, and how a
reload ends what is no longer monitored."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from ollama_fleet.checks.model import (
    CheckResult,
    FailureClass,
    PublicAccess,
    RequiredModel,
    Target,
    fail,
    ok,
)
from ollama_fleet.monitor.engine import Monitor, _timestamp, jobs_for, loaded_models
from ollama_fleet.monitor.metrics import MonitorMetrics
from ollama_fleet.monitor.model import LoadedModel
from ollama_fleet.monitor.settings import AlertPolicy, MonitorConfig, Receiver
from ollama_fleet.monitor.store import Store


def test_every_check_that_applies_is_scheduled_on_its_interval() -> None:
    plain = Target(name="lab", url="http://127.0.0.1:1", public_access=PublicAccess.OPEN)
    full = Target(
        name="gpu-1",
        url="https://gpu-1.example.com",
        required_models=(RequiredModel(name="llama3.2:1b"),),
        closed_ports=(11434,),
    )
    config = MonitorConfig(source=None, targets=(plain, full))  # type: ignore[arg-type]
    jobs = {(job.target, job.check): job.interval_s for job in jobs_for(config)}
    assert jobs == {
        ("lab", "connectivity"): 30.0,
        ("lab", "models"): 60.0,
        ("lab", "auth"): 300.0,
        ("gpu-1", "connectivity"): 30.0,
        ("gpu-1", "tls"): 3600.0,
        ("gpu-1", "models"): 60.0,
        ("gpu-1", "chat"): 300.0,
        ("gpu-1", "auth"): 300.0,
        ("gpu-1", "exposure"): 300.0,
    }


def test_only_the_configured_checks_are_scheduled() -> None:
    target = Target(name="a", url="https://a.example", closed_ports=(11434,))
    config = MonitorConfig(
        source=None,  # type: ignore[arg-type]
        targets=(target,),
        checks=("connectivity", "exposure"),
        intervals={"connectivity": 5.0, "exposure": 7.0},
    )
    assert [(j.check, j.interval_s) for j in jobs_for(config)] == [
        ("connectivity", 5.0),
        ("exposure", 7.0),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Ollama writes Go's RFC 3339 with nanoseconds and a zone
        (
            "2024-06-04T14:38:31.837530123-07:00",
            dt.datetime(2024, 6, 4, 21, 38, 31, 837530, tzinfo=dt.UTC).timestamp(),
        ),
        ("2024-06-04T21:38:31Z", dt.datetime(2024, 6, 4, 21, 38, 31, tzinfo=dt.UTC).timestamp()),
        ("0001-01-01T00:00:00Z", None),  # Go's zero time: keep_alive -1, loaded for ever
        ("2024-06-04T21:38:31", None),  # no zone: not Ollama's format, not guessed
        ("soon", None),
        (None, None),
    ],
)
def test_expiry_times_are_read_as_ollama_writes_them(text: object, expected: float | None) -> None:
    assert _timestamp(text) == expected


def test_loaded_models_come_from_the_models_checks_details() -> None:
    result = CheckResult(
        target="gpu-1",
        url="https://gpu-1.example.com",
        check="models",
        findings=(ok("fine"),),
        elapsed_ms=3.0,
        details={
            "loaded_models": [
                {
                    "name": "llama3.2:1b",
                    "size": 2_000,
                    "size_vram": 1_500,
                    "expires_at": "2024-06-04T21:38:31Z",
                },
                {"name": "qwen2.5:0.5b", "size": None, "size_vram": None, "expires_at": None},
                "junk",
            ]
        },
    )
    assert loaded_models(result) == (
        LoadedModel(
            name="llama3.2:1b",
            size_bytes=2_000,
            vram_bytes=1_500,
            expires_at=dt.datetime(2024, 6, 4, 21, 38, 31, tzinfo=dt.UTC).timestamp(),
        ),
        LoadedModel(name="qwen2.5:0.5b", size_bytes=0, vram_bytes=0, expires_at=None),
    )
    assert loaded_models(dataclasses.replace(result, details={})) == ()


def _chat_failure(target: Target) -> CheckResult:
    return CheckResult(
        target=target.name,
        url=target.url,
        check="chat",
        findings=(fail(FailureClass.SERVER_ERROR, "POST /api/chat: HTTP 500"),),
        elapsed_ms=12.0,
    )


def test_a_check_removed_by_a_reload_resolves_its_alert_and_leaves_no_trace(
    tmp_path: Path,
) -> None:
    target = Target(
        name="gpu-1",
        url="http://127.0.0.1:9/?key=s3cr3t",
        required_models=(RequiredModel(name="llama3.2:1b"),),
        public_access=PublicAccess.OPEN,
    )
    config = MonitorConfig(
        source=tmp_path / "monitor.yml",
        targets=(target,),
        receivers=(Receiver(name="ops", kind="webhook", url="http://127.0.0.1:9/hook"),),
        alerts=AlertPolicy(failure_threshold=1),
    )

    async def scenario() -> None:
        with Store.open(tmp_path / "state") as store:
            metrics = MonitorMetrics()
            monitor = Monitor(config, store=store, metrics=metrics, clock=lambda: 1000.0)
            monitor.record(target, _chat_failure(target), at=1000.0)
            assert [(a.target, a.check) for a in monitor.open_alerts()] == [("gpu-1", "chat")]
            # the model list goes, so the chat check no longer applies to the target
            plain = dataclasses.replace(target, required_models=())
            monitor.apply(dataclasses.replace(config, targets=(plain,)))
            assert monitor.open_alerts() == ()
            assert ("gpu-1", "chat") not in monitor.latest
            (firing,) = store.due(2000.0)  # one alert's notifications go out in order
            assert (firing.notification.kind, firing.notification.check) == ("firing", "chat")
            store.delivered(firing.id)
            (resolved,) = store.due(2000.0)
            assert resolved.notification.kind == "resolved"
            assert "no longer monitored" in resolved.notification.summary
            # a key in the URL's query stays out of the outbox (and so out of every payload)
            assert "s3cr3t" not in firing.notification.url + resolved.notification.url
            text = metrics.exposition(None)[0].decode()
            assert 'check="chat"' not in text
            await monitor.close()
        with Store.open(tmp_path / "state") as store:
            assert ("gpu-1", "chat") not in store.alert_states()

    asyncio.run(scenario())


def test_a_target_removed_while_the_monitor_was_down_is_resolved_at_start(
    tmp_path: Path,
) -> None:
    gone = Target(name="gpu-9", url="http://127.0.0.1:9", chat_model="llama3.2:1b")
    stays = Target(name="gpu-1", url="http://127.0.0.1:8", public_access=PublicAccess.OPEN)
    receivers = (Receiver(name="ops", kind="webhook", url="http://127.0.0.1:9/hook"),)
    policy = AlertPolicy(failure_threshold=1)

    async def scenario() -> None:
        with Store.open(tmp_path / "state") as store:
            before = MonitorConfig(
                source=tmp_path / "m.yml",
                targets=(gone, stays),
                receivers=receivers,
                alerts=policy,
            )
            monitor = Monitor(before, store=store, metrics=MonitorMetrics(), clock=lambda: 10.0)
            monitor.record(gone, _chat_failure(gone), at=10.0)
            await monitor.close()
        with Store.open(tmp_path / "state") as store:
            after = dataclasses.replace(before, targets=(stays,))
            monitor = Monitor(after, store=store, metrics=MonitorMetrics(), clock=lambda: 20.0)
            assert monitor.open_alerts() == ()
            for delivery in store.due(30.0):
                assert delivery.notification.kind == "firing"
                store.delivered(delivery.id)
            resolved = [d.notification for d in store.due(30.0)]
            assert [(n.kind, n.target, n.check) for n in resolved] == [
                ("resolved", "gpu-9", "chat")
            ]
            await monitor.close()

    asyncio.run(scenario())
