"""connectivity: GET /api/version and /api/tags, with connect, TLS and first-byte timings.

Its /api/version request is the target's first, on a fresh connection: its connect and
first-byte times are judged against the target's latency thresholds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ollama_fleet.checks.classify import (
    classify_exception,
    classify_status,
    judge_time,
)
from ollama_fleet.checks.http import json_body
from ollama_fleet.checks.model import (
    CheckResult,
    FailureClass,
    Finding,
    LatencyPolicy,
    PublicAccess,
    fail,
    ok,
)
from ollama_fleet.checks.probe import ProbeContext, Stopwatch


def latency_findings(timings: Mapping[str, float | None], policy: LatencyPolicy) -> list[Finding]:
    """`slow` findings for a fresh connection's connect and first byte (pure)."""
    judged = (
        judge_time("TCP connect took", timings.get("connect_ms"), policy.connect_ms),
        judge_time("first byte after", timings.get("first_byte_ms"), policy.first_byte_ms),
    )
    return [finding for finding in judged if finding is not None]


async def probe_connectivity(ctx: ProbeContext) -> CheckResult:
    watch = Stopwatch(ctx, "connectivity")
    findings: list[Finding] = []
    details: dict[str, object] = {}
    try:
        response = await ctx.get("/api/version")
    except Exception as exc:
        return watch.result([classify_exception(exc, action="GET /api/version")])
    if response.timings is not None:
        details["timings"] = dict(response.timings)
        slow = latency_findings(response.timings, ctx.target.latency)
    else:
        slow = []
    details["http_version"] = response.http_version
    closed = ctx.target.public_access is PublicAccess.CLOSED
    if response.status_code == 401 and closed and not ctx.target.api_key:
        # a key is required and none was given: the 401 is the answer this target owes
        findings.append(ok("reachable; answers 401 without a key, as expected"))
        return watch.result(findings + slow, details)
    if response.status_code != 200:
        return watch.result(
            [classify_status(response.status_code, response.content, action="GET /api/version")],
            details,
        )
    try:
        version = json_body(response).get("version")
    except Exception:
        version = None
    if not isinstance(version, str):
        return watch.result(
            [fail(FailureClass.BAD_RESPONSE, "GET /api/version: no version in the answer")],
            details,
        )
    details["version"] = version
    findings.append(ok(f"Ollama {version} answers over {response.http_version}"))
    findings += slow

    start = time.perf_counter()
    try:
        tags = await ctx.get("/api/tags")
    except Exception as exc:
        findings.append(classify_exception(exc, action="GET /api/tags"))
        return watch.result(findings, details)
    details["tags_ms"] = round((time.perf_counter() - start) * 1000, 2)
    if tags.status_code != 200:
        findings.append(classify_status(tags.status_code, tags.content, action="GET /api/tags"))
    else:
        findings.append(ok("GET /api/tags answers 200"))
    return watch.result(findings, details)
