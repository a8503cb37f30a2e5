"""Role gpu: which driver a host gets, and what a dry deploy plans for GPU and GPU-less hosts."""

from __future__ import annotations

import pytest

from ollama_fleet.deploys.gpu import (
    CUDA_REPO,
    TOOLKIT_LIST,
    TOOLKIT_SOURCE,
    driver_matches,
    driver_plan,
    supported_distro,
)

from .answers import apt_fresh, file_with
from .conftest import Deployed, deploy_fakes, gpu_host, gpu_up_to_date, headers, host

KEYRING_OP = "gpu: NVIDIA CUDA repository keyring"
MARKER_OP = "gpu: driver changed, REBOOT NEEDED (gpu_allow_reboot is false)"
REBOOT_OP = "gpu: reboot for the new driver"
VERIFY_OP = "gpu: verify the driver with nvidia-smi"
VENDOR_580 = ("nvidia-driver-pinning-580", "nvidia-open")
KERNEL = "6.8.0-45-generic"
HEADERS = ("dkms", f"linux-headers-{KERNEL}", "linux-headers-generic")

# -- pure: the driver a host gets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("os_release", "expected"),
    [
        ({"ID": "ubuntu", "VERSION_ID": "24.04"}, "ubuntu2404"),
        ({"ID": "ubuntu", "VERSION_ID": "22.04"}, "ubuntu2204"),
        ({"ID": "debian", "VERSION_ID": "12"}, "debian12"),
        ({"ID": "debian", "VERSION_ID": "11"}, None),
        ({"ID": "ubuntu", "VERSION_ID": "20.04"}, None),
        ({"ID": "centos", "VERSION_ID": "9"}, None),
        ({}, None),
    ],
)
def test_supported_distro_names_the_cuda_repository(
    os_release: dict[str, str], expected: str | None
) -> None:
    assert supported_distro(os_release) == expected


@pytest.mark.parametrize("distro", ["ubuntu2404", "ubuntu2204", "debian12"])
@pytest.mark.parametrize(
    ("branch", "driver", "open_modules"),
    [
        ("550", ("cuda-drivers-550",), False),
        ("570", ("nvidia-open-570",), True),  # open kernel modules by default from 560
        ("580", ("nvidia-driver-pinning-580", "nvidia-open"), True),  # pinned from 580
    ],
)
def test_vendor_driver_comes_from_the_distros_cuda_repository(
    distro: str, branch: str, driver: tuple[str, ...], open_modules: bool
) -> None:
    plan = driver_plan(distro, branch, "vendor", KERNEL)

    assert plan.distro == distro
    assert plan.packages == (*HEADERS, *driver)
    assert plan.open_modules is open_modules
    assert plan.keyring_deb == (
        f"https://developer.download.nvidia.com/compute/cuda/repos/{distro}/x86_64/"
        "cuda-keyring_1.1-1_all.deb"
    )
    assert plan.keyring_deb.startswith(CUDA_REPO.format(distro=distro, arch="x86_64"))


@pytest.mark.parametrize("distro", ["ubuntu2404", "ubuntu2204"])
def test_ubuntu_distro_driver_is_the_headless_server_branch(distro: str) -> None:
    plan = driver_plan(distro, "580", "distro", KERNEL)

    assert plan.packages == (*HEADERS, "nvidia-headless-580-server-open", "nvidia-utils-580-server")
    assert plan.keyring_deb is None


def test_debian_distro_driver_follows_the_release_not_the_branch() -> None:
    plan = driver_plan("debian12", "580", "distro", "6.1.0-50-amd64")

    assert plan.packages == (
        "dkms",
        "linux-headers-6.1.0-50-amd64",
        "linux-headers-amd64",
        "nvidia-driver",
        "firmware-misc-nonfree",
    )
    assert not any("580" in package for package in plan.packages)
    assert plan.keyring_deb is None
    assert plan.nonfree_components


@pytest.mark.parametrize(
    ("installed", "branch", "expected"),
    [
        ("580.65.06", "580", True),
        ("580", "580", True),
        ("570.172.08", "580", False),
        ("5800.1", "580", False),
        (None, "580", False),
    ],
)
def test_driver_matches_only_the_configured_branch(
    installed: str | None, branch: str, expected: bool
) -> None:
    assert driver_matches(installed, branch) is expected


