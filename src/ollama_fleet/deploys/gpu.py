"""Role gpu: the NVIDIA driver where there is an NVIDIA GPU; other hosts are skipped.

Role gpu: NVIDIA driver (vendor repository or distribution packages), DKMS, kernel headers,
nouveau blacklisted, an optional container toolkit; reboot only when the driver changed and
gpu_allow_reboot says so. Hosts without an NVIDIA GPU are skipped with a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from ollama_fleet.deploys.common import CACHE_DIR, DeployError, role_vars
from ollama_fleet.deploys.facts import KernelRelease, NvidiaGpu, OsRelease
from ollama_fleet.deploys.operations import checked_file
from ollama_fleet.hostvars import defaults

CUDA_REPO = "https://developer.download.nvidia.com/compute/cuda/repos/{distro}/x86_64"
KEYRING_DEB = f"{CACHE_DIR}/cuda-keyring.deb"
TOOLKIT_KEY = "https://nvidia.github.io/libnvidia-container/gpgkey"
TOOLKIT_REPO = "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)"
TOOLKIT_KEYRING = "/etc/apt/keyrings/nvidia-container-toolkit.gpg"
BLACKLIST = "# written by ollama-fleet: the NVIDIA driver replaces nouveau\nblacklist nouveau\noptions nouveau modeset=0\n"  # noqa: E501


# loaded at boot so /dev/nvidia-uvm exists before ollama.service (NoNewPrivileges=yes stops the
# setuid nvidia-modprobe from creating it later)
MODULES = "# written by ollama-fleet\nnvidia\nnvidia_uvm\n"


@dataclass(frozen=True, slots=True)
class DriverPlan:
    distro: str  # ubuntu2404, ubuntu2204, debian12: the CUDA repository's names
    packages: tuple[str, ...]
    keyring_deb: str | None  # cuda-keyring URL for the vendor source


def supported_distro(os_release: dict[str, str]) -> str | None:
    """The CUDA repository name of a supported OS, or None."""
    key = (os_release.get("ID"), os_release.get("VERSION_ID"))
    return {
        ("ubuntu", "24.04"): "ubuntu2404",
        ("ubuntu", "22.04"): "ubuntu2204",
        ("debian", "12"): "debian12",
    }.get(key)  # type: ignore[arg-type]


def driver_plan(distro: str, branch: str, source: str, kernel: str) -> DriverPlan:
    """The packages for one OS, driver branch and source (pure: tested without a host)."""
    headers = ("dkms", f"linux-headers-{kernel}")
    if source == "vendor":
        keyring = f"{CUDA_REPO.format(distro=distro)}/cuda-keyring_1.1-1_all.deb"
        return DriverPlan(distro, (*headers, f"cuda-drivers-{branch}"), keyring)
    if distro.startswith("ubuntu"):
        packages = (f"nvidia-headless-{branch}-server", f"nvidia-utils-{branch}-server")
        return DriverPlan(distro, (*headers, *packages), None)
    # Debian's non-free driver follows the release, not a branch
    return DriverPlan(distro, (*headers, "nvidia-driver", "firmware-misc-nonfree"), None)


def driver_matches(installed: str | None, branch: str) -> bool:
    return installed is not None and installed.split(".")[0] == branch


@deploy("gpu", data_defaults=defaults("gpu"))
def gpu() -> None:
    v = role_vars("gpu")
    if not v["gpu_enabled"]:
        logger.info(f"[{host.name}] gpu: skipped (gpu_enabled is false)")
        return
    found = host.get_fact(NvidiaGpu)
    if not found["devices"] and not found["driver"]:
        logger.warning(f"[{host.name}] gpu: no NVIDIA GPU (lspci vendor 10de, nvidia-smi): skipped")
        return
    distro = supported_distro(host.get_fact(OsRelease))
    if distro is None:
        raise DeployError(
            f"{host.name}: gpu: unsupported OS for the NVIDIA driver "
            "(supported: Ubuntu 22.04, Ubuntu 24.04, Debian 12); set gpu_enabled: false to skip"
        )
    branch = str(v["nvidia_driver_branch"])
    plan = driver_plan(distro, branch, v["nvidia_driver_source"], host.get_fact(KernelRelease))
    blacklist = checked_file(
        name="gpu: blacklist nouveau",
        content=BLACKLIST,
        dest="/etc/modprobe.d/blacklist-nouveau.conf",
        activate="update-initramfs -u",
    )
    checked_file(
        name="gpu: load nvidia and nvidia_uvm at boot",
        content=MODULES,
        dest="/etc/modules-load.d/nvidia.conf",
    )
    if plan.keyring_deb:
        # kept in our cache, not /tmp, so a reboot does not make it download and install again
        keyring = KEYRING_DEB
        files.directory(name="gpu: download cache", path=CACHE_DIR, mode="700")
        files.download(name="gpu: NVIDIA CUDA keyring package", src=plan.keyring_deb, dest=keyring)
        apt.deb(name="gpu: NVIDIA CUDA repository keyring", src=keyring)
    driver = apt.packages(
        name=f"gpu: NVIDIA driver {branch} ({distro})",
        packages=list(plan.packages),
        update=True,
        cache_time=3600,
    )
    changed = any_changed(blacklist, driver)
    if driver_matches(found["driver"], branch):
        logger.info(f"[{host.name}] gpu: driver {found['driver']} already on branch {branch}")
    if v["gpu_allow_reboot"]:
        server.reboot(
            name="gpu: reboot for the new driver",
            reboot_timeout=int(v["gpu_reboot_timeout"]),
            _if=changed,
        )
        server.shell(
            name="gpu: verify the driver with nvidia-smi", commands=["nvidia-smi -L"], _if=changed
        )
    else:
        server.shell(
            name="gpu: driver changed, REBOOT NEEDED (gpu_allow_reboot is false)",
            commands=[
                "mkdir -p /var/lib/ollama-fleet && touch /var/lib/ollama-fleet/reboot-required"
            ],
            _if=changed,
        )
    if v["nvidia_container_toolkit"]:
        apt.key(name="gpu: container toolkit key", src=TOOLKIT_KEY, dest=TOOLKIT_KEYRING)
        files.line(
            name="gpu: container toolkit repository",
            path="/etc/apt/sources.list.d/nvidia-container-toolkit.list",
            line=f"deb [signed-by={TOOLKIT_KEYRING}] {TOOLKIT_REPO} /",
        )
        apt.packages(
            name="gpu: container toolkit", packages=["nvidia-container-toolkit"], update=True
        )
