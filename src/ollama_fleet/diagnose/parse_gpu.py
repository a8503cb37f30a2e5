"""NVIDIA GPUs from the PCI bus, nvidia-smi's CSV (or its error), the loaded kernel modules.

Pure and total: odd input gives None or empty fields, never an exception.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping

from .facts import Gpu, GpuFacts
from .parse_host import first_line
from .probe import COMMAND_TIMEOUT_S, Output

NVIDIA_VENDOR = "0x10de"
# PCI classes 0x0300xx (VGA) and 0x0302xx (3D controller, the datacenter cards)
_GPU_CLASSES = ("0x0300", "0x0302")
_MODULE_VERSION = re.compile(r"Kernel Module(?: for \S+)?\s+(\d[\w.-]*)")
_FIELDS = 8  # probe.NVIDIA_QUERY's columns


def nvidia_devices(text: str) -> int:
    """NVIDIA display and 3D controllers among "VENDOR CLASS" lines."""
    count = 0
    for line in text.splitlines():
        words = line.lower().split()
        if len(words) == 2 and words[0] == NVIDIA_VENDOR and words[1].startswith(_GPU_CLASSES):
            count += 1
    return count


def smi_rows(text: str) -> tuple[Gpu, ...]:
    """The GPUs in `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`."""
    gpus = []
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        if len(row) != _FIELDS:
            continue
        index = _number(row[0])
        if index is None:
            continue
        gpus.append(
            Gpu(
                index=index,
                name=row[1].strip(),
                driver=row[2].strip(),
                memory_total_mib=_number(row[3]),
                memory_used_mib=_number(row[4]),
                ecc_uncorrected=_number(row[5]),
                temperature_c=_number(row[6]),
                persistence={"enabled": True, "disabled": False}.get(row[7].strip().lower()),
            )
        )
    return tuple(gpus)


def _number(text: str) -> int | None:
    """An integer column; "[N/A]", "[Not Supported]" and other bracketed words are None."""
    text = text.strip()
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None


def smi_error(output: Output) -> str | None:
    """nvidia-smi's own words when it failed ("No devices were found"); None when it worked."""
    if output.ok and smi_rows(output.stdout):
        return None
    if output.timed_out:
        return f"nvidia-smi timed out after {COMMAND_TIMEOUT_S} s"
    line = first_line(output.stdout) or first_line(output.stderr)
    if output.ok:
        return f"nvidia-smi listed no GPU: {line[:200]}" if line else "nvidia-smi listed no GPU"
    return line[:300] if line else f"nvidia-smi exited with status {output.rc}"


def kernel_module_version(text: str) -> str | None:
    """ "550.54.14" from /proc/driver/nvidia/version's NVRM line."""
    match = _MODULE_VERSION.search(text)
    return match.group(1) if match else None


def modules(text: str) -> frozenset[str]:
    """The loaded kernel modules (/proc/modules' first column)."""
    names = (line.split(maxsplit=1)[0] for line in text.splitlines() if line.strip())
    return frozenset(name for name in names if re.fullmatch(r"[\w-]+", name))


def gpu_facts(outputs: Mapping[str, Output]) -> GpuFacts | None:
    """Everything about the GPUs; None when the probe reported none of it."""
    pci = outputs.get("pci")
    smi = outputs.get("nvidia_smi")
    loaded = outputs.get("modules")
    if pci is None and smi is None and loaded is None:
        return None
    version = outputs.get("nvidia_version")
    module_file = outputs.get("nvidia_module_file")
    module_for_kernel: bool | None = None
    if module_file is not None and module_file.ok:
        module_for_kernel = True
    elif module_file is not None and "not found" in module_file.stderr.lower():
        module_for_kernel = False
    smi_installed = smi is not None and not smi.missing
    return GpuFacts(
        nvidia_devices=nvidia_devices(pci.stdout) if pci is not None else 0,
        smi_installed=smi_installed,
        smi_error=smi_error(smi) if smi is not None and smi_installed else None,
        gpus=smi_rows(smi.stdout) if smi is not None and smi.ok else (),
        modules=modules(loaded.stdout) if loaded is not None and loaded.ok else frozenset(),
        kernel_module_version=(
            kernel_module_version(version.stdout) if version is not None and version.ok else None
        ),
        module_for_kernel=module_for_kernel,
    )
