"""compare_models: required models (and pinned digests) against /api/tags, in one spelling."""

from __future__ import annotations

import hashlib

import pytest

from ollama_fleet.checks.model import FailureClass, RequiredModel, Status
from ollama_fleet.checks.probes.models import compare_models, loaded_facts
from ollama_fleet.values import canonical_model_name


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


LLAMA = digest("llama3.2:1b")
QWEN = digest("qwen2.5:0.5b")
PRESENT = {
    "llama3.2:1b": LLAMA,
    "qwen2.5:0.5b": QWEN,
    "llama3:latest": digest("llama3"),
    "someone/tuned:latest": digest("someone/tuned"),
    "registry.example.net:5000/team/coder:7b": digest("coder"),
}


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("llama3", "llama3:latest"),
        ("llama3:latest", "llama3:latest"),
        ("llama3.2:1b", "llama3.2:1b"),
        ("user/model", "user/model:latest"),
        ("user/model:q4_0", "user/model:q4_0"),
        ("registry.example.net:5000/team/coder", "registry.example.net:5000/team/coder:latest"),
        ("registry.example.net:5000/team/coder:7b", "registry.example.net:5000/team/coder:7b"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_model_name(name) == canonical


@pytest.mark.parametrize(
    "name",
    [
        "registry.ollama.ai/library/llama3.2:1b",
        "library/llama3.2:1b",
        "Registry.Ollama.AI/Library/Llama3.2:1B",
    ],
)
def test_ollamas_default_registry_and_namespace_name_the_same_model(name: str) -> None:
    # the checks and the deploys share one spelling (values.canonical_model_name)
    findings = compare_models([RequiredModel(name=name)], PRESENT)
    assert [(f.status, f.message) for f in findings] == [(Status.OK, "llama3.2:1b present")]


def test_the_missing_models_hint_names_them_and_this_tools_deploy() -> None:
    (finding,) = compare_models(
        [RequiredModel(name="llama3.1:70b"), RequiredModel(name="Mistral")], {}
    )
    assert finding.hint == (
        "list them in required_models and run `ollama-fleet deploy INVENTORY --roles models` "
        "(it pulls required_models), or run `ollama pull llama3.1:70b mistral:latest` on the host"
    )


@pytest.mark.parametrize(
    "name",
    ["llama3", "llama3:latest", "someone/tuned", "registry.example.net:5000/team/coder:7b"],
)
def test_names_without_tag_mean_latest(name: str) -> None:
    findings = compare_models([RequiredModel(name=name)], PRESENT)
    assert [f.status for f in findings] == [Status.OK]
    assert canonical_model_name(name) in findings[0].message


def test_model_names_compare_case_insensitively() -> None:
    # Ollama matches model names case-insensitively (ollama/ollama#7676), and so does the
    # simulator (normalize_name): `Llama3.2:1B` on an inventory is the installed llama3.2:1b.
    findings = compare_models([RequiredModel(name="Llama3.2:1B")], PRESENT)
    assert [f.status for f in findings] == [Status.OK]


@pytest.mark.parametrize(
    "pin",
    [LLAMA, LLAMA[:12], f"sha256:{LLAMA}", f"sha256:{LLAMA[:12]}", LLAMA[:12].upper()],
    ids=["full", "prefix", "sha256-full", "sha256-prefix", "upper-prefix"],
)
def test_pinned_digest_matches_by_prefix(pin: str) -> None:
    findings = compare_models([RequiredModel(name="llama3.2:1b", digest=pin)], PRESENT)
    assert [f.status for f in findings] == [Status.OK]


def test_present_digest_with_sha256_prefix_matches() -> None:
    present = {"llama3.2:1b": f"sha256:{LLAMA}"}
    findings = compare_models([RequiredModel(name="llama3.2:1b", digest=LLAMA[:16])], present)
    assert [f.status for f in findings] == [Status.OK]


def test_digest_mismatch_fails() -> None:
    pin = "sha256:" + "0" * 64
    findings = compare_models([RequiredModel(name="llama3.2:1b", digest=pin)], PRESENT)
    assert len(findings) == 1
    (finding,) = findings
    assert finding.status is Status.FAIL
    assert finding.failure_class is FailureClass.MODEL_MISSING
    assert LLAMA[:12] in finding.message
    assert "000000000000" in finding.message
    assert finding.hint == (
        "the host has another build of this tag: run `ollama-fleet deploy INVENTORY --roles "
        "models`, or `ollama pull llama3.2:1b` on the host"
    )


def test_digest_that_is_only_a_suffix_does_not_match() -> None:
    findings = compare_models([RequiredModel(name="llama3.2:1b", digest=LLAMA[-12:])], PRESENT)
    assert findings[0].status is Status.FAIL


def test_missing_models_are_listed_first() -> None:
    findings = compare_models(
        [
            RequiredModel(name="llama3.1:70b"),
            RequiredModel(name="llama3.2:1b"),
            RequiredModel(name="mistral"),
            RequiredModel(name="qwen2.5:0.5b", digest=QWEN[:8]),
        ],
        PRESENT,
    )
    first = findings[0]
    assert first.status is Status.FAIL
    assert first.failure_class is FailureClass.MODEL_MISSING
    assert first.message == "missing: llama3.1:70b, mistral:latest"
    assert [f.status for f in findings[1:]] == [Status.OK, Status.OK]
    assert "llama3.2:1b" in findings[1].message
    assert "qwen2.5:0.5b" in findings[2].message


def test_other_tag_of_the_same_model_is_missing() -> None:
    findings = compare_models([RequiredModel(name="llama3.2:3b")], PRESENT)
    assert findings[0].status is Status.FAIL
    assert "llama3.2:3b" in findings[0].message


def test_nothing_required_nothing_found() -> None:
    assert compare_models([], PRESENT) == []
    assert compare_models([], {}) == []


def test_everything_missing_on_an_empty_host() -> None:
    findings = compare_models([RequiredModel(name="a"), RequiredModel(name="b:1")], {})
    assert len(findings) == 1
    assert findings[0].message == "missing: a:latest, b:1"


def test_loaded_models_keep_the_bytes_in_vram_and_the_expiry_as_ollama_wrote_them() -> None:
    # the shape of Ollama's documented /api/ps answer
    ps = {
        "models": [
            {
                "name": "mistral:latest",
                "model": "mistral:latest",
                "size": 5137025024,
                "digest": "2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8",
                "expires_at": "2024-06-04T14:38:31.83753-07:00",
                "size_vram": 5137025024,
            },
            {"name": "llama3.2", "size": "big", "size_vram": True, "expires_at": 7},
            {"model": "no-name"},
        ]
    }
    assert loaded_facts(ps) == [
        {"name": "llama3.2:latest", "size": None, "size_vram": None, "expires_at": None},
        {
            "name": "mistral:latest",
            "size": 5137025024,
            "size_vram": 5137025024,
            "expires_at": "2024-06-04T14:38:31.83753-07:00",
        },
    ]
    assert loaded_facts({"models": "none"}) == []
    assert loaded_facts([]) == []
