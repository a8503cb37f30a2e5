"""Check results as the probes make them, and a MonitorMetrics populated with every kind.

The details follow each probe's conventions (checks/probes/*.py), so the metrics' tests, the
rules' tests and the real Prometheus read the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ollama_fleet.checks.model import (
    CheckResult,
    FailureClass,
    Finding,
    RequiredModel,
    Target,
    fail,
    ok,
    warn,
)
from ollama_fleet.monitor.metrics import MonitorMetrics
from ollama_fleet.monitor.model import LoadedModel, Severity

NOW = 1_750_000_000.0  # the tests' clock: 2025-06-15T15:06:40Z
API_KEY = "sk-fleet-0123456789abcdef"  # noqa: S105 (a fake key, to prove it never leaks)
GPU_1 = Target(
    name="gpu-1",
    url="https://ops:hunter2@gpu-1.example:8443",
    required_models=(RequiredModel(name="llama3.2"), RequiredModel(name="Qwen2.5:7b")),
    closed_ports=(11434, 22),
    open_ports=(443,),
    api_key=API_KEY,
)
GPU_2 = Target(name="gpu-2", url="https://gpu-2.example")

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def result(
    target: Target,
    check: str,
    *findings: Finding,
    elapsed_ms: float = 120.0,
    **details: Any,
) -> CheckResult:
    return CheckResult(
        target=target.name,
        url=target.url,
        check=check,
        findings=findings or (ok(f"{check} ok"),),
        elapsed_ms=elapsed_ms,
        details=details,
    )


def populate(metrics: MonitorMetrics) -> None:
    """One result of every check, loaded models, an alert, and the monitor's own numbers."""
    observe = metrics.observe
    observe(result(GPU_1, "connectivity", elapsed_ms=45.0, version="0.5.7"), GPU_1)
    observe(
        result(
            GPU_1,
            "tls",
            warn(FailureClass.TLS_EXPIRED, "certificate expires in 10.0 days"),
            certificate={"not_after": "2025-06-25T15:06:40+00:00", "days_left": 10.0},
        ),
        GPU_1,
    )
    observe(
        result(
            GPU_1,
            "models",
            fail(FailureClass.MODEL_MISSING, "missing: qwen2.5:7b"),
            present=["llama3.2:latest", "nomic-embed-text:latest"],
            loaded=["llama3.2:latest"],
        ),
        GPU_1,
    )
    observe(
        result(
            GPU_1,
            "chat",
            elapsed_ms=3400.0,
            model="llama3.2",
            first_token_ms=420.0,
            tokens_per_second=61.5,
        ),
        GPU_1,
    )
    observe(
        result(
            GPU_1,
            "exposure",
            fail(FailureClass.EXPOSED, "port 11434 accepts connections"),
            host="gpu-1.example",
            ports={"11434": "open", "22": "refused", "443": "open"},
        ),
        GPU_1,
    )
    observe(result(GPU_1, "auth", public_access="closed", anonymous_status=401), GPU_1)
    observe(
        result(
            GPU_2,
            "connectivity",
            fail(FailureClass.REFUSED, "connection refused by 10.0.0.7:443"),
            elapsed_ms=3.0,
        ),
        GPU_2,
    )
    metrics.set_loaded(
        "gpu-1",
        [
            LoadedModel(
                name="llama3.2:latest",
                size_bytes=3_338_801_152,
                vram_bytes=3_338_801_152,
                expires_at=NOW + 300,
            ),
            LoadedModel(name="nomic-embed-text:latest", size_bytes=280_000_000, vram_bytes=0),
        ],
    )
    metrics.set_alert("gpu-1", "models", Severity.CRITICAL)
    metrics.set_alert("gpu-1", "tls", Severity.WARNING)
    metrics.set_alert("gpu-2", "connectivity", None)
    metrics.observe_lag(0.3)
    metrics.set_queue(queued=2, in_flight=5)
    metrics.count_delivery("ops-webhook", ok=True)
    metrics.count_delivery("ops-webhook", ok=False)


def populated() -> MonitorMetrics:
    metrics = MonitorMetrics(version="9.9.9", clock=lambda: NOW)
    populate(metrics)
    return metrics


def parse(text: str) -> Samples:
    """{sample name: {sorted labels: value}} of a text exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def scrape(metrics: MonitorMetrics) -> Samples:
    body, _ = metrics.exposition(None)
    return parse(body.decode())


def query_names(text: str) -> set[str]:
    """The names a user queries: counters with _total, histograms by their base name."""
    names = set()
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):
            continue
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def by_labels(samples: Mapping[tuple[tuple[str, str], ...], float], **match: str) -> float:
    (value,) = [v for k, v in samples.items() if match.items() <= dict(k).items()]
    return value
