"""Rules on the GPU: the driver loaded and matching, nvidia-smi's view, Ollama on the GPU."""

from __future__ import annotations

from collections.abc import Iterator

from ollama_fleet.checks.model import FailureClass
from ollama_fleet.diagnose.case import OLLAMA_UNIT, Case, check_evidence
from ollama_fleet.diagnose.facts import GpuFacts
from ollama_fleet.diagnose.findings import Fix, Severity, Where
from ollama_fleet.diagnose.rules.base import Hit

HOT_C = 85


def _gpu(case: Case) -> GpuFacts | None:
    gpu = case.facts.gpu if case.facts is not None else None
    return gpu if gpu is not None and (gpu.nvidia_devices or gpu.smi_installed) else None


def _kernel(case: Case) -> str:
    return (case.facts.kernel if case.facts is not None else None) or "?"


def _gpu_fix(case: Case, note: str) -> Fix | None:
    if case.expect is None:
        return None
    return Fix(command=case.expect.deploy(case.host, "gpu"), where=Where.CONTROLLER, note=note)


def driver_mismatch(case: Case) -> Iterator[Hit]:
    gpu = _gpu(case)
    if gpu is None or not gpu.mismatch:
        return
    yield Hit(
        title="NVIDIA driver/library version mismatch",
        cause="the driver packages were upgraded while the old kernel module stays loaded "
        f"(kernel module {gpu.kernel_module_version or '?'}): until a reboot, no program can "
        "use the GPU",
        evidence=(f"nvidia-smi: {gpu.smi_error}",),
        fix=Fix(
            command="systemctl reboot",
            where=Where.HOST,
            note="loads the new module; the deploy's gpu_allow_reboot does it for you",
        ),
    )


def driver_not_loaded(case: Case) -> Iterator[Hit]:
    gpu = _gpu(case)
    if gpu is None or gpu.mismatch or not gpu.nvidia_devices or "nvidia" in gpu.modules:
        return
    if "vfio_pci" in gpu.modules or (case.expect is not None and not case.expect.gpu):
        return  # GPUs passed through to VMs, or a host the inventory keeps off the GPU role
    evidence = [
        f"PCI: {gpu.nvidia_devices} NVIDIA GPU(s)",
        "/proc/modules: "
        + (", ".join(sorted(m for m in gpu.modules if "nv" in m)) or "no nvidia module"),
    ]
    if gpu.smi_error:
        evidence.append(f"nvidia-smi: {gpu.smi_error}")
    if "nouveau" in gpu.modules:
        cause = "nouveau, the open driver, holds the GPU: the NVIDIA module cannot load"
        fix = _gpu_fix(case, "blacklists nouveau and installs the driver; a reboot follows")
    elif gpu.module_for_kernel is False:
        cause = (
            f"no nvidia module is built for the running kernel {_kernel(case)}: the kernel "
            "was updated without the driver's DKMS module (or its headers)"
        )
        fix = _gpu_fix(case, "builds the DKMS module for this kernel; a reboot follows")
    else:
        cause = "the module is installed but not loaded (it failed to load: see `dmesg`)"
        fix = Fix(command="modprobe nvidia", where=Where.HOST)
    yield Hit(
        title="the NVIDIA driver is not loaded",
        cause=cause,
        evidence=tuple(evidence),
        fix=fix,
    )


def smi_failed(case: Case) -> Iterator[Hit]:
    gpu = _gpu(case)
    if gpu is None or gpu.mismatch or gpu.smi_error is None or "nvidia" not in gpu.modules:
        return
    no_devices = "no devices were found" in gpu.smi_error.lower()
    yield Hit(
        title="nvidia-smi finds no GPU" if no_devices else "nvidia-smi fails",
        cause="the module is loaded but sees no device: the GPU fell off the bus (Xid 79), "
        "is held by a VM passthrough, or needs a reset"
        if no_devices
        else "the driver answers with an error",
        evidence=(f"nvidia-smi: {gpu.smi_error}", f"PCI: {gpu.nvidia_devices} NVIDIA GPU(s)"),
        fix=Fix(command="systemctl reboot", where=Where.HOST, note="if `dmesg` shows Xid errors"),
    )


def smi_missing(case: Case) -> Iterator[Hit]:
    gpu = case.facts.gpu if case.facts is not None else None
    if gpu is None or not gpu.nvidia_devices or gpu.smi_installed:
        return
    if case.expect is not None and not case.expect.gpu:
        return
    yield Hit(
        title=f"{gpu.nvidia_devices} NVIDIA GPU(s) but no driver tools (nvidia-smi)",
        cause="the NVIDIA driver is not installed: Ollama runs on the CPU",
        evidence=(f"PCI: {gpu.nvidia_devices} NVIDIA GPU(s)", "nvidia-smi: not installed"),
        fix=_gpu_fix(case, "installs the driver; a reboot follows"),
        severity=Severity.CRITICAL,
    )


def ollama_on_cpu(case: Case) -> Iterator[Hit]:
    facts = case.facts
    gpu = facts.gpu if facts is not None else None
    api = facts.ollama_api if facts is not None else None
    outside = case.failed_checks(FailureClass.CPU_FALLBACK)
    on_cpu = [m for m in (api.loaded if api else ()) if m.size_vram == 0]
    if gpu is None or not gpu.nvidia_devices or not (on_cpu or outside):
        return
    why = "the NVIDIA driver is not usable (see the other GPU findings)"
    if "nvidia" in gpu.modules and gpu.smi_error is None:
        why = (
            "the driver works, so Ollama could not use it: a missing /dev/nvidia-uvm, a unit "
            "without the GPU devices, or a model larger than the VRAM; see its journal"
        )
    yield Hit(
        title="Ollama runs its models on the CPU on a GPU host",
        cause=why,
        evidence=(
            *(f"on the host: /api/ps: {m.name}: size_vram 0 of {m.size}" for m in on_cpu),
            *check_evidence(outside),
        ),
        fix=Fix(
            command=f"systemctl restart {OLLAMA_UNIT}",
            where=Where.HOST,
            note="after the driver is fixed",
        ),
        explains=tuple(c.check for c in outside),
    )


def gpu_health(case: Case) -> Iterator[Hit]:
    gpu = _gpu(case)
    for card in gpu.gpus if gpu is not None else ():
        if card.ecc_uncorrected:
            yield Hit(
                title=f"GPU {card.index} ({card.name}): "
                f"{card.ecc_uncorrected} uncorrected ECC error(s)",
                cause="memory errors the GPU could not correct: results may be wrong; the card "
                "may need a reset or replacement",
                evidence=(
                    f"nvidia-smi: ecc.errors.uncorrected.volatile.total {card.ecc_uncorrected}",
                ),
            )
        if card.temperature_c is not None and card.temperature_c >= HOT_C:
            yield Hit(
                title=f"GPU {card.index} ({card.name}) runs at {card.temperature_c} °C",
                cause="cooling is failing or the airflow is blocked: the GPU throttles",
                evidence=(f"nvidia-smi: temperature.gpu {card.temperature_c}",),
            )
        if card.persistence is False:
            yield Hit(
                title=f"GPU {card.index} ({card.name}): persistence mode is off",
                cause="the driver is torn down between uses, which slows the first request "
                "(`nvidia-persistenced` keeps it up)",
                evidence=("nvidia-smi: persistence_mode Disabled",),
                fix=Fix(command="nvidia-smi -pm 1", where=Where.HOST),
                severity=Severity.INFO,
            )
