"""Status snapshots for the page, JSON and badge tests: a realistic fleet and its edge cases.

FLEET is three hosts the way the monitor sees them at NOW: gpu-eu-1 warns (its certificate
runs out in 12 days), gpu-us-2 fails (a required model is missing, the chat fails), edge-lab
is the Ollama API simulator and all ok. Values are made by formulas, not random, so every
run renders the same page.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.model import (
    CheckView,
    LoadedModel,
    OpenAlert,
    Severity,
    StatusSnapshot,
    TargetView,
)

NOW = 1_735_732_800.0  # 2025-01-01T12:00:00Z
BARS = 48  # half-hour bars over the last 24 h, as the monitor draws them
SPAN_S = 24 * 3600.0
GIB = 1024**3

OK, WARN, FAIL = Status.OK, Status.WARN, Status.FAIL


def uptime(
    h1: float | None, h24: float | None, d7: float | None, d30: float | None
) -> dict[str, float | None]:
    return {"1h": h1, "24h": h24, "7d": d7, "30d": d30}


def bars(*trouble: tuple[int, Status | None], empty_before: int = 0) -> tuple[Status | None, ...]:
    """48 ok bars, None before `empty_before`, and the given (index, status) in between."""
    row: list[Status | None] = [None] * empty_before + [OK] * (BARS - empty_before)
    for index, status in trouble:
        row[index] = status
    return tuple(row)


def series(
    base: float, swing: float, *, every_s: float, hours: float = 6
) -> tuple[tuple[float, float], ...]:
    """A latency series ending at NOW: `base` ms give or take `swing`, a spike at 2/3."""
    n = int(hours * 3600 / every_s)
    points = []
    for i in range(n):
        value = base + swing * math.sin(i / 5)
        if i == 2 * n // 3:
            value *= 3
        points.append((NOW - (n - 1 - i) * every_s, round(value, 1)))
    return tuple(points)


def check(
    name: str,
    status: Status | None,
    summary: str,
    *,
    interval_s: float,
    elapsed_ms: float = 40.0,
    failure_class: str | None = None,
    up: dict[str, float | None] | None = None,
    history: tuple[Status | None, ...] | None = None,
) -> CheckView:
    return CheckView(
        check=name,
        status=status,
        summary=summary,
        failure_class=failure_class,
        at=None if status is None else NOW - interval_s / 3,
        elapsed_ms=None if status is None else elapsed_ms,
        interval_s=interval_s,
        uptime=up if up is not None else uptime(1.0, 1.0, 1.0, 0.9995),
        bars=history if history is not None else bars(),
    )


GPU_EU_1 = TargetView(
    name="gpu-eu-1",
    url="https://gpu-eu-1.example.net",
    status=WARN,
    groups=("gpu", "eu"),
    version="0.5.7",
    cert_days_left=12.4,
    checks=(
        check("connectivity", OK, "HTTP 200 in 88 ms, Ollama 0.5.7", interval_s=30),
        check(
            "tls",
            WARN,
            "certificate expires in 12 days (2025-01-13)",
            interval_s=3600,
            failure_class="tls_expired",
            history=bars(*((i, WARN) for i in range(40, 48))),
        ),
        check("models", OK, "2 of 2 required models present", interval_s=60),
        check("chat", OK, "first token in 212 ms, 48.1 tokens/s", interval_s=300),
        check("auth", OK, "requests without a key are refused (401)", interval_s=300),
        check("exposure", OK, "ports 11434, 9090 closed", interval_s=300),
    ),
    models_required=("llama3.2:1b", "qwen2.5:7b"),
    models_present=("llama3.2:1b", "qwen2.5:7b", "nomic-embed-text:latest"),
    models_loaded=(
        LoadedModel(
            name="llama3.2:1b",
            size_bytes=int(1.9 * GIB),
            vram_bytes=int(1.9 * GIB),
            expires_at=NOW + 240,
        ),
    ),
    response_ms=series(90, 25, every_s=300),
    first_token_ms=series(210, 60, every_s=300),
)

GPU_US_2 = TargetView(
    name="gpu-us-2",
    url="https://gpu-us-2.example.net",
    status=FAIL,
    groups=("gpu", "us"),
    version="0.5.4",
    cert_days_left=61.0,
    checks=(
        check(
            "connectivity",
            OK,
            "HTTP 200 in 140 ms, Ollama 0.5.4",
            interval_s=30,
            up=uptime(1.0, 0.9931, 0.998, 0.9991),
            history=bars((20, FAIL), (21, WARN)),
        ),
        check("tls", OK, "certificate valid for 61 days", interval_s=3600),
        check(
            "models",
            FAIL,
            "1 required model missing: qwen2.5:7b",
            interval_s=60,
            failure_class="model_missing",
            up=uptime(0.0, 0.9167, 0.988, 0.997),
            history=bars(*((i, FAIL) for i in range(44, 48))),
        ),
        check(
            "chat",
            FAIL,
            "HTTP 503 from /api/chat: server busy",
            interval_s=300,
            elapsed_ms=2210.5,
            failure_class="overload",
            up=uptime(0.25, 0.875, 0.97, 0.99),
            history=bars((30, WARN), (45, FAIL), (46, FAIL), (47, FAIL)),
        ),
        check("auth", OK, "requests without a key are refused (401)", interval_s=300),
        check(
            "exposure",
            None,
            "",
            interval_s=300,
            up=uptime(None, None, None, None),
            history=tuple([None] * BARS),
        ),
    ),
    models_required=("llama3.2:1b", "qwen2.5:7b"),
    models_present=("llama3.2:1b",),
    models_loaded=(
        LoadedModel(
            name="llama3.2:1b",
            size_bytes=2 * GIB,
            vram_bytes=GIB,
            expires_at=None,
        ),
    ),
    response_ms=series(140, 40, every_s=300),
    first_token_ms=series(650, 200, every_s=900),
)

EDGE_LAB = TargetView(
    name="edge-lab",
    url="http://127.0.0.1:18080",
    status=OK,
    groups=("lab",),
    version="0.5.7-simulator",
    checks=(
        check("connectivity", OK, "HTTP 200 in 4 ms, Ollama 0.5.7-simulator", interval_s=30),
        check("models", OK, "1 of 1 required models present", interval_s=60),
        check(
            "chat",
            OK,
            "first token in 31 ms, 210.4 tokens/s",
            interval_s=300,
            up=uptime(1.0, 1.0, None, None),
            history=bars(empty_before=30),
        ),
    ),
    models_required=("llama3.2:1b",),
    models_present=("llama3.2:1b",),
    response_ms=series(4, 1, every_s=300),
    first_token_ms=series(30, 5, every_s=300),
)

ALERTS = (
    OpenAlert(
        target="gpu-eu-1",
        check="tls",
        severity=Severity.WARNING,
        since=NOW - 2 * 86400,
        summary="certificate expires in 12 days (2025-01-13)",
    ),
    OpenAlert(
        target="gpu-us-2",
        check="chat",
        severity=Severity.CRITICAL,
        since=NOW - 900,
        summary="HTTP 503 from /api/chat: server busy",
        reason="success_rate",
    ),
    OpenAlert(
        target="gpu-us-2",
        check="models",
        severity=Severity.CRITICAL,
        since=NOW - 2 * 3600,
        summary="1 required model missing: qwen2.5:7b",
    ),
)

FLEET = StatusSnapshot(
    generated_at=NOW,
    targets=(GPU_EU_1, GPU_US_2, EDGE_LAB),
    alerts=ALERTS,
    refresh_s=30,
    monitor_version="0.1.0",
    bars_span_s=SPAN_S,
    simulated=("edge-lab",),
)

# a fleet with nothing to watch
EMPTY = StatusSnapshot(generated_at=NOW, targets=(), monitor_version="0.1.0")

# the moment after start: targets known, no check finished yet, no history at all
FRESH = StatusSnapshot(
    generated_at=NOW,
    targets=tuple(
        TargetView(
            name=t.name,
            url=t.url,
            status=None,
            checks=tuple(
                CheckView(check=c.check, status=None, interval_s=c.interval_s) for c in t.checks
            ),
            models_required=t.models_required,
        )
        for t in (GPU_EU_1, GPU_US_2)
    ),
    monitor_version="0.1.0",
)

# Everything a hostile server or a careless inventory could put into a snapshot.
SCRIPT = "<script>alert(1)</script>"
INJECTION = '"><img src=x onerror=alert(2)>&amp;'
SECRET = "s3cret-pa55"
HOSTILE_TARGET = replace(
    GPU_EU_1,
    name=SCRIPT,
    url=f"https://admin:{SECRET}@evil.example.net/ollama?key={SECRET}",
    version=f"0.5.7{INJECTION}",
    groups=(INJECTION,),
    checks=(replace(GPU_EU_1.checks[0], check=SCRIPT, summary=f"server said {INJECTION}\x1b[31m"),),
    models_required=(INJECTION,),
    models_present=(SCRIPT,),
    models_loaded=(LoadedModel(name=SCRIPT, size_bytes=1, vram_bytes=1),),
)
HOSTILE = replace(
    FLEET,
    targets=(HOSTILE_TARGET,),
    alerts=(
        OpenAlert(
            target=SCRIPT,
            check=SCRIPT,
            severity=Severity.CRITICAL,
            since=NOW - 60,
            summary=INJECTION,
        ),
    ),
    monitor_version=INJECTION,
)
