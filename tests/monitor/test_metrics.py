"""MonitorMetrics: what each finished check shows in the exposition, and what it never shows."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.fake_nvml import H200, RTX, FakeNvml
from monitor.metrics_samples import (
    API_KEY,
    GPU_1,
    GPU_2,
    NOW,
    by_labels,
    labels,
    populate,
    populated,
    query_names,
    result,
    scrape,
)
from ollama_fleet.checks.http import make_client
from ollama_fleet.checks.model import FailureClass, RequiredModel, Target, fail, warn
from ollama_fleet.checks.runner import run_one
from ollama_fleet.checks.settings import ProbeSettings
from ollama_fleet.monitor.gpu import GpuCollector
from ollama_fleet.monitor.metrics import MAX_MODELS_PER_TARGET, MonitorMetrics
from ollama_fleet.monitor.model import LoadedModel, Severity
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import free_port, serve_in_thread

DOCS = Path(__file__).parents[2] / "docs" / "monitor.md"
P = "ollama_fleet_"


def test_status_success_and_counts_per_check() -> None:
    samples = scrape(populated())
    success = samples[P + "check_success"]
    assert success[labels(target="gpu-1", check="connectivity")] == 1
    assert success[labels(target="gpu-1", check="tls")] == 1  # a warn is still up
    assert success[labels(target="gpu-1", check="models")] == 0
    assert success[labels(target="gpu-2", check="connectivity")] == 0
    status = samples[P + "check_status"]
    tls = {
        s: by_labels(status, target="gpu-1", check="tls", status=s) for s in ("ok", "warn", "fail")
    }
    assert tls == {"ok": 0, "warn": 1, "fail": 0}
    runs = samples[P + "check_runs_total"]
    assert by_labels(runs, target="gpu-1", check="models", status="fail") == 1
    assert by_labels(runs, target="gpu-1", check="models", status="ok") == 0  # there for rate()
    assert samples[P + "check_failures_total"] == {
        labels(target="gpu-1", check="tls", failure_class="tls_expired"): 1,
        labels(target="gpu-1", check="models", failure_class="model_missing"): 1,
        labels(target="gpu-1", check="exposure", failure_class="exposed"): 1,
        labels(target="gpu-2", check="connectivity", failure_class="refused"): 1,
    }
    assert (
        samples[P + "check_last_run_timestamp_seconds"][
            labels(target="gpu-2", check="connectivity")
        ]
        == NOW
    )


def test_counters_count_every_run_and_status_follows_the_latest() -> None:
    metrics = MonitorMetrics(clock=lambda: NOW)
    metrics.observe(result(GPU_2, "connectivity", fail(FailureClass.REFUSED, "refused")), GPU_2)
    metrics.observe(result(GPU_2, "connectivity", fail(FailureClass.DNS, "no such host")), GPU_2)
    metrics.observe(result(GPU_2, "connectivity"), GPU_2)
    samples = scrape(metrics)
    assert samples[P + "check_success"] == {labels(target="gpu-2", check="connectivity"): 1}
    runs = samples[P + "check_runs_total"]
    assert by_labels(runs, status="fail") == 2 and by_labels(runs, status="ok") == 1
    assert {dict(k)["failure_class"] for k in samples[P + "check_failures_total"]} == {
        "refused",
        "dns",
    }


def test_duration_buckets_reach_minutes() -> None:
    metrics = MonitorMetrics()
    for seconds in (0.04, 3.4, 95.0, 400.0):
        metrics.observe(result(GPU_2, "chat", elapsed_ms=seconds * 1000), GPU_2)
    buckets = {
        dict(k)["le"]: v for k, v in scrape(metrics)[P + "check_duration_seconds_bucket"].items()
    }
    assert buckets["0.05"] == 1
    assert buckets["5.0"] == 2
    assert buckets["60.0"] == 2 and buckets["120.0"] == 3
    assert buckets["300.0"] == 3 and buckets["+Inf"] == 4
    assert scrape(metrics)[P + "check_duration_seconds_sum"] == {
        labels(target="gpu-2", check="chat"): 498.44
    }


def test_chat_first_token_and_rate() -> None:
    samples = scrape(populated())
    assert samples[P + "chat_first_token_seconds_sum"] == {labels(target="gpu-1"): 0.42}
    first = samples[P + "chat_first_token_seconds_bucket"]
    assert first[labels(target="gpu-1", le="0.25")] == 0
    assert first[labels(target="gpu-1", le="0.5")] == 1
    assert samples[P + "chat_tokens_per_second"] == {labels(target="gpu-1"): 61.5}
    assert samples[P + "chat_stream_tokens_per_second_count"] == {labels(target="gpu-1"): 1}


def test_a_failed_chat_drops_the_rate_but_keeps_the_history() -> None:
    metrics = populated()
    metrics.observe(result(GPU_1, "chat", fail(FailureClass.SERVER_ERROR, "500")), GPU_1)
    samples = scrape(metrics)
    assert P + "chat_tokens_per_second" not in samples
    assert samples[P + "chat_first_token_seconds_count"] == {labels(target="gpu-1"): 1}


def test_certificate_days_left_is_counted_at_scrape_time() -> None:
    now = [NOW]
    metrics = MonitorMetrics(clock=lambda: now[0])
    populate(metrics)
    expiry = scrape(metrics)[P + "tls_cert_expiry_timestamp_seconds"]
    assert expiry == {labels(target="gpu-1"): NOW + 10 * 86400}
    assert scrape(metrics)[P + "tls_cert_seconds_left"] == {labels(target="gpu-1"): 10 * 86400}
    now[0] += 86400 * 2.5
    assert scrape(metrics)[P + "tls_cert_seconds_left"] == {labels(target="gpu-1"): 7.5 * 86400}


def test_a_handshake_without_a_certificate_drops_the_expiry() -> None:
    metrics = populated()
    metrics.observe(result(GPU_1, "tls", fail(FailureClass.TLS_TIMEOUT, "no handshake")), GPU_1)
    samples = scrape(metrics)
    assert P + "tls_cert_seconds_left" not in samples
    assert P + "tls_cert_expiry_timestamp_seconds" not in samples


def test_models_required_and_present() -> None:
    samples = scrape(populated())
    assert samples[P + "models_required"] == {labels(target="gpu-1"): 2}
    assert samples[P + "models_present"] == {labels(target="gpu-1"): 2}
    assert samples[P + "model_present"] == {
        labels(target="gpu-1", model="llama3.2:latest", required="true"): 1,
        labels(target="gpu-1", model="qwen2.5:7b", required="true"): 0,
        labels(target="gpu-1", model="nomic-embed-text:latest", required="false"): 1,
    }


def test_models_unknown_while_the_host_does_not_answer() -> None:
    metrics = populated()
    metrics.observe(result(GPU_1, "models", fail(FailureClass.REFUSED, "refused")), GPU_1)
    samples = scrape(metrics)
    assert P + "model_present" not in samples  # no "missing" alert for a host that is down
    assert samples[P + "models_required"] == {labels(target="gpu-1"): 2}


def test_model_names_are_capped_per_target_required_first() -> None:
    target = Target(name="big", url="http://big", required_models=(RequiredModel(name="zz"),))
    listed = [f"m{i:03d}:latest" for i in range(250)]
    metrics = MonitorMetrics()
    metrics.observe(result(target, "models", present=listed), target)
    metrics.set_loaded("big", [LoadedModel(name=n, size_bytes=1, vram_bytes=1) for n in listed])
    samples = scrape(metrics)
    present = samples[P + "model_present"]
    assert len(present) == MAX_MODELS_PER_TARGET == 100
    assert present[labels(target="big", model="zz:latest", required="true")] == 0
    assert len(samples[P + "model_loaded"]) == MAX_MODELS_PER_TARGET
    assert samples[P + "models_present"] == {labels(target="big"): 250}  # the count is exact


def test_loaded_models_are_replaced_and_expiry_is_optional() -> None:
    metrics = populated()
    samples = scrape(metrics)
    assert samples[P + "model_vram_bytes"] == {
        labels(target="gpu-1", model="llama3.2:latest"): 3_338_801_152,
        labels(target="gpu-1", model="nomic-embed-text:latest"): 0,
    }
    assert samples[P + "model_expiry_timestamp_seconds"] == {
        labels(target="gpu-1", model="llama3.2:latest"): NOW + 300
    }
    metrics.set_loaded("gpu-1", [])
    after = scrape(metrics)
    assert not {P + "model_loaded", P + "model_vram_bytes", P + "model_size_bytes"} & set(after)


def test_duplicate_names_make_one_series() -> None:
    metrics = MonitorMetrics()
    twice = [LoadedModel(name="a:1b", size_bytes=n, vram_bytes=n) for n in (1, 2)]
    metrics.set_loaded("gpu-2", twice)
    metrics.observe(result(GPU_2, "models", present=["a:1b", "a:1b"]), GPU_2)
    samples = scrape(metrics)
    assert samples[P + "model_size_bytes"] == {labels(target="gpu-2", model="a:1b"): 2}
    assert len(samples[P + "model_present"]) == 1


def test_version_info_and_its_bound() -> None:
    metrics = populated()
    assert scrape(metrics)[P + "ollama_version_info"] == {
        labels(target="gpu-1", version="0.5.7"): 1
    }
    metrics.observe(result(GPU_1, "connectivity", version="0." + "9" * 500), GPU_1)
    (key,) = scrape(metrics)[P + "ollama_version_info"]
    assert len(dict(key)["version"]) == 64


def test_exposure_reports_only_the_ports_that_must_be_closed() -> None:
    metrics = populated()
    assert scrape(metrics)[P + "exposure_port_open"] == {
        labels(target="gpu-1", port="11434"): 1,
        labels(target="gpu-1", port="22"): 0,
    }
    metrics.observe(result(GPU_1, "exposure", ports={"11434": "dns", "22": "dns"}), GPU_1)
    assert P + "exposure_port_open" not in scrape(metrics)


def test_alert_firing_is_one_hot_per_severity() -> None:
    metrics = populated()
    firing = scrape(metrics)[P + "alert_firing"]
    assert by_labels(firing, target="gpu-1", check="models", severity="critical") == 1
    assert by_labels(firing, target="gpu-1", check="models", severity="warning") == 0
    assert by_labels(firing, target="gpu-1", check="tls", severity="warning") == 1
    assert by_labels(firing, target="gpu-2", check="connectivity", severity="critical") == 0
    metrics.set_alert("gpu-1", "models", None)
    resolved = scrape(metrics)[P + "alert_firing"]
    assert by_labels(resolved, target="gpu-1", check="models", severity="critical") == 0


def test_the_monitors_own_health() -> None:
    samples = scrape(populated())
    assert samples[P + "monitor_info"] == {labels(version="9.9.9"): 1}
    assert samples[P + "monitor_checks_queued"] == {(): 2}
    assert samples[P + "monitor_checks_in_flight"] == {(): 5}
    assert samples[P + "monitor_scheduler_lag_seconds_count"] == {(): 1}
    assert samples[P + "monitor_scheduler_lag_seconds_bucket"][labels(le="0.25")] == 0
    assert samples[P + "monitor_scheduler_lag_seconds_bucket"][labels(le="0.5")] == 1
    assert samples[P + "monitor_alert_deliveries_total"] == {
        labels(receiver="ops-webhook", result="ok"): 1,
        labels(receiver="ops-webhook", result="error"): 1,
    }


def test_forget_drops_every_series_of_a_removed_target() -> None:
    metrics = populated()
    metrics.forget(["gpu-2"])
    text = metrics.exposition(None)[0].decode()
    assert 'target="gpu-1"' not in text
    assert 'target="gpu-2"' in text
    assert P + "monitor_info" in text  # the monitor's own series stay
    metrics.forget([])
    assert "target=" not in metrics.exposition(None)[0].decode()


def test_forget_drops_the_series_of_a_check_no_longer_scheduled() -> None:
    metrics = populated()
    metrics.set_alert("gpu-1", "chat", Severity.CRITICAL)
    kept = [("gpu-1", "connectivity"), ("gpu-2", "connectivity"), ("gpu-2", "chat")]
    metrics.forget(["gpu-1", "gpu-2"], checks_kept=kept)
    text = metrics.exposition(None)[0].decode()
    assert 'check_success{check="chat",target="gpu-1"}' not in text
    assert 'alert_firing{check="chat",severity="critical",target="gpu-1"}' not in text
    assert 'check_success{check="connectivity",target="gpu-1"}' in text


def test_no_secret_or_message_reaches_the_exposition() -> None:
    text = populated().exposition(None)[0].decode()
    messages = ("missing: qwen", "port 11434 accepts", "connection refused by", "expires in")
    for leak in (API_KEY, "hunter2", "ops:", "gpu-1.example", "10.0.0.7", *messages):
        assert leak not in text


def test_formats_follow_the_accept_header() -> None:
    metrics = populated()
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"# TYPE ollama_fleet_monitor info" in body
    for accept in (None, "text/plain", "*/*"):
        body, content_type = metrics.exposition(accept)
        assert content_type.startswith("text/plain; version=0.0.4")
        assert b"# EOF" not in body


def test_own_registry_never_the_global_one() -> None:
    first, second = populated(), MonitorMetrics()
    assert b"ollama_fleet_check_success" not in generate_latest(prometheus_client.REGISTRY)
    assert b"ollama_fleet_check_success" not in second.exposition(None)[0]
    assert first.registry is not second.registry


def test_extra_collectors_share_the_exposition() -> None:
    gpu = GpuCollector.start("auto", nvml=FakeNvml(gpus=[H200]))
    metrics = MonitorMetrics(collectors=[gpu])
    text = metrics.exposition(None)[0].decode()
    assert 'ollama_fleet_gpu_collector_up{reason="ok"} 1.0' in text
    assert "ollama_fleet_gpu_temperature_celsius{" in text


def test_warn_and_fail_in_one_result_count_the_worst() -> None:
    metrics = MonitorMetrics()
    findings = (warn(FailureClass.SLOW, "slow"), fail(FailureClass.AUTH, "401"))
    metrics.observe(result(GPU_2, "auth", *findings), GPU_2)
    assert scrape(metrics)[P + "check_failures_total"] == {
        labels(target="gpu-2", check="auth", failure_class="auth"): 1
    }


# -- the docs' table cannot drift -----------------------------------------------------------------


def documented(section: str) -> set[str]:
    """The metric names in the first column of the docs' table under `## section`."""
    text = DOCS.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(ollama_fleet_\w+)`", body, re.MULTILINE))


def test_docs_table_lists_exactly_the_exported_metrics() -> None:
    exported = query_names(populated().exposition(None)[0].decode())
    assert documented("Metrics") == exported


def test_docs_table_lists_exactly_the_gpu_metrics() -> None:
    registry = CollectorRegistry()
    # a lost second GPU: the read errors show only once a GPU failed a scrape
    fake = FakeNvml(gpus=[H200, dataclasses.replace(RTX, lost=True)])
    registry.register(GpuCollector.start("auto", nvml=fake))
    exported = query_names(generate_latest(registry).decode())
    assert documented("GPU metrics") == exported


# -- the probes' real details, not only the samples' --------------------------------------------


@pytest.mark.integration
def test_real_checks_against_the_simulator_fill_the_series() -> None:
    """The probes' details conventions, as the real checks write them, reach the metrics."""
    simulator = create_app(SimulatorConfig(tokens_per_second=0))
    with serve_in_thread(simulator) as port:
        target = Target(
            name="sim",
            url=f"http://127.0.0.1:{port}",
            required_models=(RequiredModel(name="llama3.2:1b"), RequiredModel(name="absent:1b")),
            closed_ports=(free_port(),),
        )
        metrics = MonitorMetrics()

        async def run_all() -> None:
            settings = ProbeSettings()
            async with make_client(target, settings) as client:
                for check in ("connectivity", "models", "chat", "exposure"):
                    metrics.observe(
                        await run_one(target, check, settings=settings, client=client), target
                    )

        asyncio.run(run_all())
    samples = scrape(metrics)
    assert samples[P + "check_success"][labels(target="sim", check="connectivity")] == 1
    (version,) = samples[P + "ollama_version_info"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", dict(version)["version"])
    present = samples[P + "model_present"]
    assert present[labels(target="sim", model="llama3.2:1b", required="true")] == 1
    assert present[labels(target="sim", model="absent:1b", required="true")] == 0
    assert present[labels(target="sim", model="qwen2.5:0.5b", required="false")] == 1
    assert samples[P + "chat_first_token_seconds_count"] == {labels(target="sim"): 1}
    assert samples[P + "chat_tokens_per_second"][labels(target="sim")] > 0
    (port_open,) = samples[P + "exposure_port_open"].values()
    assert port_open == 0  # a free port refuses: closed, as it must be
