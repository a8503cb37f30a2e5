"""Role gpu: the NVIDIA driver where there is an NVIDIA GPU; other hosts are skipped.

Role gpu: NVIDIA driver (vendor repository or distribution packages; open kernel modules where
NVIDIA makes them the default), DKMS with the kernel headers metapackage so the module is
rebuilt on kernel updates, nouveau blacklisted, an optional container toolkit. Every new apt
source is followed by its own `apt-get update`. Secure Boot is checked before an unsigned module
is built; a reboot happens only when the driver changed and gpu_allow_reboot says so, and a
pending one is reported on every later deploy until the host has rebooted.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.deb import DebArch
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from ollama_fleet.deploys.common import (
    CACHE_DIR,
    STATE_DIR,
    DeployError,
    nvidia_gpu_seen,
    role_vars,
)
from ollama_fleet.deploys.facts import (
    AptSourceUris,
    KernelRelease,
    NvidiaGpu,
    OsRelease,
    PendingReboot,
    SecureBoot,
)
from ollama_fleet.deploys.operations import checked_file
from ollama_fleet.hostvars import defaults

CUDA_REPO = "https://developer.download.nvidia.com/compute/cuda/repos/{distro}/{arch}"
# NVIDIA's repository names per dpkg architecture (arm64 servers are "sbsa")
CUDA_ARCH = {"amd64": "x86_64", "arm64": "sbsa"}
KEYRING_DEB = f"{CACHE_DIR}/cuda-keyring.deb"
TOOLKIT_KEY = "https://nvidia.github.io/libnvidia-container/gpgkey"
TOOLKIT_REPO = "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)"
TOOLKIT_KEYRING = "/etc/apt/keyrings/nvidia-container-toolkit.gpg"
TOOLKIT_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
TOOLKIT_SOURCE = f"# Managed by ollama-fleet (the gpu role)\ndeb [signed-by={TOOLKIT_KEYRING}] {TOOLKIT_REPO} /\n"  # noqa: E501
NONFREE_SOURCES = "/etc/apt/sources.list.d/ollama-fleet-nonfree.sources"
REBOOT_MARKER = f"{STATE_DIR}/reboot-required"
BLACKLIST = "# written by ollama-fleet: the NVIDIA driver replaces nouveau\nblacklist nouveau\noptions nouveau modeset=0\n"  # noqa: E501
# NVIDIA made the open kernel modules the default (and the only choice for Blackwell) at 560.
OPEN_FROM = 560
# From 580 NVIDIA's repositories pin a branch with a package and name the driver without it.
PINNING_FROM = 580


# loaded at boot so /dev/nvidia-uvm exists before ollama.service (NoNewPrivileges=yes stops the
# setuid nvidia-modprobe from creating it later)
MODULES = "# written by ollama-fleet\nnvidia\nnvidia_uvm\n"


@dataclass(frozen=True, slots=True)
class DriverPlan:
    distro: str  # ubuntu2404, ubuntu2204, debian12: the CUDA repository's names
    packages: tuple[str, ...]
    keyring_deb: str | None  # cuda-keyring URL for the vendor source
    open_modules: bool = False
    nonfree_components: bool = False  # Debian: contrib non-free non-free-firmware needed


def supported_distro(os_release: dict[str, str]) -> str | None:
    """The CUDA repository name of a supported OS, or None."""
    key = (os_release.get("ID"), os_release.get("VERSION_ID"))
    return {
        ("ubuntu", "24.04"): "ubuntu2404",
        ("ubuntu", "22.04"): "ubuntu2204",
        ("debian", "12"): "debian12",
    }.get(key)  # type: ignore[arg-type]


def headers_packages(distro: str, kernel: str) -> tuple[str, ...]:
    """DKMS, the running kernel's headers and the metapackage that follows kernel updates.

    The flavour is what follows the ABI number: 6.1.0-18-amd64 -> linux-headers-amd64,
    6.1.0-18-cloud-amd64 -> linux-headers-cloud-amd64, 6.8.0-45-generic -> linux-headers-generic.
    """
    parts = kernel.split("-", 2)
    flavour = parts[2] if len(parts) == 3 and parts[2] else None
    meta = (f"linux-headers-{flavour}",) if flavour else ()
    return ("dkms", f"linux-headers-{kernel}", *meta)


def wants_open(branch: str, modules: str) -> bool:
    return modules == "open" or (modules == "auto" and int(branch) >= OPEN_FROM)


def driver_plan(
    distro: str,
    branch: str,
    source: str,
    kernel: str,
    *,
    modules: str = "auto",
    arch: str = "amd64",
) -> DriverPlan:
    """The packages for one OS, driver branch, source and module flavour (pure)."""
    headers = headers_packages(distro, kernel)
    open_modules = wants_open(branch, modules)
    if source == "vendor":
        repo = CUDA_REPO.format(distro=distro, arch=CUDA_ARCH[arch])
        keyring = f"{repo}/cuda-keyring_1.1-1_all.deb"
        driver: tuple[str, ...]
        if int(branch) >= PINNING_FROM:
            driver = (
                f"nvidia-driver-pinning-{branch}",
                "nvidia-open" if open_modules else "cuda-drivers",
            )
        else:
            driver = (f"nvidia-open-{branch}" if open_modules else f"cuda-drivers-{branch}",)
        return DriverPlan(distro, (*headers, *driver), keyring, open_modules)
    if distro.startswith("ubuntu"):
        flavour = "-open" if open_modules else ""
        packages = (f"nvidia-headless-{branch}-server{flavour}", f"nvidia-utils-{branch}-server")
        return DriverPlan(distro, (*headers, *packages), None, open_modules)
    # Debian's non-free driver follows the release (535 in Debian 12), not a branch
    kernel_modules = ("nvidia-open-kernel-dkms",) if modules == "open" else ()
    packages = (*headers, *kernel_modules, "nvidia-driver", "firmware-misc-nonfree")
    return DriverPlan(distro, packages, None, modules == "open", nonfree_components=True)


def nonfree_sources(uris: list[tuple[str, str, str | None]], codename: str) -> str:
    """A deb822 file adding contrib, non-free and non-free-firmware to the host's own mirrors.

    `uris` are the (URI, suite, signed-by) the host already uses for its release, so no new
    mirror is introduced (a host may only reach its own), and each keeps its keyring: apt
    refuses two entries of one URI and suite whose Signed-By differ.
    """
    chosen = [(uri, suite, key) for uri, suite, key in uris if suite.startswith(codename)]
    if not chosen:
        raise DeployError(
            f"{host.name}: gpu: no apt source for Debian {codename} found on the host, so "
            "contrib non-free non-free-firmware cannot be added to it"
        )
    stanzas = []
    by_uri: dict[tuple[str, str | None], list[str]] = {}
    for uri, suite, key in chosen:
        suites = by_uri.setdefault((uri, key), [])
        if suite not in suites:
            suites.append(suite)
    for (uri, key), suites in by_uri.items():
        signed = f"Signed-By: {key}\n" if key else ""
        stanzas.append(
            f"Types: deb\nURIs: {uri}\nSuites: {' '.join(suites)}\n"
            f"Components: contrib non-free non-free-firmware\n{signed}"
        )
    return "# Managed by ollama-fleet (the gpu role): the NVIDIA driver's components\n" + (
        "\n".join(stanzas)
    )


def driver_matches(installed: str | None, branch: str) -> bool:
    return installed is not None and installed.split(".")[0] == branch


def report_pending_reboot() -> bool:
    """Warn while a driver installed earlier waits for its reboot; True when one does."""
    marked, booted = host.get_fact(PendingReboot, path=REBOOT_MARKER)
    if marked is None:
        return False
    if marked == booted:
        logger.warning(
            f"[{host.name}] gpu: REBOOT NEEDED: the NVIDIA driver installed earlier is not "
            "loaded until the host reboots (or set gpu_allow_reboot: true)"
        )
        return True
    server.shell(
        name="gpu: the host rebooted since the driver changed: reboot marker cleared",
        commands=[f"rm -f {REBOOT_MARKER}"],
    )
    return False


@deploy("gpu", data_defaults=defaults("gpu"))
def gpu() -> None:
    v = role_vars("gpu")
    if not v["gpu_enabled"]:
        logger.info(f"[{host.name}] gpu: skipped (gpu_enabled is false)")
        return
    found = host.get_fact(NvidiaGpu)
    assumed = not nvidia_gpu_seen()
    if assumed and not v["gpu_assume_present"]:
        logger.warning(f"[{host.name}] gpu: no NVIDIA GPU (lspci vendor 10de, nvidia-smi): skipped")
        return
    os_release = host.get_fact(OsRelease)
    distro = supported_distro(os_release)
    if distro is None:
        raise DeployError(
            f"{host.name}: gpu: unsupported OS for the NVIDIA driver "
            "(supported: Ubuntu 22.04, Ubuntu 24.04, Debian 12); set gpu_enabled: false to skip"
        )
    arch = host.get_fact(DebArch)
    if arch not in CUDA_ARCH:
        raise DeployError(
            f"{host.name}: gpu: unsupported architecture {arch or 'unknown'} for the NVIDIA "
            "driver (supported: amd64, arm64); set gpu_enabled: false to skip"
        )
    if host.get_fact(SecureBoot) and not v["gpu_secure_boot_ok"]:
        raise DeployError(
            f"{host.name}: gpu: Secure Boot is on, and the DKMS-built NVIDIA module is not "
            "signed by a key the firmware trusts, so it would not load; enroll the DKMS key "
            "(mokutil --import) and set gpu_secure_boot_ok: true, or turn Secure Boot off"
        )
    branch = str(v["nvidia_driver_branch"])
    plan = driver_plan(
        distro,
        branch,
        v["nvidia_driver_source"],
        host.get_fact(KernelRelease),
        modules=v["nvidia_kernel_modules"],
        arch=arch,
    )
    pending = report_pending_reboot()
    # the downloads below need them; a minimal Debian 12 has none (the ollama role's are later)
    apt.packages(
        name="gpu: curl, CA certificates and gnupg for the downloads",
        packages=["ca-certificates", "curl", "gnupg"],
        update=True,
        cache_time=3600,
    )
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
    sources = []
    if plan.keyring_deb:
        # kept in our cache, not /tmp, so a reboot does not make it download and install again
        files.directory(name="gpu: download cache", path=CACHE_DIR, mode="700")
        files.download(
            name="gpu: NVIDIA CUDA keyring package", src=plan.keyring_deb, dest=KEYRING_DEB
        )
        sources.append(apt.deb(name="gpu: NVIDIA CUDA repository keyring", src=KEYRING_DEB))
    if plan.nonfree_components:
        codename = os_release.get("VERSION_CODENAME", "bookworm")
        sources.append(
            checked_file(
                name="gpu: Debian's contrib non-free non-free-firmware components",
                content=nonfree_sources(
                    host.get_fact(AptSourceUris, skip=NONFREE_SOURCES), codename
                ),
                dest=NONFREE_SOURCES,
            )
        )
    if sources:
        apt.update(name="gpu: apt-get update for the new source", _if=any_changed(*sources))
    # its own operation: an old cache refreshed is no driver change (and no reboot)
    apt.update(name="gpu: apt-get update (cache older than an hour)", cache_time=3600)
    driver = apt.packages(
        name=f"gpu: NVIDIA driver {branch} ({distro}, "
        f"{'open' if plan.open_modules else 'proprietary'} kernel modules)",
        packages=list(plan.packages),
    )
    changed = any_changed(blacklist, driver)
    if driver_matches(found["driver"], branch):
        logger.info(f"[{host.name}] gpu: driver {found['driver']} already on branch {branch}")
    if v["gpu_allow_reboot"] and not assumed:
        server.reboot(
            name="gpu: reboot for the new driver",
            reboot_timeout=int(v["gpu_reboot_timeout"]),
            _if=lambda: changed() or pending,
        )
        server.shell(
            name="gpu: verify the driver with nvidia-smi",
            commands=["nvidia-smi -L"],
            _if=lambda: changed() or pending,
        )
    else:
        server.shell(
            name="gpu: driver changed, REBOOT NEEDED (gpu_allow_reboot is false)",
            commands=[
                f"mkdir -p {STATE_DIR} && cat /proc/sys/kernel/random/boot_id > {REBOOT_MARKER}"
            ],
            _if=changed,
        )
    if v["nvidia_container_toolkit"]:
        key = apt.key(name="gpu: container toolkit key", src=TOOLKIT_KEY, dest=TOOLKIT_KEYRING)
        source = checked_file(
            name="gpu: container toolkit repository", content=TOOLKIT_SOURCE, dest=TOOLKIT_LIST
        )
        apt.update(
            name="gpu: apt-get update for the toolkit's source", _if=any_changed(key, source)
        )
        apt.packages(
            name="gpu: container toolkit",
            packages=["nvidia-container-toolkit"],
            update=True,
            cache_time=3600,
        )
