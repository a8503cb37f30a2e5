"""The JSON report: schema-valid, values round-trip, byte-for-byte deterministic."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from ollama_fleet import __version__
from ollama_fleet.checks.model import CheckRun, FailureClass, Status
from ollama_fleet.checks.reports.json import load_schema, render_json


def _validate(document: Any) -> None:
    jsonschema.Draft202012Validator(load_schema()).validate(document)


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["failure_class"]["enum"] == [c.value for c in FailureClass]
    assert schema["$defs"]["status"]["enum"] == [s.value for s in Status]


def test_document_validates(run: CheckRun, all_ok_run: CheckRun, empty_run: CheckRun) -> None:
    for r in (run, all_ok_run, empty_run):
        _validate(json.loads(render_json(r)))


def test_top_level_fields(run: CheckRun) -> None:
    doc = json.loads(render_json(run))
    assert doc["schema_version"] == 1
    assert doc["tool"] == "ollama-fleet"
    assert doc["tool_version"] == __version__
    assert doc["started_at"] == run.started_at
    assert doc["duration_ms"] == run.duration_ms
    assert doc["status"] == "fail"
    assert doc["summary"] == {"targets": 3, "checks": 18, "ok": 13, "warn": 2, "fail": 3}


def test_context_and_groups(run: CheckRun, all_ok_run: CheckRun) -> None:
    doc = json.loads(render_json(run))
    assert doc["context"] == {
        "command": "ollama-fleet check inventories/production.yml -o report.html",
        "inventory": "inventories/production.yml",
        "controller": "ci-runner-3",
    }
    # edge-lab is in no group, so it is absent
    assert doc["target_groups"] == {"gpu-eu-1": ["gpu", "eu"], "gpu-us-2": ["gpu", "us"]}
    bare = json.loads(render_json(all_ok_run))
    assert bare["context"] == {"command": "", "inventory": "", "controller": ""}
    assert bare["target_groups"] == {}


def test_a_document_from_before_context_still_validates(run: CheckRun) -> None:
    doc = json.loads(render_json(run))
    del doc["context"], doc["target_groups"]
    _validate(doc)


def test_results_round_trip(run: CheckRun) -> None:
    doc = json.loads(render_json(run))
    assert len(doc["results"]) == len(run.results)
    for item, result in zip(doc["results"], run.results, strict=True):
        assert item["target"] == result.target
        assert item["url"] == result.url
        assert item["check"] == result.check
        assert item["status"] == result.status.value
        assert item["summary"] == result.summary
        assert item["elapsed_ms"] == result.elapsed_ms
        if result.status is Status.OK:
            assert item["class"] is None and item["hint"] is None
        else:
            assert item["class"] == result.failure_class
            assert item["hint"] == result.hint
        assert [(f["status"], f["class"], f["message"], f["hint"]) for f in item["findings"]] == [
            (f.status.value, f.failure_class, f.message, f.hint) for f in result.findings
        ]
        assert item["details"] == json.loads(json.dumps(dict(result.details)))


def test_hostile_text_survives_exactly(run: CheckRun) -> None:
    doc = json.loads(render_json(run))
    chat = next(r for r in doc["results"] if r["target"] == "gpu-us-2" and r["check"] == "chat")
    assert chat["summary"] == "unexpected body <script>alert(1)</script> & “bröken” 模型 \x1b[2J"
    assert chat["class"] == "bad_response"
    exposure = next(r for r in doc["results"] if r["check"] == "exposure" and r["status"] == "fail")
    assert exposure["details"]["probe"]["nested"] == {"depth": [1, 2, {"x": None}]}


def test_output_is_deterministic(run: CheckRun) -> None:
    first = render_json(run)
    assert render_json(run) == first
    assert first.endswith("}\n")
    # Keys sorted, indent 2, unicode kept readable.
    assert (
        first == json.dumps(json.loads(first), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    assert "模型" in first


def test_details_in_any_mapping_or_sequence_type_serialise(run: CheckRun) -> None:
    from types import MappingProxyType

    from ollama_fleet.checks.model import CheckResult, ok

    result = CheckResult(
        target="t",
        url="https://t",
        check="tls",
        findings=(ok("fine"),),
        elapsed_ms=1.0,
        details=MappingProxyType({"san": ("a", "b"), "nan": float("nan"), "n": {1: True}}),
    )
    doc = json.loads(
        render_json(CheckRun(results=(result,), started_at="x", duration_ms=1.0, targets=("t",)))
    )
    _validate(doc)
    assert doc["results"][0]["details"] == {"san": ["a", "b"], "nan": None, "n": {"1": True}}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("status",), "error"),
        (("schema_version",), 2),
        (("results", 0, "class"), "not_a_class"),
        (("results", 1, "class"), None),  # a warn needs a class
        (("summary", "fail"), -1),
        (("context", "command"), None),
        (("context", "password"), "x"),  # no other keys in context
        (("target_groups", "gpu-eu-1"), "gpu,eu"),
        (("target_groups", "gpu-eu-1", 0), ""),
    ],
)
def test_schema_rejects_broken_documents(run: CheckRun, path: tuple[Any, ...], value: Any) -> None:
    doc = copy.deepcopy(json.loads(render_json(run)))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)
