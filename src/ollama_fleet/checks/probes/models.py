"""models: the required models (and pinned digests) are in /api/tags; /api/ps is reported."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ollama_fleet.checks.classify import classify_exception, classify_status, model_missing_hint
from ollama_fleet.checks.http import json_body
from ollama_fleet.checks.model import (
    CheckResult,
    FailureClass,
    Finding,
    RequiredModel,
    fail,
    ok,
    warn,
)
from ollama_fleet.checks.probe import ProbeContext, Stopwatch
from ollama_fleet.values import canonical_model_name


def _digest_hex(digest: str) -> str:
    return digest.removeprefix("sha256:").lower()


def compare_models(required: Iterable[RequiredModel], present: Mapping[str, str]) -> list[Finding]:
    """Findings for required models against {canonical name: digest} present on the host."""
    findings: list[Finding] = []
    missing = []
    for model in required:
        name = canonical_model_name(model.name)
        if name not in present:
            missing.append(name)
            continue
        if model.digest and not _digest_hex(present[name]).startswith(_digest_hex(model.digest)):
            findings.append(
                fail(
                    FailureClass.MODEL_MISSING,
                    f"{name} is present with digest {_digest_hex(present[name])[:12]}, "
                    f"not the pinned {_digest_hex(model.digest)[:12]}",
                    "the host has another build of this tag: run `ollama-fleet deploy "
                    f"INVENTORY --roles models`, or `ollama pull {name}` on the host",
                )
            )
        else:
            findings.append(ok(f"{name} present"))
    if missing:
        findings.insert(
            0,
            fail(
                FailureClass.MODEL_MISSING,
                f"missing: {', '.join(missing)}",
                model_missing_hint(missing),
            ),
        )
    return findings


def _model_index(data: Any) -> dict[str, str]:
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ValueError("no models list")
    index: dict[str, str] = {}
    for entry in models:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            index[canonical_model_name(entry["name"])] = str(entry.get("digest", ""))
    return index


async def probe_models(ctx: ProbeContext) -> CheckResult:
    watch = Stopwatch(ctx, "models")
    try:
        response = await ctx.get("/api/tags")
    except Exception as exc:
        return watch.result([classify_exception(exc, action="GET /api/tags")])
    if response.status_code != 200:
        return watch.result(
            [classify_status(response.status_code, response.content, action="GET /api/tags")]
        )
    try:
        present = _model_index(json_body(response))
    except ValueError:
        return watch.result(
            [fail(FailureClass.BAD_RESPONSE, "GET /api/tags: not an Ollama model list")]
        )
    details: dict[str, Any] = {"present": sorted(present)}
    if response.timings is not None:
        details["timings"] = dict(response.timings)
    findings = compare_models(ctx.target.required_models, present)
    if not ctx.target.required_models:
        findings.append(ok(f"{len(present)} models present, none required"))

    findings += await _loaded(ctx, details)
    return watch.result(findings, details)


def loaded_facts(data: Any) -> list[dict[str, Any]]:
    """What /api/ps says of each loaded model: bytes in memory, in VRAM, and until when.

    `expires_at` stays Ollama's RFC 3339 string; a field of the wrong type becomes None.
    """
    facts = []
    for entry in data.get("models", []) if isinstance(data, dict) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        size, vram, expires = (entry.get(k) for k in ("size", "size_vram", "expires_at"))
        facts.append(
            {
                "name": canonical_model_name(entry["name"]),
                "size": size if isinstance(size, int) and not isinstance(size, bool) else None,
                "size_vram": vram if isinstance(vram, int) and not isinstance(vram, bool) else None,
                "expires_at": expires if isinstance(expires, str) else None,
            }
        )
    return sorted(facts, key=lambda fact: str(fact["name"]))


async def _loaded(ctx: ProbeContext, details: dict[str, Any]) -> list[Finding]:
    """/api/ps into details["loaded"]; a problem there is only a warning, classed as usual."""
    details["loaded"] = []
    try:
        ps = await ctx.get("/api/ps")
        if ps.status_code != 200:
            found = classify_status(ps.status_code, ps.content, action="GET /api/ps")
        else:
            data = json_body(ps)
            details["loaded"] = sorted(_model_index(data))
            details["loaded_models"] = loaded_facts(data)
            return []
    except ValueError:
        found = fail(FailureClass.BAD_RESPONSE, "GET /api/ps: not an Ollama model list")
    except Exception as exc:
        found = classify_exception(exc, action="GET /api/ps")
    return [warn(found.failure_class or FailureClass.BAD_RESPONSE, found.message, found.hint)]
