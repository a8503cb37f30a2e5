"""The JSON API's document: valid against its schema, JSON-clean, and saying what the page says."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.model import UPTIME_WINDOWS, Severity, StatusSnapshot
from ollama_fleet.monitor.status_json import SCHEMA_VERSION, load_schema, status_document

from .snapshots import BARS, EMPTY, FLEET, FRESH, GPU_EU_1, HOSTILE, SECRET

VALIDATOR = jsonschema.Draft202012Validator(load_schema())
ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "monitor.md",)


def document(snapshot: StatusSnapshot) -> dict[str, Any]:
    doc = status_document(snapshot)
    VALIDATOR.validate(doc)
    # what the route serves: strict JSON, no NaN, round-trips unchanged
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    return doc


def test_the_schema_is_valid_and_its_enums_match_the_code() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    defs = schema["$defs"]
    assert defs["status"]["enum"] == [*(s.value for s in Status), "pending"]
    assert set(defs["alert"]["properties"]["severity"]["enum"]) == {s.value for s in Severity}
    assert defs["window"]["enum"] == [name for name, _ in UPTIME_WINDOWS]
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    "snapshot", [FLEET, EMPTY, FRESH, HOSTILE], ids=["fleet", "empty", "fresh", "hostile"]
)
def test_every_snapshot_gives_a_valid_document(snapshot: StatusSnapshot) -> None:
    doc = document(snapshot)
    assert doc["schema_version"] == 1 and doc["tool"] == "ollama-fleet"
    assert doc["generated_at"] == "2025-01-01T12:00:00Z"
    assert len(doc["targets"]) == len(snapshot.targets)


def test_the_schema_refuses_a_wrong_document() -> None:
    doc = status_document(FLEET)
    for break_it in (
        lambda d: d.pop("status"),
        lambda d: d["targets"][0].update(status="red"),
        lambda d: d["targets"][0]["checks"][0]["uptime"].update({"1h": 1.5}),
        lambda d: d.update(generated_at="yesterday"),
        lambda d: d["alerts"][0].update(extra=1),
    ):
        broken = copy.deepcopy(doc)
        break_it(broken)
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(broken)


def test_the_fleet_as_data() -> None:
    doc = document(FLEET)
    assert doc["status"] == "fail"
    assert doc["summary"] == {"targets": 3, "ok": 1, "warn": 1, "fail": 1, "pending": 0}
    assert doc["uptime_windows"] == ["1h", "24h", "7d", "30d"]
    assert doc["refresh_s"] == 30 and doc["bars_span_s"] == 86400.0
    assert [(a["target"], a["check"], a["severity"], a["since"]) for a in doc["alerts"]] == [
        ("gpu-us-2", "models", "critical", "2025-01-01T10:00:00Z"),
        ("gpu-us-2", "chat", "critical", "2025-01-01T11:45:00Z"),
        ("gpu-eu-1", "tls", "warning", "2024-12-30T12:00:00Z"),
    ]
    assert doc["alerts"][1]["reason"] == "success_rate"
    eu, us, lab = doc["targets"]
    assert [t["name"] for t in doc["targets"]] == ["gpu-eu-1", "gpu-us-2", "edge-lab"]
    assert [t["simulated"] for t in doc["targets"]] == [False, False, True]
    assert eu["cert_days_left"] == 12.4 and lab["cert_days_left"] is None
    assert us["uptime"] == {"1h": 0.0, "24h": 0.875, "7d": 0.97, "30d": 0.99}
    assert lab["uptime"]["30d"] == 0.9995
    assert us["models"]["missing"] == ["qwen2.5:7b"]
    assert us["models"]["loaded"] == [
        {
            "name": "llama3.2:1b",
            "size_bytes": 2 * 1024**3,
            "vram_bytes": 1024**3,
            "expires_at": None,
        }
    ]
    assert eu["models"]["loaded"][0]["expires_at"] == "2025-01-01T12:04:00Z"
    chat = next(c for c in us["checks"] if c["check"] == "chat")
    assert chat["status"] == "fail" and chat["failure_class"] == "overload"
    assert chat["last_run_at"] == "2025-01-01T11:58:20Z" and chat["elapsed_ms"] == 2210.5
    assert len(chat["bars"]) == BARS and chat["bars"][-3:] == ["fail", "fail", "fail"]
    exposure = us["checks"][-1]
    assert exposure["status"] == "pending" and exposure["last_run_at"] is None
    assert set(exposure["bars"]) == {None}
    assert len(eu["response_ms"]) == len(GPU_EU_1.response_ms)
    assert eu["response_ms"][-1] == {
        "at": "2025-01-01T12:00:00Z",
        "ms": GPU_EU_1.response_ms[-1][1],
    }


def test_before_any_check_ran() -> None:
    doc = document(FRESH)
    assert doc["status"] == "pending"
    assert doc["summary"]["pending"] == 2
    target = doc["targets"][0]
    assert target["uptime"] == {"1h": None, "24h": None, "7d": None, "30d": None}
    # nothing looked at the models yet, so none is called missing
    assert target["models"]["missing"] == [] and target["models"]["required"]


def test_no_targets() -> None:
    doc = document(EMPTY)
    assert doc["status"] == "pending" and doc["targets"] == [] and doc["alerts"] == []


def test_numbers_never_measured_become_null_not_nan() -> None:
    nan = math.nan
    check = replace(GPU_EU_1.checks[0], elapsed_ms=nan, uptime={"1h": nan, "24h": math.inf})
    target = replace(
        GPU_EU_1,
        cert_days_left=nan,
        checks=(check,),
        response_ms=((1.0, nan), (2.0, 5.0), (3.0, -1.0)),
    )
    doc = document(replace(FLEET, targets=(target,)))
    got = doc["targets"][0]
    assert got["cert_days_left"] is None
    assert got["checks"][0]["elapsed_ms"] is None
    assert got["checks"][0]["uptime"] == {"1h": None, "24h": None, "7d": None, "30d": None}
    assert got["response_ms"] == [{"at": "1970-01-01T00:00:02Z", "ms": 5.0}]


def test_no_credentials_in_the_document() -> None:
    text = json.dumps(document(HOSTILE))
    assert SECRET not in text and "admin" not in text
    assert document(HOSTILE)["targets"][0]["url"] == "https://evil.example.net/ollama"


def _property_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            yield key
            yield from _property_names(value)
        for key, value in node.items():
            if key != "properties":
                yield from _property_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _property_names(item)


def test_every_field_of_the_document_is_documented() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS if p.exists())
    assert "## The JSON API" in text
    names = set(_property_names(load_schema()))
    assert {"schema_version", "cert_days_left", "vram_bytes", "last_run_at"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in text and f'"{n}"' not in text)
    assert missing == [], f"fields of /api/v1/status not in the docs: {missing}"
