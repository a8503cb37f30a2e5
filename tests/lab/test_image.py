"""Building the image: configuring a tree, the cache, and the errors a user meets first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ollama_fleet.errors import ConfigError, TestbedError, ToolMissingError
from ollama_fleet.lab import image as image_module
from ollama_fleet.lab import tools
from ollama_fleet.lab.files import mounts_under
from ollama_fleet.lab.image import (
    MANIFEST,
    build_image,
    configure_rootfs,
    copy_boot_files,
    default_cache_dir,
    find_image,
)
from ollama_fleet.lab.recipe import DEFAULT_RECIPE, HOSTNAME, recipe_hash


def fake_debootstrap_tree(root: Path, outside: Path) -> None:
    """What debootstrap leaves behind that the recipe must change."""
    for rel, text in {
        "etc/ssh/ssh_host_rsa_key": "build host's key",
        "etc/ssh/ssh_host_ed25519_key.pub": "build host's key",
        "etc/hostname": "build-host\n",
        "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": "lists",
        "var/lib/apt/lists/lock": "",
        "var/cache/apt/archives/curl_7.88_amd64.deb": "deb",
        "etc/fstab": "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "etc/resolv.conf").symlink_to("/run/build-host/resolv.conf")
    (root / "etc/hosts").symlink_to(outside)  # a write through it would leave the tree


def test_configure_rootfs_applies_the_recipe(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    outside = tmp_path / "outside"
    outside.write_text("untouched")
    fake_debootstrap_tree(root, outside)

    configure_rootfs(root, DEFAULT_RECIPE)

    assert (root / "etc/hostname").read_text() == f"{HOSTNAME}\n"
    assert (root / "etc/machine-id").read_text() == ""
    assert "/dev/vda / ext4" in (root / "etc/fstab").read_text()
    assert "iface eth0 inet dhcp" in (root / "etc/network/interfaces").read_text()
    assert "bookworm-security" in (root / "etc/apt/sources.list").read_text()
    assert not list((root / "etc/ssh").glob("ssh_host_*"))
    assert not (root / "etc/resolv.conf").is_symlink()
    assert not list((root / "var/cache/apt/archives").glob("*.deb"))
    assert [p.name for p in (root / "var/lib/apt/lists").iterdir()] == ["lock"]
    assert outside.read_text() == "untouched"
    assert not (root / "etc/hosts").is_symlink()
    script = root / "usr/local/sbin/ollama-lab-init"
    assert script.stat().st_mode & 0o777 == 0o755
    link = root / "etc/systemd/system/multi-user.target.wants/ollama-lab-init.service"
    assert os.readlink(link) == "/etc/systemd/system/ollama-lab-init.service"


def test_configure_rootfs_twice_is_the_same(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    configure_rootfs(root, DEFAULT_RECIPE)
    configure_rootfs(root, DEFAULT_RECIPE)
    assert (root / "etc/hostname").read_text() == f"{HOSTNAME}\n"


def test_copy_boot_files(tmp_path: Path) -> None:
    boot = tmp_path / "rootfs/boot"
    boot.mkdir(parents=True)
    (boot / "vmlinuz-6.1.0-9-amd64").write_bytes(b"kernel")
    (boot / "initrd.img-6.1.0-9-amd64").write_bytes(b"initrd")
    assert copy_boot_files(tmp_path / "rootfs", tmp_path) == "6.1.0-9-amd64"
    assert (tmp_path / "vmlinuz").read_bytes() == b"kernel"
    assert (tmp_path / "initrd.img").read_bytes() == b"initrd"


def test_copy_boot_files_wants_exactly_one_kernel(tmp_path: Path) -> None:
    boot = tmp_path / "rootfs/boot"
    boot.mkdir(parents=True)
    with pytest.raises(TestbedError, match="expected one kernel, found 0"):
        copy_boot_files(tmp_path / "rootfs", tmp_path)
    (boot / "vmlinuz-1").write_bytes(b"")
    with pytest.raises(TestbedError, match="initrd.img-1: missing"):
        copy_boot_files(tmp_path / "rootfs", tmp_path)


def fake_cached_image(cache_dir: Path) -> Path:
    directory = cache_dir / "lab-images" / recipe_hash()
    directory.mkdir(parents=True)
    for name in ("disk.img", "vmlinuz", "initrd.img"):
        (directory / name).write_bytes(b"")
    manifest = {"recipe_hash": recipe_hash(), "kernel_version": "6.1.0-9-amd64"}
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return directory


def test_a_cached_image_needs_neither_root_nor_debootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = fake_cached_image(tmp_path)
    monkeypatch.setattr(image_module.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(tools, "_SBIN", ())
    image = build_image(tmp_path)
    assert image.directory == directory
    assert image.kernel_version == "6.1.0-9-amd64"
    assert find_image(tmp_path) == image


def test_an_incomplete_cache_entry_is_not_an_image(tmp_path: Path) -> None:
    directory = fake_cached_image(tmp_path)
    (directory / "initrd.img").unlink()
    assert find_image(tmp_path) is None


def test_building_needs_root_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_module.os, "geteuid", lambda: 1000)
    with pytest.raises(TestbedError, match=r"needs root \(debootstrap\)") as error:
        build_image(tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "lab-images").exists()


@pytest.mark.parametrize("mirror", ["ftp://deb.debian.org/debian", "deb.debian.org", "http://"])
def test_a_bad_mirror_is_a_config_error(tmp_path: Path, mirror: str) -> None:
    with pytest.raises(ConfigError, match="--mirror"):
        build_image(tmp_path, mirror=mirror)


def test_a_missing_tool_names_its_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools, "_SBIN", ())
    for tool, package in tools.TOOL_PACKAGES.items():
        with pytest.raises(ToolMissingError, match=f"apt-get install {package}"):
            tools.require_tool(tool)


def test_tools_in_sbin_are_found_without_sbin_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert tools.require_tool("mkfs.ext4").endswith("/mkfs.ext4")


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "ollama-fleet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == Path.home() / ".cache/ollama-fleet"


def test_mounts_under() -> None:
    assert "/proc" in mounts_under(Path("/"))
    assert mounts_under(Path("/proc/self/fdinfo")) == []
