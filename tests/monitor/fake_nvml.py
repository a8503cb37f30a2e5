"""A stand-in for the pynvml module: the NVML calls GpuCollector makes, and nothing else.

Values follow NVML's documented formats (nvml.h): UUIDs "GPU-" plus 8-4-4-4-12 hex, as bytes
the way nvidia-ml-py returns them; utilisation in percent; memory in bytes; temperature in
whole degrees C; power in milliwatts; ECC counts as unsigned integers. Errors are the real
pynvml exception classes. Any other attribute raises, so a collector that calls something
the fake does not know fails its test instead of reading a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pynvml


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeGpu:
    uuid: str
    name: str
    gpu_percent: int = 0
    memory_percent: int = 0
    memory_total: int = 0
    memory_used: int = 0
    temperature: int = 40
    power_mw: int | None = 100_000  # None: not supported (many consumer boards)
    power_limit_mw: int | None = 700_000
    ecc: tuple[int, int] | None = (0, 0)  # (corrected, uncorrected); None: no ECC
    lost: bool = False  # every call on this GPU fails: NVMLError_GpuIsLost


@dataclass(frozen=True, slots=True)
class Utilization:
    gpu: int
    memory: int


@dataclass(frozen=True, slots=True)
class Memory:
    total: int
    free: int
    used: int


H200 = FakeGpu(
    uuid="GPU-6f2a8c3e-1b4d-4e5f-9a7b-0c1d2e3f4a5b",
    name="NVIDIA H200",
    gpu_percent=87,
    memory_percent=41,
    memory_total=150_754_820_096,  # 143771 MiB, as nvidia-smi shows an H200
    memory_used=96_636_764_160,
    temperature=64,
    power_mw=612_345,
    power_limit_mw=700_000,
    ecc=(3, 1),
)
RTX = FakeGpu(
    uuid="GPU-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    name="NVIDIA GeForce RTX 4090",
    gpu_percent=5,
    memory_total=25_757_220_864,
    memory_used=1_073_741_824,
    temperature=38,
    power_mw=None,
    power_limit_mw=None,
    ecc=None,
)


@dataclass(slots=True)
class FakeNvml:
    """Behaves as pynvml does for the calls below. `init_error`: what nvmlInit raises."""

    gpus: list[FakeGpu] = field(default_factory=list)
    init_error: type[pynvml.NVMLError] | None = None
    initialised: bool = False
    shutdowns: int = 0

    # the constants and exception classes of the real module
    NVMLError = pynvml.NVMLError
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_VOLATILE_ECC = pynvml.NVML_VOLATILE_ECC
    NVML_MEMORY_ERROR_TYPE_CORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # Python's own protocols (copy, repr) ask for these
            raise AttributeError(name)
        raise AssertionError(f"the collector used pynvml.{name}, which the fake does not have")

    def _gpu(self, handle: int) -> FakeGpu:
        if not self.initialised:
            raise pynvml.NVMLError_Uninitialized()
        gpu = self.gpus[handle]
        if gpu.lost:
            raise pynvml.NVMLError_GpuIsLost()
        return gpu

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error()
        self.initialised = True

    def nvmlShutdown(self) -> None:
        if not self.initialised:
            raise pynvml.NVMLError_Uninitialized()
        self.initialised = False
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        if not self.initialised:
            raise pynvml.NVMLError_Uninitialized()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError_InvalidArgument()
        self._gpu(index)
        return index  # a handle is opaque to callers; an index serves

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return self._gpu(handle).uuid.encode()

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Utilization:
        gpu = self._gpu(handle)
        return Utilization(gpu=gpu.gpu_percent, memory=gpu.memory_percent)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Memory:
        gpu = self._gpu(handle)
        return Memory(
            total=gpu.memory_total, free=gpu.memory_total - gpu.memory_used, used=gpu.memory_used
        )

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU, sensor
        return self._gpu(handle).temperature

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        power = self._gpu(handle).power_mw
        if power is None:
            raise pynvml.NVMLError_NotSupported()
        return power

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        limit = self._gpu(handle).power_limit_mw
        if limit is None:
            raise pynvml.NVMLError_NotSupported()
        return limit

    def nvmlDeviceGetTotalEccErrors(self, handle: int, error_type: int, counter_type: int) -> int:
        assert counter_type == pynvml.NVML_VOLATILE_ECC, counter_type
        ecc = self._gpu(handle).ecc
        if ecc is None:
            raise pynvml.NVMLError_NotSupported()
        corrected, uncorrected = ecc
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED:
            return corrected
        assert error_type == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, error_type
        return uncorrected
