"""serialize.diagnosis_data: schema-valid, every field round-trips, secrets masked."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from ollama_fleet.checks.model import FailureClass, Status
from ollama_fleet.diagnose.findings import Diagnosis, Severity, Where
from ollama_fleet.diagnose.reports import load_schema, render
from ollama_fleet.diagnose.serialize import diagnosis_data, scrub, secret_key

from .test_reports import (
    API_KEY,
    FAULTY_ORDER,
    NOT_AFTER,
    PROXY_PASSWORD,
    SINCE,
    faulty_diagnosis,
    healthy_diagnosis,
)


def _validate(document: Any) -> None:
    jsonschema.Draft202012Validator(load_schema()).validate(document)


def _document(diagnosis: Diagnosis) -> dict[str, Any]:
    """What the JSON report holds, read back as a user's program would."""
    loaded: dict[str, Any] = json.loads(render(diagnosis, "json"))
    return loaded


def test_schema_is_draft_2020_12_and_its_enums_match_the_code() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    defs = schema["$defs"]
    assert defs["severity"]["enum"] == [s.value for s in Severity]
    assert defs["where"]["enum"] == [w.value for w in Where]
    assert defs["status"]["enum"] == [s.value for s in Status]
    assert defs["failure_class"]["enum"] == [c.value for c in FailureClass]


def test_both_documents_validate() -> None:
    for diagnosis in (healthy_diagnosis(), faulty_diagnosis()):
        _validate(_document(diagnosis))
        assert _document(diagnosis) == diagnosis_data(diagnosis)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("hosts", 0, "findings", 0, "severity"), "fatal"),
        (("hosts", 0, "facts", "units", 0, "since"), "2026-12-01 18:23:42"),
        (("summary", "critical"), -1),
        (("hosts", 0, "facts", "firewall", "accepted_tcp"), "22,80"),
        (("version",), 2),
    ],
)
def test_the_schema_rejects_a_wrong_document(path: tuple[Any, ...], bad: Any) -> None:
    document = copy.deepcopy(_document(faulty_diagnosis()))
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        _validate(document)


