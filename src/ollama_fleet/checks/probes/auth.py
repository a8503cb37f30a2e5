"""auth: who may use the endpoint without a key, and that Ollama's write endpoints are refused.

Access is judged by GET /api/tags without a key: Ollama's model list served to anyone means
anyone can generate too (a proxy that guards chat but lists the models to all is rare, and
asking for a real generation on every run would cost GPU time). Without an api_key that is
the request connectivity and models already made, so it costs nothing more.

The write endpoints each get one request that Ollama rejects before it looks at any model or
file (an empty model name; HEAD for a blob whose digest is all zeros), so even a host that
exposes them is not changed. 401, 403 or 405, or a connection closed without an answer, is a
refusal; any other answer came through: the endpoint is exposed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ollama_fleet.checks.classify import (
    WRITE_ENDPOINT_HINT,
    classify_exception,
    classify_status,
    error_text,
)
from ollama_fleet.checks.http import Answer, json_body
from ollama_fleet.checks.model import (
    CheckResult,
    FailureClass,
    Finding,
    PublicAccess,
    fail,
    ok,
)
from ollama_fleet.checks.probe import ProbeContext, Stopwatch

ACTION = "GET /api/tags"
REFUSALS = (401, 403, 405)
ZERO_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True, slots=True)
class WriteProbe:
    """One harmless request to a write endpoint; `label` names it in findings."""

    endpoint: str
    method: str
    path: str
    body: Mapping[str, Any] | None
    label: str


# An empty name is invalid to every Ollama version ("model is required", "invalid model
# name", `name "" is invalid`), checked before any registry, model or file is touched.
WRITE_PROBES: tuple[WriteProbe, ...] = (
    WriteProbe("pull", "POST", "/api/pull", {"model": "", "stream": False}, "POST /api/pull"),
    WriteProbe("push", "POST", "/api/push", {"model": "", "stream": False}, "POST /api/push"),
    WriteProbe("delete", "DELETE", "/api/delete", {"model": ""}, "DELETE /api/delete"),
    WriteProbe("create", "POST", "/api/create", {"model": "", "stream": False}, "POST /api/create"),
    WriteProbe("copy", "POST", "/api/copy", {"source": "", "destination": ""}, "POST /api/copy"),
    # HEAD only stats a file, in every version; POST would write the uploaded body as a blob
    WriteProbe("blobs", "HEAD", f"/api/blobs/{ZERO_DIGEST}", None, "HEAD /api/blobs/sha256:0…0"),
)


def judge_access(answer: Answer, *, public_access: PublicAccess) -> Finding:
    """The finding for GET /api/tags sent without a key (pure)."""
    status, body = answer.status_code, answer.content
    declared_open = public_access is PublicAccess.OPEN
    if status == 401 or (status == 403 and body.strip()):
        if declared_open:
            return ok(f"without a key: {status}; a key is required, though public_access is open")
        return ok(f"without a key: {status}, as required")
    if not 200 <= status < 300:
        return classify_status(status, body, action=f"{ACTION} without a key")
    try:
        models = json_body(answer).get("models")
    except Exception:
        models = None
    if not isinstance(models, list):
        return fail(
            FailureClass.BAD_RESPONSE,
            f"{ACTION} without a key: HTTP {status}, but not an Ollama model list",
        )
    if declared_open:
        return ok(f"open access, as declared (public_access: open): {ACTION} answers {status}")
    return fail(
        FailureClass.OPEN_ACCESS,
        f"open access: {ACTION} answers {status} without a key; anyone who reaches this URL "
        "can use its models",
    )


def judge_write_answer(probe: WriteProbe, status: int, body: bytes) -> Finding:
    """The finding for a write endpoint's answer (pure): refused, or exposed."""
    if status in REFUSALS:
        return ok(f"{probe.label}: refused ({status})")
    said = f" ({error_text(body)})" if body.strip() else ""
    return fail(
        FailureClass.EXPOSED,
        f"{probe.label} is exposed: HTTP {status}{said}, not a refusal",
        WRITE_ENDPOINT_HINT,
    )


async def _write_finding(ctx: ProbeContext, probe: WriteProbe) -> tuple[Finding, int | None]:
    request = ctx.client.build_request(
        probe.method, probe.path, json=dict(probe.body) if probe.body is not None else None
    )
    try:
        answer = await ctx.send(request)
    except httpx.RemoteProtocolError:
        # the proxy dropped the request without an answer (Caddy's `abort`): nothing got in
        return ok(f"{probe.label}: refused (connection closed without an answer)"), None
    except Exception as exc:
        return classify_exception(exc, action=probe.label), None
    return judge_write_answer(probe, answer.status_code, answer.content), answer.status_code


async def _anonymous_tags(ctx: ProbeContext) -> Answer:
    if not ctx.target.api_key:
        return await ctx.get("/api/tags")  # the client sends no key: share the one request
    request = ctx.client.build_request("GET", "/api/tags")
    request.headers.pop("Authorization", None)  # this request only goes without the key
    return await ctx.send(request)


async def probe_auth(ctx: ProbeContext) -> CheckResult:
    watch = Stopwatch(ctx, "auth")
    target = ctx.target
    details: dict[str, Any] = {"public_access": target.public_access.value}
    try:
        anonymous = await _anonymous_tags(ctx)
    except Exception as exc:
        return watch.result([classify_exception(exc, action=f"{ACTION} without a key")], details)
    details["anonymous_status"] = anonymous.status_code
    findings = [judge_access(anonymous, public_access=target.public_access)]
    if target.api_key:
        try:
            keyed = await ctx.get("/api/tags")
        except Exception as exc:
            findings.append(classify_exception(exc, action=f"{ACTION} with the key"))
        else:
            if keyed.status_code == 200:
                findings.append(ok("with the key: 200"))
            else:
                findings.append(
                    classify_status(keyed.status_code, keyed.content, action=f"{ACTION} with key")
                )
    if not target.check_write_endpoints:
        findings.append(ok("write endpoints not probed (check_write_endpoints: false)"))
        return watch.result(findings, details)
    answers = await asyncio.gather(*(_write_finding(ctx, probe) for probe in WRITE_PROBES))
    findings += [finding for finding, _ in answers]
    details["write_endpoints"] = {
        probe.endpoint: status for probe, (_, status) in zip(WRITE_PROBES, answers, strict=True)
    }
    return watch.result(findings, details)
