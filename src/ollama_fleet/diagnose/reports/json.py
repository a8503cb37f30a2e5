"""JSON diagnosis: serialize.diagnosis_data as a document that schema.json describes."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from ollama_fleet.diagnose.findings import Diagnosis
from ollama_fleet.diagnose.serialize import diagnosis_data

__all__ = ["load_schema", "render_json"]


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the document `render_json` writes."""
    text = resources.files("ollama_fleet.diagnose").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def render_json(diagnosis: Diagnosis) -> str:
    """Sorted keys, 2-space indent, trailing newline: equal diagnoses give equal bytes."""
    text = json.dumps(
        diagnosis_data(diagnosis), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
    )
    return text + "\n"
