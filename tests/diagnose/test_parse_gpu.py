"""NVIDIA GPUs from the PCI bus, nvidia-smi and the kernel's modules.

The lab has no GPU: its capture gives the "no NVIDIA here" shape; the nvidia-smi outputs under
tests/data/diagnose/nvidia/ are written from NVIDIA's documented formats (see its README).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ollama_fleet.diagnose import parse_gpu
from ollama_fleet.diagnose.probe import Output

DATA = Path(__file__).parent.parent / "data" / "diagnose"
NVIDIA = DATA / "nvidia"


def lab() -> dict[str, Output]:
    raw = json.loads((DATA / "lab-healthy.json").read_text())
    return {key: Output(name=key, **value) for key, value in raw.items()}


def smi(case: str) -> Output:
    return Output(name="nvidia_smi", **json.loads((NVIDIA / f"smi-{case}.json").read_text()))


def test_the_lab_has_no_nvidia_at_all() -> None:
    facts = parse_gpu.gpu_facts(lab())
    assert facts is not None
    assert facts.nvidia_devices == 0
    assert not facts.smi_installed and facts.smi_error is None and facts.gpus == ()
    assert "nf_tables" in facts.modules and "nvidia" not in facts.modules
    assert facts.kernel_module_version is None
    assert facts.module_for_kernel is False  # modinfo: Module nvidia not found
    assert not facts.mismatch


def test_two_healthy_gpus() -> None:
    outputs = lab() | {
        "pci": Output(
            name="pci", rc=0, stdout=(NVIDIA / "pci-two-gpus.txt").read_text(), stderr=""
        ),
        "nvidia_smi": smi("two-gpus"),
        "nvidia_version": Output(
            name="nvidia_version", rc=0, stdout=(NVIDIA / "version.txt").read_text(), stderr=""
        ),
        "modules": Output(
            name="modules",
            rc=0,
            stdout="nvidia_uvm 1 0 - Live 0x0\nnvidia 2 1 nvidia_uvm, Live 0x0\n",
            stderr="",
        ),
        "nvidia_module_file": Output(
            name="nvidia_module_file",
            rc=0,
            stdout="/lib/modules/6.1.0-50-amd64/updates/dkms/nvidia.ko\n",
            stderr="",
        ),
    }
    facts = parse_gpu.gpu_facts(outputs)
    assert facts is not None
    assert facts.nvidia_devices == 2  # the HDMI audio function is not a GPU
    assert facts.smi_installed and facts.smi_error is None
    assert [g.index for g in facts.gpus] == [0, 1]
    second = facts.gpus[1]
    assert second.name == "NVIDIA H100 80GB HBM3" and second.driver == "550.54.14"
    assert second.memory_total_mib == 81559 and second.memory_used_mib == 74213
    assert second.ecc_uncorrected == 2 and second.temperature_c == 61
    assert second.persistence is True
    assert facts.modules == frozenset({"nvidia", "nvidia_uvm"})
    assert facts.kernel_module_version == "550.54.14"
    assert facts.module_for_kernel is True


def test_not_available_columns_are_none() -> None:
    gpus = parse_gpu.smi_rows(smi("not-available").stdout)
    assert gpus[0].ecc_uncorrected is None and gpus[0].persistence is False
    assert gpus[1].memory_used_mib is None and gpus[1].temperature_c is None
    assert gpus[1].persistence is None


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("version-mismatch", "Failed to initialize NVML: Driver/library version mismatch"),
        ("no-driver", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA"),
        ("no-devices", "No devices were found"),
        ("gpu-lost", "Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost."),
    ],
)
def test_nvidia_smi_failures_in_its_own_words(case: str, error: str) -> None:
    facts = parse_gpu.gpu_facts(lab() | {"nvidia_smi": smi(case)})
    assert facts is not None and facts.smi_installed
    assert facts.smi_error is not None and facts.smi_error.startswith(error)
    assert facts.gpus == ()
    assert facts.mismatch == (case == "version-mismatch")


def test_a_hung_nvidia_smi() -> None:
    hung = Output(name="nvidia_smi", rc=124, stdout="", stderr="")
    assert parse_gpu.smi_error(hung) == "nvidia-smi timed out after 10 s"


def test_the_open_kernel_modules_version() -> None:
    text = (NVIDIA / "version-open.txt").read_text()
    assert parse_gpu.kernel_module_version(text) == "550.54.14"


@pytest.mark.parametrize(
    "text", ["", "garbage", "0x10de", "a, b, c", "x, y, z, 1, 2, 3, 4, 5", "\x00\n,,,,,,,\n"]
)
def test_garbage_gives_nothing(text: str) -> None:
    assert parse_gpu.nvidia_devices(text) == 0
    assert parse_gpu.smi_rows(text) == ()
    assert parse_gpu.kernel_module_version(text) is None
    assert "0x10de" not in parse_gpu.modules(text) or text == "0x10de"


def test_no_gpu_output_at_all_is_unknown() -> None:
    assert parse_gpu.gpu_facts({}) is None
