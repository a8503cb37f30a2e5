"""auth: where a key is required, a request without one gets 401 and the given key works."""

from __future__ import annotations

from ollama_fleet.checks.classify import classify_exception, classify_status
from ollama_fleet.checks.model import CheckResult, FailureClass, Finding, fail, ok
from ollama_fleet.checks.probe import ProbeContext, Stopwatch

ACTION = "GET /api/tags"


async def probe_auth(ctx: ProbeContext) -> CheckResult:
    watch = Stopwatch(ctx, "auth")
    findings: list[Finding] = []
    try:
        request = ctx.client.build_request("GET", "/api/tags")
        request.headers.pop("Authorization", None)  # this request only goes without the key
        anonymous = await ctx.send(request)
    except Exception as exc:
        return watch.result([classify_exception(exc, action=f"{ACTION} without a key")])
    if anonymous.status_code == 401:
        findings.append(ok("without a key: 401, as required"))
    elif anonymous.status_code < 400:
        findings.append(
            fail(
                FailureClass.AUTH,
                f"without a key: HTTP {anonymous.status_code}; anyone can use this endpoint",
                "the endpoint must require an API key: put the gateway (or Caddy basicauth) "
                "in front of Ollama",
            )
        )
    else:
        findings.append(
            classify_status(anonymous.status_code, anonymous.content, action=f"{ACTION} no key")
        )
    if ctx.target.api_key:
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
    return watch.result(findings)
