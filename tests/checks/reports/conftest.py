"""A realistic CheckRun for the reporter tests: three targets, every status, hostile text."""

from __future__ import annotations

import pytest

from ollama_fleet.checks.model import (
    CheckResult,
    CheckRun,
    FailureClass,
    Finding,
    RunContext,
    fail,
    ok,
    warn,
)

SCRIPT = "<script>alert(1)</script>"
# What a hostile or broken server answered: markup, an ampersand, unicode, a terminal escape.
HOSTILE_SUMMARY = f"unexpected body {SCRIPT} & “bröken” 模型 \x1b[2J"
UNICODE_MODEL = "llama3.2:3b-instruct-ü"

EU = "gpu-eu-1"
US = "gpu-us-2"
LAB = "edge-lab"
GROUPS = {EU: ("gpu", "eu"), US: ("gpu", "us")}  # edge-lab is in no group
CONTEXT = RunContext(
    command="ollama-fleet check inventories/production.yml -o report.html",
    inventory="inventories/production.yml",
    controller="ci-runner-3",
)
URLS = {
    EU: "https://gpu-eu-1.example.net",
    US: "https://gpu-us-2.example.net:8443",
    LAB: "https://lab.example.org",
}


def _timings(connect: float, tls: float, first_byte: float, total: float) -> dict[str, float]:
    return {"connect_ms": connect, "tls_ms": tls, "first_byte_ms": first_byte, "total_ms": total}


def _result(
    target: str, check: str, findings: tuple[Finding, ...], elapsed_ms: float, **details: object
) -> CheckResult:
    return CheckResult(
        target=target,
        url=URLS[target],
        check=check,
        findings=findings,
        elapsed_ms=elapsed_ms,
        details=details,
    )


def _tls_details(days_left: int, *, hsts: bool) -> dict[str, object]:
    return {
        "protocol": "TLSv1.3",
        "cipher": "TLS_AES_256_GCM_SHA384",
        "issuer": {"O": "Let's Encrypt", "CN": "R11"},
        "not_after": "2025-06-13T09:12:44Z",
        "days_left": days_left,
        "san": ["gpu-eu-1.example.net", "www.gpu-eu-1.example.net"],
        "hsts": hsts,
    }


def _target_results(target: str) -> list[CheckResult]:
    models = [
        {"name": "llama3.2:3b", "digest": "a80c4f17acd5", "size_bytes": 2019393189},
        {"name": "nomic-embed-text:latest", "digest": "0a109f422b47", "size_bytes": 274302450},
    ]
    return [
        _result(
            target,
            "connectivity",
            (ok("connected over HTTP/2 in 95 ms"), ok("GET /api/version answered 0.6.5")),
            95.4,
            timings=_timings(12.4, 30.1, 80.2, 95.4),
            resolved=["203.0.113.10", "2001:db8::10"],
            http_version="HTTP/2",
            version="0.6.5",
        ),
        _result(
            target,
            "tls",
            (ok("certificate valid for 81 days, TLSv1.3"),),
            31.0,
            **_tls_details(81, hsts=True),
        ),
        _result(
            target,
            "models",
            (ok("2 of 2 required models present"),),
            44.2,
            models=models,
            required=["llama3.2:3b"],
            missing=[],
        ),
        _result(
            target,
            "chat",
            (ok("llama3.2:3b answered in 1.21 s (41.3 tok/s)"),),
            1210.5,
            model="llama3.2:3b",
            tokens=12,
            tokens_per_s=41.3,
            timings=_timings(11.0, 28.0, 640.0, 1210.5),
        ),
        _result(
            target,
            "auth",
            (ok("401 without a key, 200 with the key"),),
            52.0,
            status_without_key=401,
            status_with_key=200,
        ),
        _result(
            target,
            "exposure",
            (ok("port 11434 closed (refused)"), ok("port 443 open")),
            1003.0,
            host=URLS[target].removeprefix("https://").split(":")[0],
            ports={"11434": "refused", "443": "open"},
        ),
    ]