def test_an_unknown_field_is_rejected() -> None:
    document = _document(faulty_diagnosis())
    document["hosts"][0]["facts"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        _validate(document)


def test_top_level_and_summary() -> None:
    doc = _document(faulty_diagnosis())
    assert doc["schema"] == "ollama-fleet/diagnose"
    assert doc["version"] == 1
    assert doc["started_at"] == "2026-12-01T18:30:00Z"
    assert doc["duration_ms"] == 5230.0
    assert doc["context"] == {
        "command": "ollama-fleet diagnose inventories/lab.yml -o report.html",
        "inventory": "inventories/lab.yml",
        "controller": "ci-runner-3",
    }
    assert doc["summary"] == {"findings": 5, "critical": 2, "warning": 2, "info": 1, "hosts": 3}
    healthy = _document(healthy_diagnosis())
    assert healthy["summary"] == {"findings": 0, "critical": 0, "warning": 0, "info": 0, "hosts": 1}


def test_hosts_keep_their_order_and_say_how_far_diagnose_got() -> None:
    hosts = _document(faulty_diagnosis())["hosts"]
    assert [(h["name"], h["inside"], h["reached"], h["facts"] is None) for h in hosts] == [
        ("lab", True, True, False),
        ("gpu-2", True, False, True),
        ("edge", False, False, True),
    ]
    assert hosts[1]["unreachable"] == (
        "ssh: connect to host gpu-2.example.org port 22: Connection refused"
    )
    assert hosts[0]["unreachable"] is None and hosts[2]["unreachable"] is None
    assert hosts[2]["url"] == "https://edge.example.org"


def test_findings_round_trip_worst_first_within_a_host() -> None:
    diagnosis = faulty_diagnosis()
    hosts = _document(diagnosis)["hosts"]
    found = [(f["severity"], f["host"], f["rule"]) for h in hosts for f in h["findings"]]
    assert sorted(found, key=FAULTY_ORDER.index) == FAULTY_ORDER
    lab = hosts[0]["findings"]
    assert [f["severity"] for f in lab] == ["critical", "warning", "info"]
    original = next(f for f in diagnosis.findings if f.rule == "ollama-down")
    down = lab[0]
    assert down["rule"] == original.rule and down["title"] == original.title
    assert down["cause"] == original.cause
    assert down["evidence"][0] == original.evidence[0]
    assert down["fix"] == {
        "command": "systemctl reset-failed ollama\nsystemctl restart ollama",
        "where": "host",
        "note": "run it after stopping whatever holds port 11434",
    }
    assert hosts[1]["findings"][0]["fix"] is None
    assert hosts[2]["findings"][0]["fix"]["where"] == "controller"


def test_checks_round_trip() -> None:
    checks = _document(faulty_diagnosis())["hosts"][2]["checks"]
    assert checks[0] == {
        "check": "connectivity",
        "status": "ok",
        "failure_class": None,
        "summary": "connected in 12 ms",
        "hint": None,
        "elapsed_ms": 12.5,
    }
    assert [(c["check"], c["status"], c["failure_class"]) for c in checks[1:]] == [
        ("tls", "warn", "tls_expired"),
        ("chat", "fail", "server_error"),
    ]
    assert checks[2]["hint"].startswith("the server failed")


def test_facts_round_trip() -> None:
    diagnosis = faulty_diagnosis()
    facts = diagnosis.hosts[0].facts
    assert facts is not None
    data = _document(diagnosis)["hosts"][0]["facts"]
    assert (data["os"], data["kernel"], data["arch"], data["root"]) == (
        facts.os,
        facts.kernel,
        facts.arch,
        True,
    )
    assert [u["name"] for u in data["units"]] == sorted(facts.units)
    ollama = next(u for u in data["units"] if u["name"] == "ollama.service")
    assert (ollama["active_state"], ollama["result"], ollama["restarts"]) == (
        "failed",
        "exit-code",
        5,
    )
    assert ollama["since"] is None and ollama["main_status"] == 1
    assert ollama["errors"] == list(facts.units["ollama.service"].errors)
    assert ollama["drop_ins"] == ["/etc/systemd/system/ollama.service.d/override.conf"]
    caddy_unit = next(u for u in data["units"] if u["name"] == "caddy.service")
    assert caddy_unit["since"] == "2026-12-01T18:23:42Z" == SINCE.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert data["listeners"][2] == {"address": "127.0.0.1", "port": 11434, "process": "ollama"}
    assert data["firewall"] == {
        "tables": ["inet ollama_fleet"],
        "ours": True,
        "input_drops": True,
        "accepted_tcp": [22, 80, 443],
    }
    assert data["ollama_api"]["answered"] is False
    assert data["ollama_api"]["error"].startswith("curl: (7)")
    assert data["models_dir"]["free_bytes"] == 40_000_000_000
    assert data["gpu"]["smi_error"] == (
        "Failed to initialize NVML: Driver/library version mismatch"
    )
    assert data["gpu"]["modules"] == ["nvidia", "nvidia_uvm"]
    cert = data["caddy"]["certificates"][0]
    assert cert["not_after"] == NOT_AFTER.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cert["names"] == ["lab.example.org"] and cert["issuer"] == "R11"
    assert data["clock"] == {"offset_s": 0.0, "ntp_synchronized": True}
    assert data["dns"]["from_host"] == ["192.0.2.10"]
    assert data["missing_tools"] == ["nvidia-smi"]
    assert data["gaps"] == {"journal": "journal: permission denied (not root)"}
    healthy = _document(healthy_diagnosis())["hosts"][0]["facts"]
    assert healthy["gpu"]["gpus"][0]["memory_total_mib"] == 23034
    assert healthy["ollama_api"]["loaded"] == [
        {"name": "llama3.2:3b", "size": 2_000_000_000, "size_vram": 2_000_000_000}
    ]


def test_environment_secrets_and_url_userinfo_are_masked() -> None:
    doc = _document(faulty_diagnosis())
    ollama = next(u for u in doc["hosts"][0]["facts"]["units"] if u["name"] == "ollama.service")
    assert ollama["environment"] == {
        "HTTPS_PROXY": "http://proxy.internal:3128",
        "OLLAMA_API_KEY": "***",
        "OLLAMA_HOST": "127.0.0.1:11434",
    }
    text = json.dumps(doc)
    assert API_KEY not in text and PROXY_PASSWORD not in text


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OLLAMA_API_KEY", True),
        ("github_token", True),
        ("DB_PASSWORD", True),
        ("Client_Secret", True),
        ("BASIC_AUTH", True),
        ("AWS_CREDENTIALS", True),
        ("OLLAMA_HOST", False),
        ("HTTPS_PROXY", False),
        ("OLLAMA_MODELS", False),
    ],
)
def test_secret_key(name: str, secret: bool) -> None:
    assert secret_key(name) is secret


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("http://user:pass@proxy:3128", "http://proxy:3128"),
        ("HTTPS_PROXY=https://u:p@ss@proxy/x?y", "HTTPS_PROXY=https://proxy/x?y"),
        ("token only@host", "token only@host"),
        ("mail to a@b.org", "mail to a@b.org"),
        ("OLLAMA_API_KEY=abc123 OLLAMA_HOST=0.0.0.0", "OLLAMA_API_KEY=*** OLLAMA_HOST=0.0.0.0"),
        ('Environment="GATEWAY_TOKEN=a b c" X=1', 'Environment="GATEWAY_TOKEN=***" X=1'),
        ('"OLLAMA_HOST=0.0.0.0" key=v', '"OLLAMA_HOST=0.0.0.0" key=***'),
        ("api_key='x y' rest", "api_key=*** rest"),
        ("already OLLAMA_API_KEY=*** masked", "already OLLAMA_API_KEY=*** masked"),
        ("level=error msg=failed", "level=error msg=failed"),
    ],
)
def test_scrub(text: str, scrubbed: str) -> None:
    assert scrub(text) == scrubbed
