"""The gpu role's Debian 12 distro-driver path, for real, on the lab VM (`make test-gpu-path`).

The lab has no GPU, so `gpu_assume_present` makes the role install as if it had one: Debian's
contrib/non-free components on the VM's own mirrors, the kernel headers metapackage, and the
DKMS build of the NVIDIA module from Debian's non-free archive. It never reboots or runs
nvidia-smi there. Not part of `make test`: under qemu's TCG the initramfs rebuilds and the
DKMS builds (one for the running kernel, one for the newer kernel that the headers
metapackage brings along) take about 100 minutes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ollama_fleet.lab import LabInfo, run_ssh

pytestmark = pytest.mark.gpu_path

HOST_VARS_INDENT = " " * 10
GPU_VARS = ["gpu_assume_present: true", "nvidia_driver_source: distro"]


def deploy_gpu(inventory: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_fleet",
            "deploy",
            str(inventory),
            "-y",
            "--roles",
            "gpu",
            "--checks",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=3 * 3600,  # two DKMS builds under TCG: ~100 min
    )
    sys.stdout.write(done.stdout[-6000:] + done.stderr[-3000:])  # shown with -s, and in the note
    return done


@pytest.fixture(scope="module")
def inventory(lab_vm: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gpu-path") / "lab.yml"
    extra = "".join(f"{HOST_VARS_INDENT}{line}\n" for line in GPU_VARS)
    path.write_text(lab_vm.inventory.read_text() + extra)
    return path


@pytest.fixture(scope="module")
def first(inventory: Path) -> subprocess.CompletedProcess[str]:
    return deploy_gpu(inventory)


def test_the_distro_driver_installs_with_its_components_and_headers(
    first: subprocess.CompletedProcess[str], lab_vm: LabInfo
) -> None:
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-4000:]
    assert "[lab] changed gpu: Debian's contrib non-free non-free-firmware components" in out
    assert "[lab] changed gpu: apt-get update for the new source" in out
    assert "[lab] changed gpu: NVIDIA driver" in out
    assert "[lab] changed gpu: driver changed, REBOOT NEEDED" in out
    sources = run_ssh(lab_vm, "cat /etc/apt/sources.list.d/ollama-fleet-nonfree.sources").stdout
    assert "Components: contrib non-free non-free-firmware" in sources
    assert "bookworm-security" in sources  # the VM's own security mirror, not a new one
    installed = run_ssh(
        lab_vm,
        "dpkg-query -W -f '${Package} ${Status}\\n' nvidia-driver dkms "
        "linux-headers-amd64 linux-headers-$(uname -r) firmware-misc-nonfree",
    ).stdout.splitlines()
    assert len(installed) == 5 and all(line.endswith("install ok installed") for line in installed)


def test_dkms_built_the_module_for_the_running_kernel(
    first: subprocess.CompletedProcess[str], lab_vm: LabInfo
) -> None:
    status = run_ssh(lab_vm, "dkms status").stdout
    kernel = run_ssh(lab_vm, "uname -r").stdout.strip()
    assert f"{kernel}, x86_64: installed" in status, status
    assert "nvidia" in status
    module = run_ssh(lab_vm, "modinfo -F filename nvidia-current || modinfo -F filename nvidia")
    assert module.stdout.strip().endswith(".ko"), module.stdout


def test_a_second_deploy_changes_nothing_and_still_says_reboot(
    first: subprocess.CompletedProcess[str], inventory: Path, lab_vm: LabInfo
) -> None:
    marker = run_ssh(lab_vm, "cat /var/lib/ollama-fleet/reboot-required").stdout.strip()
    assert marker == run_ssh(lab_vm, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    again = deploy_gpu(inventory)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    assert "gpu: REBOOT NEEDED" in out  # remembered until the host reboots
    assert "[lab] changed" not in out
