"""The GPU collector: the real "no driver" path with the real pynvml, the rest with a fake NVML."""

from __future__ import annotations

import dataclasses
import logging

import pynvml
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.fake_nvml import H200, RTX, FakeNvml
from ollama_fleet.errors import ConfigError
from ollama_fleet.monitor.gpu import GpuCollector

GPU_LOG = "ollama_fleet.monitor.gpu"


def scrape(collector: GpuCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}} of one scrape through a real registry."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def gpu_labels(index: int, gpu: object, **more: str) -> tuple[tuple[str, str], ...]:
    uuid, name = getattr(gpu, "uuid"), getattr(gpu, "name")  # noqa: B009
    return tuple(sorted({"gpu": str(index), "uuid": uuid, "name": name, **more}.items()))


def gpu_lines(collector: GpuCollector) -> list[str]:
    return [name for name in scrape(collector) if name != "ollama_fleet_gpu_collector_up"]


def test_real_pynvml_without_a_driver_reports_no_driver_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the real nvmlInit, which fails to load libnvidia-ml where no NVIDIA driver is
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver: benchmarks/monitor/gpu_probe.py covers it")
    with caplog.at_level(logging.INFO, logger=GPU_LOG):
        collector = GpuCollector.start("auto")
        first, second = scrape(collector), scrape(collector)
    assert first == second == {"ollama_fleet_gpu_collector_up": {(("reason", "no_driver"),): 0.0}}
    lines = [r.getMessage() for r in caplog.records if r.name == GPU_LOG]
    assert lines == ["GPU metrics: none, NVML does not load (NVMLError_LibraryNotFound)"]


def test_missing_library_is_no_library(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    with caplog.at_level(logging.INFO, logger=GPU_LOG):
        collector = GpuCollector.start("auto")
    assert scrape(collector) == {
        "ollama_fleet_gpu_collector_up": {(("reason", "no_library"),): 0.0}
    }
    assert len([r for r in caplog.records if r.name == GPU_LOG]) == 1


def test_off_never_touches_nvml() -> None:
    fake = FakeNvml(gpus=[H200])
    collector = GpuCollector.start("off", nvml=fake)
    assert not fake.initialised
    assert scrape(collector) == {"ollama_fleet_gpu_collector_up": {(("reason", "off"),): 0.0}}


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="gpu: 'on' is not one of auto, off"):
        GpuCollector.start("on", nvml=FakeNvml())


@pytest.mark.parametrize(
    "init_error, reason",
    [
        (pynvml.NVMLError_DriverNotLoaded, "no_driver"),
        (pynvml.NVMLError_NoPermission, "no_driver"),
        (None, "no_gpus"),
    ],
    ids=["driver-not-loaded", "no-permission", "no-gpus"],
)
def test_absent_states(init_error: type[pynvml.NVMLError] | None, reason: str) -> None:
    fake = FakeNvml(gpus=[], init_error=init_error)
    collector = GpuCollector.start("auto", nvml=fake)
    assert not collector.up
    assert scrape(collector) == {"ollama_fleet_gpu_collector_up": {(("reason", reason),): 0.0}}
    assert not fake.initialised  # a host without GPUs does not keep NVML open


def test_values_in_prometheus_units() -> None:
    fake = FakeNvml(gpus=[H200])
    samples = scrape(GpuCollector.start("auto", nvml=fake))
    h200 = gpu_labels(0, H200)
    assert samples["ollama_fleet_gpu_collector_up"] == {(("reason", "ok"),): 1.0}
    assert samples["ollama_fleet_gpu_utilization_ratio"] == {h200: 0.87}
    assert samples["ollama_fleet_gpu_memory_used_bytes"] == {h200: 96_636_764_160}
    assert samples["ollama_fleet_gpu_memory_total_bytes"] == {h200: 150_754_820_096}
    assert samples["ollama_fleet_gpu_temperature_celsius"] == {h200: 64}
    assert samples["ollama_fleet_gpu_power_watts"] == {h200: pytest.approx(612.345)}
    assert samples["ollama_fleet_gpu_power_limit_watts"] == {h200: 700.0}
    assert samples["ollama_fleet_gpu_ecc_errors_total"] == {
        gpu_labels(0, H200, type="corrected"): 3,
        gpu_labels(0, H200, type="uncorrected"): 1,
    }
    # the UUID arrives as bytes from NVML and leaves as text
    assert H200.uuid in dict(h200).values()


def test_unsupported_metrics_are_left_out_for_that_gpu_only() -> None:
    samples = scrape(GpuCollector.start("auto", nvml=FakeNvml(gpus=[H200, RTX])))
    rtx = gpu_labels(1, RTX)
    assert set(samples["ollama_fleet_gpu_power_watts"]) == {gpu_labels(0, H200)}
    ecc = samples["ollama_fleet_gpu_ecc_errors_total"]
    assert {dict(labels)["gpu"] for labels in ecc} == {"0"}
    assert samples["ollama_fleet_gpu_temperature_celsius"][rtx] == 38
    assert samples["ollama_fleet_gpu_utilization_ratio"][rtx] == 0.05


def test_a_failing_gpu_is_reported_once_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNvml(gpus=[H200, RTX])
    collector = GpuCollector.start("auto", nvml=fake)
    fake.gpus[1] = dataclasses.replace(RTX, lost=True)
    with caplog.at_level(logging.INFO, logger=GPU_LOG):
        scrape(collector)
        samples = scrape(collector)
    assert set(samples["ollama_fleet_gpu_temperature_celsius"]) == {gpu_labels(0, H200)}
    assert samples["ollama_fleet_gpu_read_errors_total"] == {(("gpu", "1"),): 2.0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["GPU 1 left out of the metrics: NVML says NVMLError_GpuIsLost"]


def test_close_shuts_nvml_down_once() -> None:
    fake = FakeNvml(gpus=[H200])
    collector = GpuCollector.start("auto", nvml=fake)
    collector.close()
    collector.close()
    assert fake.shutdowns == 1
    assert scrape(collector) == {"ollama_fleet_gpu_collector_up": {(("reason", "off"),): 0.0}}


def test_the_fake_fails_on_calls_it_does_not_know() -> None:
    with pytest.raises(AssertionError, match="nvmlDeviceGetFanSpeed"):
        FakeNvml().nvmlDeviceGetFanSpeed(0)


def test_gpu_metric_names() -> None:
    collector = GpuCollector.start("auto", nvml=FakeNvml(gpus=[H200]))
    assert sorted(gpu_lines(collector)) == [
        "ollama_fleet_gpu_ecc_errors_total",
        "ollama_fleet_gpu_memory_total_bytes",
        "ollama_fleet_gpu_memory_used_bytes",
        "ollama_fleet_gpu_power_limit_watts",
        "ollama_fleet_gpu_power_watts",
        "ollama_fleet_gpu_temperature_celsius",
        "ollama_fleet_gpu_utilization_ratio",
    ]