# -- dry deploys on fake hosts -------------------------------------------------------------------

HOSTS = {
    "u2404": gpu_host("ubuntu2404"),
    "u2204": gpu_host("ubuntu2204", nvidia_container_toolkit=True),
    # the toolkit's source file already there, as a first deploy left it
    "u2204-toolkit-listed": gpu_host(
        "ubuntu2204", file_with(TOOLKIT_LIST, TOOLKIT_SOURCE), nvidia_container_toolkit=True
    ),
    "d12": gpu_host("debian12", nvidia_driver_branch="570", gpu_allow_reboot=True),
    "u2204-distro": gpu_host("ubuntu2204", nvidia_driver_source="distro"),
    # the driver operation installs exactly what is missing: these hosts have all of it...
    "u2404-has-vendor": gpu_host(
        "ubuntu2404", apt_fresh(), installed=[*headers("ubuntu2404"), *VENDOR_580]
    ),
    "u2204-has-distro": gpu_host(
        "ubuntu2204",
        apt_fresh(),
        installed=[
            *headers("ubuntu2204"),
            "nvidia-headless-580-server-open",
            "nvidia-utils-580-server",
        ],
        nvidia_driver_source="distro",
    ),
    "d12-has-distro": gpu_host(
        "debian12",
        apt_fresh(),
        installed=[*headers("debian12"), "nvidia-driver", "firmware-misc-nonfree"],
        nvidia_driver_source="distro",
    ),
    # ...and this one has the vendor's driver, which is not what the distro source installs
    "u2204-distro-has-vendor": gpu_host(
        "ubuntu2204",
        apt_fresh(),
        installed=[*headers("ubuntu2204"), *VENDOR_580],
        nvidia_driver_source="distro",
    ),
    "nogpu": host(),  # the lab's bare Debian 12: no lspci, no nvidia-smi
    "gpu-off": gpu_host("ubuntu2404", gpu_enabled=False),
    "centos": gpu_host("centos9"),
    "current": gpu_up_to_date(),
    "current-reboot": gpu_up_to_date(gpu_allow_reboot=True),
}


def driver_op(branch: str, distro: str, modules: str = "open") -> str:
    return f"gpu: NVIDIA driver {branch} ({distro}, {modules} kernel modules)"


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    return deploy_fakes(tmp_path_factory.mktemp("gpu"), HOSTS, roles=["gpu"])