def build_run() -> CheckRun:
    """18 checks on 3 targets: 13 ok, 2 warn, 3 fail."""
    eu = _target_results(EU)
    eu[1] = _result(
        EU,
        "tls",
        (
            warn(FailureClass.TLS_EXPIRED, "certificate expires in 12 days (2025-06-13)"),
            ok("TLSv1.3 negotiated"),
        ),
        33.5,
        **_tls_details(12, hsts=True),
    )

    us = _target_results(US)
    us[2] = _result(
        US,
        "models",
        (
            ok("llama3.2:3b present"),
            fail(FailureClass.MODEL_MISSING, "required model qwen2.5:7b is missing"),
            warn(
                FailureClass.MODEL_MISSING,
                f"{UNICODE_MODEL} digest 1234abcd does not match the pin 9f8e",
            ),
        ),
        47.9,
        models=[{"name": "llama3.2:3b", "digest": "a80c4f17acd5", "size_bytes": 2019393189}],
        required=["llama3.2:3b", "qwen2.5:7b", UNICODE_MODEL],
        missing=["qwen2.5:7b"],
    )
    us[3] = _result(
        US,
        "chat",
        (fail(FailureClass.BAD_RESPONSE, HOSTILE_SUMMARY),),
        388.0,
        model="llama3.2:3b",
        http_status=200,
        content_type="text/html; charset=utf-8",
        body_excerpt=f"<html>{SCRIPT}</html>",
        timings=_timings(14.0, 29.5, 380.1, 388.0),
    )
    us[4] = _result(
        US,
        "auth",
        (warn(FailureClass.AUTH, "answers /api/tags without an API key", hint="set api_key"),),
        61.0,
        status_without_key=200,
        status_with_key=None,
    )
    us[5] = _result(
        US,
        "exposure",
        (
            fail(FailureClass.EXPOSED, "port 11434 accepts connections from here"),
            ok("port 22 open"),
            ok("port 8443 open"),
            ok("port 9090 closed (timeout)"),
        ),
        1002.5,
        host="gpu-us-2.example.net",
        ports={"11434": "open", "22": "open", "8443": "open", "9090": "timeout"},
        probe={"from": "ci-runner", "timeout_s": 1.0, "nested": {"depth": [1, 2, {"x": None}]}},
    )

    lab = _target_results(LAB)
    # the chat probe's older shape: first_token_ms at the top level, no timings block
    lab[3] = _result(
        LAB,
        "chat",
        (ok("llama3.2:3b answered in 0.90 s (38.0 tok/s)"),),
        900.0,
        model="llama3.2:3b",
        first_token_ms=420.0,
        tokens_per_second=38.0,
    )
    results = tuple(eu + us + lab)
    return CheckRun(
        results=results,
        started_at="2025-06-01T09:30:00.250000+00:00",
        duration_ms=2841.7,
        targets=(EU, US, LAB),
        target_groups=GROUPS,
        context=CONTEXT,
    )


@pytest.fixture
def run() -> CheckRun:
    return build_run()


def build_all_ok_run() -> CheckRun:
    """One host, six ok checks, no groups and no context (as a library caller makes it)."""
    results = tuple(_target_results(LAB))
    return CheckRun(
        results=results, started_at="2025-06-01T10:00:00Z", duration_ms=840.0, targets=(LAB,)
    )


@pytest.fixture
def all_ok_run() -> CheckRun:
    return build_all_ok_run()


@pytest.fixture
def empty_run() -> CheckRun:
    return CheckRun(results=(), started_at="2025-06-01T10:00:00Z", duration_ms=0.0, targets=())


@pytest.fixture(scope="module")
def sample_runs() -> dict[str, CheckRun]:
    """The mixed run and the all-ok run, built once per module (for the browser tests)."""
    return {"mixed": build_run(), "all_ok": build_all_ok_run()}
