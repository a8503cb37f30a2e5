"""The monitor's core: which checks it schedules, and what it reads from /api/ps."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from ollama_fleet.checks.model import CheckResult, PublicAccess, RequiredModel, Target, ok
from ollama_fleet.monitor.engine import _timestamp, jobs_for, loaded_models
from ollama_fleet.monitor.model import LoadedModel
from ollama_fleet.monitor.settings import MonitorConfig


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
