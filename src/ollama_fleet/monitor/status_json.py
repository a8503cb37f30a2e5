"""The JSON API's status document (`/api/v1/status`), described by status.schema.json.

The document (schema_version 1; every time ISO 8601 in UTC, every ratio 0..1)::

    {
      "schema_version": 1, "tool": "ollama-fleet", "monitor_version": "0.1.0",
      "generated_at": "2025-01-01T12:00:00Z", "refresh_s": 30,
      "status": "warn",                        # worst target; pending before any check ran
      "summary": {"targets": 3, "ok": 2, "warn": 1, "fail": 0, "pending": 0},
      "uptime_windows": ["1h", "24h", "7d", "30d"], "bars_span_s": 86400.0,
      "alerts": [{"target": "gpu-eu-1", "check": "tls", "severity": "warning",
                  "since": "...", "summary": "...", "reason": "consecutive"}],
      "targets": [{
        "name": "gpu-eu-1", "url": "https://...", "status": "warn", "groups": ["gpu"],
        "version": "0.5.7", "simulated": false, "cert_days_left": 12.5,
        "uptime": {"1h": 1.0, "24h": 0.998, "7d": null, "30d": null},   # worst check
        "models": {"required": [...], "present": [...], "missing": [...],
                   "loaded": [{"name": "...", "size_bytes": 1, "vram_bytes": 1,
                               "expires_at": "..." | null}]},
        "checks": [{"check": "tls", "status": "warn", "summary": "...",
                    "failure_class": "tls_expired", "last_run_at": "...", "elapsed_ms": 31.2,
                    "interval_s": 3600.0, "uptime": {...}, "bars": ["ok", null, "warn"]}],
        "response_ms": [{"at": "...", "ms": 120.0}], "first_token_ms": [...]
      }]
    }

Targets, checks and series keep the snapshot's order; alerts come worst and oldest first.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

from ollama_fleet.checks.model import Status

from .model import CheckView, LoadedModel, OpenAlert, StatusSnapshot, TargetView
from .status_facts import (
    WINDOW_NAMES,
    alert_order,
    count_targets,
    display_url,
    is_simulated,
    iso_utc,
    missing_models,
    overall_status,
    status_word,
    target_uptime,
)

__all__ = ["SCHEMA_VERSION", "load_schema", "status_document"]

SCHEMA_VERSION = 1


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the document `status_document` makes."""
    text = (
        resources.files("ollama_fleet.monitor")
        .joinpath("status.schema.json")
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def status_document(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The snapshot as JSON-ready data: only str, int, float (finite), bool, None, list, dict."""
    counts = count_targets(snapshot)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "ollama-fleet",
        "monitor_version": snapshot.monitor_version,
        "generated_at": iso_utc(snapshot.generated_at),
        "refresh_s": int(snapshot.refresh_s),
        "status": status_word(overall_status(snapshot)),
        "summary": {
            "targets": counts.targets,
            "ok": counts.ok,
            "warn": counts.warn,
            "fail": counts.fail,
            "pending": counts.pending,
        },
        "uptime_windows": list(WINDOW_NAMES),
        "bars_span_s": _number(snapshot.bars_span_s) or 0.0,
        "alerts": [_alert(a) for a in sorted(snapshot.alerts, key=alert_order)],
        "targets": [_target(snapshot, t) for t in snapshot.targets],
    }


def _number(value: float | None) -> float | None:
    """A JSON number, or None for what was never measured (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _ratio(value: float | None) -> float | None:
    number = _number(value)
    return None if number is None else max(0.0, min(1.0, number))


def _alert(alert: OpenAlert) -> dict[str, Any]:
    return {
        "target": alert.target,
        "check": alert.check,
        "severity": alert.severity.value,
        "since": iso_utc(alert.since),
        "summary": alert.summary,
        "reason": alert.reason,
    }


def _bar(status: Status | None) -> str | None:
    return None if status is None else status.value


def _check(check: CheckView) -> dict[str, Any]:
    return {
        "check": check.check,
        "status": status_word(check.status),
        "summary": check.summary,
        "failure_class": check.failure_class,
        "last_run_at": None if check.at is None else iso_utc(check.at),
        "elapsed_ms": _number(check.elapsed_ms),
        "interval_s": _number(check.interval_s) or 0.0,
        "uptime": {name: _ratio(check.uptime.get(name)) for name in WINDOW_NAMES},
        "bars": [_bar(status) for status in check.bars],
    }


def _loaded(model: LoadedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "size_bytes": max(int(model.size_bytes), 0),
        "vram_bytes": max(int(model.vram_bytes), 0),
        "expires_at": None if model.expires_at is None else iso_utc(model.expires_at),
    }


def _series(points: tuple[tuple[float, float], ...]) -> list[dict[str, Any]]:
    return [
        {"at": iso_utc(at), "ms": ms}
        for at, ms in points
        if math.isfinite(at) and math.isfinite(ms) and ms >= 0
    ]


def _target(snapshot: StatusSnapshot, target: TargetView) -> dict[str, Any]:
    return {
        "name": target.name,
        "url": display_url(target.url),
        "status": status_word(target.status),
        "groups": list(target.groups),
        "version": target.version,
        "simulated": is_simulated(snapshot, target),
        "cert_days_left": _number(target.cert_days_left),
        "uptime": {name: _ratio(target_uptime(target, name)) for name in WINDOW_NAMES},
        "models": {
            "required": list(target.models_required),
            "present": list(target.models_present),
            "missing": list(missing_models(target)),
            "loaded": [_loaded(m) for m in target.models_loaded],
        },
        "checks": [_check(c) for c in target.checks],
        "response_ms": _series(target.response_ms),
        "first_token_ms": _series(target.first_token_ms),
    }
