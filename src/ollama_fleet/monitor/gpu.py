"""GPU metrics through NVML (nvidia-ml-py): per GPU utilisation, memory, temperature, power, ECC.

Absent states are normal (a controller without a GPU, a host without the driver): the
collector then says why once in the log and exports `ollama_fleet_gpu_collector_up 0` with a
bounded `reason`, on every scrape, without logging again. A GPU that fails during a scrape is
logged once (per GPU and error) and left out of that scrape; a metric the GPU does not support
(NVMLError_NotSupported) is left out for that GPU.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ollama_fleet.errors import ConfigError

log = logging.getLogger(__name__)

GPU_MODES = ("auto", "off")
# why the collector exports nothing but `up 0`; "ok" while it reads the GPUs
REASONS = ("ok", "no_library", "no_driver", "no_gpus", "off")
GPU_LABELS = ["gpu", "uuid", "name"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuReading:
    """One GPU's values at one scrape; None where the GPU does not support a metric."""

    index: int
    uuid: str
    name: str
    utilization_ratio: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    # {"corrected" | "uncorrected": errors since the driver loaded (NVML's volatile counters)}
    ecc_errors: dict[str, int] = field(default_factory=dict)


def _text(value: Any) -> str:
    # nvmlDeviceGetUUID returns bytes in nvidia-ml-py 12 and 13, nvmlDeviceGetName str
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def read_gpu(nvml: Any, index: int) -> GpuReading:
    """Read GPU `index`; raises the NVMLError of a failing GPU (NotSupported only skips)."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)

    def supported(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except nvml.NVMLError_NotSupported:
            return None

    utilization = supported(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    memory = supported(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    power_mw = supported(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    limit_mw = supported(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))

    def ecc_count(error_type: int) -> Any:
        return nvml.nvmlDeviceGetTotalEccErrors(handle, error_type, nvml.NVML_VOLATILE_ECC)

    ecc = {
        "corrected": supported(lambda: ecc_count(nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED)),
        "uncorrected": supported(lambda: ecc_count(nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)),
    }
    return GpuReading(
        index=index,
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        # NVML's utilisation is a percentage of the last sample period
        utilization_ratio=None if utilization is None else utilization.gpu / 100,
        memory_used_bytes=None if memory is None else int(memory.used),
        memory_total_bytes=None if memory is None else int(memory.total),
        # the older call: every driver has it, nvmlDeviceGetTemperatureV only recent ones
        temperature_celsius=supported(
            lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
        ),
        power_watts=None if power_mw is None else power_mw / 1000,  # NVML reports milliwatts
        power_limit_watts=None if limit_mw is None else limit_mw / 1000,
        ecc_errors={kind: int(count) for kind, count in ecc.items() if count is not None},
    )


def gpu_families(readings: list[GpuReading]) -> list[Metric]:
    """The per-GPU families (pure): a family only where some GPU has a value."""

    def gauge(name: str, documentation: str, value: Callable[[GpuReading], float | None]) -> Metric:
        family = GaugeMetricFamily(f"ollama_fleet_gpu_{name}", documentation, labels=GPU_LABELS)
        for reading in readings:
            if (number := value(reading)) is not None:
                family.add_metric([str(reading.index), reading.uuid, reading.name], number)
        return family

    ecc = CounterMetricFamily(
        "ollama_fleet_gpu_ecc_errors",
        "ECC memory errors since the driver loaded (NVML volatile counters).",
        labels=[*GPU_LABELS, "type"],
    )
    for reading in readings:
        for kind, count in sorted(reading.ecc_errors.items()):
            ecc.add_metric([str(reading.index), reading.uuid, reading.name, kind], count)
    families = [
        gauge("utilization_ratio", "GPU busy share of the last sample period (0..1).",
              lambda r: r.utilization_ratio),
        gauge("memory_used_bytes", "GPU memory in use.", lambda r: r.memory_used_bytes),
        gauge("memory_total_bytes", "GPU memory installed.", lambda r: r.memory_total_bytes),
        gauge("temperature_celsius", "GPU core temperature.", lambda r: r.temperature_celsius),
        gauge("power_watts", "GPU power draw.", lambda r: r.power_watts),
        gauge("power_limit_watts", "GPU power limit in force.", lambda r: r.power_limit_watts),
        ecc,
    ]  # fmt: skip
    return [family for family in families if family.samples]


def _up(up: bool, reason: str) -> Metric:
    family = GaugeMetricFamily(
        "ollama_fleet_gpu_collector_up",
        "1 while NVML reads the GPUs; 0 with the reason it cannot.",
        labels=["reason"],
    )
    family.add_metric([reason], int(up))
    return family


class GpuCollector(Collector):
    """A prometheus_client collector of NVML's GPU facts; make one with `GpuCollector.start`."""

    def __init__(self, *, nvml: Any | None, count: int, reason: str) -> None:
        self._nvml = nvml
        self._count = count
        self.reason = reason
        self._lock = threading.Lock()
        self._reported: set[tuple[int, str]] = set()
        self._errors: dict[int, int] = {}

    @classmethod
    def start(cls, mode: str = "auto", *, nvml: Any | None = None) -> GpuCollector:
        """Initialise NVML (`nvml`: the pynvml module, found by import when None).

        Never raises for a missing library, driver or GPU: the collector then exports
        `up 0` with the reason, logged here once. `mode` "off" does not touch NVML.
        """
        if mode not in GPU_MODES:
            raise ConfigError(f"gpu: {mode!r} is not one of {', '.join(GPU_MODES)}")
        if mode == "off":
            log.info("GPU metrics: off (gpu: off)")
            return cls(nvml=None, count=0, reason="off")
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError:
                log.info("GPU metrics: none, the nvidia-ml-py package (pynvml) is not installed")
                return cls(nvml=None, count=0, reason="no_library")
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no driver
            log.info("GPU metrics: none, NVML does not load (%s)", type(exc).__name__)
            return cls(nvml=None, count=0, reason="no_driver")
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            log.info("GPU metrics: none, NVML cannot count the GPUs (%s)", type(exc).__name__)
            count = 0
        if count == 0:
            log.info("GPU metrics: none, NVML finds no GPU")
            nvml.nvmlShutdown()
            return cls(nvml=None, count=0, reason="no_gpus")
        log.info("GPU metrics: %d GPU(s) through NVML", count)
        return cls(nvml=nvml, count=count, reason="ok")

    @property
    def up(self) -> bool:
        return self._nvml is not None

    def close(self) -> None:
        """Release NVML; afterwards the collector exports only `up 0` (reason off)."""
        with self._lock:
            if self._nvml is not None:
                self._nvml.nvmlShutdown()
                self._nvml, self.reason = None, "off"

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._nvml is None:
                return iter([_up(False, self.reason)])
            readings = [r for r in map(self._read, range(self._count)) if r is not None]
            errors = CounterMetricFamily(
                "ollama_fleet_gpu_read_errors",
                "Scrapes that left a GPU out because NVML failed to read it.",
                labels=["gpu"],
            )
            for index, count in sorted(self._errors.items()):
                errors.add_metric([str(index)], count)
            families = [_up(True, "ok"), *gpu_families(readings), errors]
            return iter([family for family in families if family.samples])

    def _read(self, index: int) -> GpuReading | None:
        assert self._nvml is not None
        try:
            return read_gpu(self._nvml, index)
        except self._nvml.NVMLError as exc:
            self._errors[index] = self._errors.get(index, 0) + 1
            key = (index, type(exc).__name__)
            if key not in self._reported:  # once: a lost GPU fails every scrape
                self._reported.add(key)
                log.warning("GPU %d left out of the metrics: NVML says %s", index, key[1])
            return None