@pytest.mark.integration
class TestDryDeploy:
    @pytest.mark.parametrize(
        ("name", "distro", "branch"),
        [
            ("u2404", "ubuntu2404", "580"),
            ("u2204", "ubuntu2204", "580"),
            ("d12", "debian12", "570"),
        ],
    )
    def test_vendor_driver_is_planned_for_the_hosts_distro_and_branch(
        self, gpu_run: Deployed, name: str, distro: str, branch: str
    ) -> None:
        changes = gpu_run.changes(name)

        assert driver_op(branch, distro) in changes
        assert KEYRING_OP in changes
        assert "gpu: blacklist nouveau" in changes
        assert gpu_run.outcome(name).error is None

    def test_distro_source_plans_no_cuda_repository(self, gpu_run: Deployed) -> None:
        changes = gpu_run.changes("u2204-distro")

        assert driver_op("580", "ubuntu2204") in changes
        assert KEYRING_OP not in gpu_run.plans("u2204-distro")

    @pytest.mark.parametrize(
        ("name", "op"),
        [
            ("u2404-has-vendor", driver_op("580", "ubuntu2404")),
            ("u2204-has-distro", driver_op("580", "ubuntu2204")),
            ("d12-has-distro", driver_op("580", "debian12", "proprietary")),
        ],
    )
    def test_driver_is_left_alone_when_its_packages_are_installed(
        self, gpu_run: Deployed, name: str, op: str
    ) -> None:
        assert gpu_run.plans(name)[op] is False

    def test_distro_source_does_not_accept_the_vendor_driver(self, gpu_run: Deployed) -> None:
        assert gpu_run.plans("u2204-distro-has-vendor")[driver_op("580", "ubuntu2204")]

    def test_reboot_allowed_plans_reboot_and_nvidia_smi_check(self, gpu_run: Deployed) -> None:
        changes = gpu_run.changes("d12")

        assert REBOOT_OP in changes
        assert VERIFY_OP in changes
        assert changes.index(REBOOT_OP) < changes.index(VERIFY_OP)
        assert MARKER_OP not in gpu_run.plans("d12")

    @pytest.mark.parametrize("name", ["u2404", "u2204", "u2204-distro"])
    def test_reboot_not_allowed_plans_the_reboot_needed_marker(
        self, gpu_run: Deployed, name: str
    ) -> None:
        plans = gpu_run.plans(name)

        assert plans[MARKER_OP] is True
        assert REBOOT_OP not in plans
        assert VERIFY_OP not in plans

    def test_the_toolkits_source_is_a_file_written_once(self, gpu_run: Deployed) -> None:
        # files.line with an unescaped regex appended the line on every run; now the file is
        # compared whole, so a second deploy leaves it (and apt's lists) alone
        plans = gpu_run.plans("u2204-toolkit-listed")
        assert plans["gpu: container toolkit repository"] is False
        assert gpu_run.plans("u2204")["gpu: container toolkit repository"] is True
        assert "[signed-by=/etc/apt/keyrings/nvidia-container-toolkit.gpg]" in TOOLKIT_SOURCE
        assert "libnvidia-container/stable/deb/$(ARCH) /" in TOOLKIT_SOURCE

    def test_container_toolkit_is_planned_only_when_asked(self, gpu_run: Deployed) -> None:
        toolkit = [op for op in gpu_run.changes("u2204") if "toolkit" in op]

        assert toolkit == [
            "gpu: container toolkit key",
            "gpu: container toolkit repository",
            "gpu: apt-get update for the toolkit's source",
            "gpu: container toolkit",
        ]
        assert not [op for op in gpu_run.plans("u2404") if "toolkit" in op]

    def test_host_without_gpu_is_skipped_with_a_message(self, gpu_run: Deployed) -> None:
        assert gpu_run.plans("nogpu") == {}
        assert gpu_run.outcome("nogpu").error is None
        assert (
            "[@strictfake/nogpu] gpu: no NVIDIA GPU (lspci vendor 10de, nvidia-smi): skipped"
            in gpu_run.log
        )
        assert "@strictfake/u2404] gpu: no NVIDIA GPU" not in gpu_run.log

    def test_gpu_enabled_false_skips_a_host_with_a_gpu(self, gpu_run: Deployed) -> None:
        assert gpu_run.plans("gpu-off") == {}
        assert gpu_run.outcome("gpu-off").error is None

    def test_unsupported_os_is_refused_and_the_others_still_plan(self, gpu_run: Deployed) -> None:
        refusal = gpu_run.refusal("centos")

        assert refusal is not None
        assert "unsupported OS for the NVIDIA driver" in refusal
        assert "Ubuntu 22.04, Ubuntu 24.04, Debian 12" in refusal
        assert "gpu_enabled: false" in refusal
        assert gpu_run.outcome("centos").error == refusal
        assert gpu_run.plans("centos") == {}
        assert [h.name for h in gpu_run.result.failed] == ["@strictfake/centos"]
        assert gpu_run.changes("u2404")

    def test_up_to_date_host_facts_say_nothing_to_install(self, gpu_run: Deployed) -> None:
        plans = gpu_run.plans("current")

        assert plans["gpu: blacklist nouveau"] is False
        assert plans["gpu: load nvidia and nvidia_uvm at boot"] is False
        assert plans[KEYRING_OP] is False
        assert plans[driver_op("580", "ubuntu2404")] is False

    @pytest.mark.parametrize("name", ["current", "current-reboot"])
    def test_up_to_date_host_plans_no_gpu_change(self, gpu_run: Deployed, name: str) -> None:
        assert gpu_run.plans(name)
        assert gpu_run.changes(name) == []
