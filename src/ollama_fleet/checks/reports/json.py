"""JSON report with a stable, versioned schema (`schema.json`, draft 2020-12).

The document (schema_version 1)::

    {
      "schema_version": 1,
      "tool": "ollama-fleet",
      "tool_version": "0.1.0",
      "started_at": "2025-01-01T12:00:00Z",      # ISO 8601, UTC
      "duration_ms": 840.0,
      "status": "fail",                          # worst status of all results
      "summary": {"targets": 3, "checks": 18, "ok": 15, "warn": 1, "fail": 2},
      "context": {"command": "ollama-fleet check ...", "inventory": "inventories/prod.yml",
                  "controller": "ci-runner-3"},     # "" where unknown; secrets redacted
      "target_groups": {"gpu-eu-1": ["gpu", "eu"]},  # inventory groups per host
      "results": [
        {
          "target": "gpu-eu-1", "url": "https://...", "check": "tls",
          "status": "warn", "class": "tls_expired",   # class and hint are null when ok
          "summary": "...", "hint": "...", "elapsed_ms": 31.2,
          "findings": [{"status": "...", "class": ..., "message": "...", "hint": ...}],
          "details": {...}                      # probe facts: timings, TLS, models
        }
      ]
    }

Results keep the run's order; object keys are sorted, so equal runs give equal bytes.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

from ollama_fleet import __version__
from ollama_fleet.checks.model import CheckResult, CheckRun, Finding, Status

from ._common import count, to_jsonable

__all__ = ["SCHEMA_VERSION", "load_schema", "render_json", "to_document"]

SCHEMA_VERSION = 1


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the document `render_json` writes."""
    text = (
        resources.files("ollama_fleet.checks.reports")
        .joinpath("schema.json")
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def _ms(value: float) -> float:
    """A duration as a JSON number; a non-finite or negative one (never measured) as 0."""
    value = float(value)
    return value if math.isfinite(value) and value > 0 else 0.0


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "status": finding.status.value,
        "class": finding.failure_class.value if finding.failure_class is not None else None,
        "message": finding.message,
        "hint": finding.hint,
    }


def _result(result: CheckResult) -> dict[str, Any]:
    ok = result.status is Status.OK
    klass = None if ok else result.failure_class
    return {
        "target": result.target,
        "url": result.url,
        "check": result.check,
        "status": result.status.value,
        "class": klass.value if klass is not None else None,
        "summary": result.summary,
        "hint": None if ok else result.hint,
        "elapsed_ms": _ms(result.elapsed_ms),
        "findings": [_finding(f) for f in result.findings],
        "details": to_jsonable(result.details),
    }


def to_document(run: CheckRun) -> dict[str, Any]:
    """The report as plain Python data (what `render_json` serialises)."""
    c = count(run)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "ollama-fleet",
        "tool_version": __version__,
        "started_at": run.started_at,
        "duration_ms": _ms(run.duration_ms),
        "status": run.status.value,
        "summary": {
            "targets": c.targets,
            "checks": c.checks,
            "ok": c.ok,
            "warn": c.warn,
            "fail": c.fail,
        },
        "context": {
            "command": run.context.command,
            "inventory": run.context.inventory,
            "controller": run.context.controller,
        },
        "target_groups": {
            name: list(groups) for name, groups in run.target_groups.items() if groups
        },
        "results": [_result(r) for r in run.results],
    }


def render_json(run: CheckRun) -> str:
    """Render a run as a JSON document: sorted keys, 2-space indent, trailing newline."""
    text = json.dumps(
        to_document(run), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
    )
    return text + "\n"
