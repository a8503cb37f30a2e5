"""qemu's command line (pure), and the real qemu and qemu-img on the error paths (no boot)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ollama_fleet.errors import ConfigError, TestbedError
from ollama_fleet.lab.image import LabImage
from ollama_fleet.lab.ports import choose_ports
from ollama_fleet.lab.qemu import (
    PortsTaken,
    check_accel,
    create_overlay,
    qemu_command,
    qemu_running,
    start_qemu,
)
from ollama_fleet.lab.recipe import KERNEL_ARGS, SSH_KEY_PARAM
from ollama_fleet.lab.state import LabInfo

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlabkeyfortests ollama-fleet-lab"


def make_image(directory: Path) -> LabImage:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("disk.img", "vmlinuz", "initrd.img"):
        (directory / name).touch()
    return LabImage(directory=directory, recipe_hash="0123456789abcdef", kernel_version="6.1")


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def command(info: LabInfo, **changes: object) -> list[str]:
    info = replace(info, **changes)  # type: ignore[arg-type]
    return qemu_command(info, make_image(info.image_dir), public_key=PUBLIC_KEY)


def with_overlay(info: LabInfo) -> LabInfo:
    """`info` with a real overlay on a 1 MB image whose kernel and initrd are empty files."""
    image = make_image(info.image_dir)
    image.disk.write_bytes(b"\0" * 1024 * 1024)
    create_overlay(image, info.overlay)
    return info


def test_tcg_by_default_and_never_kvm(info: LabInfo) -> None:
    argv = command(info)
    assert argv[0] == "qemu-system-x86_64"
    assert option(argv, "-accel") == "tcg,thread=multi"
    assert "rdrand" in option(argv, "-cpu")
    assert "kvm" not in " ".join(argv)


def test_kvm_only_when_asked(info: LabInfo) -> None:
    argv = command(info, accel="kvm")
    assert option(argv, "-accel") == "kvm"
    assert option(argv, "-cpu") == "host"


def test_forwards_listen_on_loopback_only(info: LabInfo) -> None:
    argv = command(info)
    netdev = option(argv, "-netdev").split(",")
    assert netdev[:2] == ["user", "id=n0"]
    assert sorted(netdev[2:]) == sorted(
        [
            "hostfwd=tcp:127.0.0.1:40022-:22",
            "hostfwd=tcp:127.0.0.1:40080-:80",
            "hostfwd=tcp:127.0.0.1:40443-:443",
            "hostfwd=tcp:127.0.0.1:41434-:11434",
            "hostfwd=tcp:127.0.0.1:49464-:9464",
        ]
    )
    assert "10.0.2" not in " ".join(argv)


def test_kernel_command_line_carries_the_key(info: LabInfo) -> None:
    image = make_image(info.image_dir)
    argv = qemu_command(info, image, public_key=PUBLIC_KEY + "\n")
    assert option(argv, "-kernel") == str(image.kernel)
    assert option(argv, "-initrd") == str(image.initrd)
    words = option(argv, "-append").split(" ")
    assert words[: len(KERNEL_ARGS)] == list(KERNEL_ARGS)
    (param,) = (w for w in words if w.startswith(f"{SSH_KEY_PARAM}="))
    assert base64.b64decode(param.split("=", 1)[1]).decode() == PUBLIC_KEY


def test_vm_settings_and_files(info: LabInfo) -> None:
    argv = command(info, memory_mb=4096, cpus=4)
    assert option(argv, "-m") == "4096"
    assert option(argv, "-smp") == "4"
    assert option(argv, "-drive").startswith(f"file={info.overlay},format=qcow2,if=virtio")
    assert option(argv, "-serial") == f"file:{info.serial_log}"
    assert option(argv, "-pidfile") == str(info.pidfile)
    assert "-daemonize" in argv


def test_commas_in_paths_are_escaped(info: LabInfo, tmp_path: Path) -> None:
    argv = command(info, state_dir=tmp_path / "a,b")
    assert option(argv, "-drive").startswith(f"file={tmp_path}/a,,b/overlay.qcow2,format=")


def test_qemu_running_knows_its_own_qemu_only(info: LabInfo) -> None:
    assert not qemu_running(replace(info, pid=None))
    assert not qemu_running(replace(info, pid=os.getpid()))  # alive, but not qemu
    exited = subprocess.Popen(["true"])
    exited.wait()
    assert not qemu_running(replace(info, pid=exited.pid))


def test_kvm_without_dev_kvm_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match="--accel kvm"):
        check_accel("kvm")
    check_accel("tcg")


# -- real qemu-img and qemu, failing before any boot -------------------------------------


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_is_reported_as_such(info: LabInfo, listening_port: int) -> None:
    info = with_overlay(replace(info, ssh_port=listening_port))
    with pytest.raises(PortsTaken, match=f"127.0.0.1:{listening_port}"):
        start_qemu(command(info), info)


def test_a_qemu_that_cannot_start_says_why(info: LabInfo) -> None:
    ports = choose_ports({})
    info = replace(
        info,
        ssh_port=ports["ssh"],
        http_port=ports["http"],
        https_port=ports["https"],
        ollama_port=ports["ollama"],
    )
    with pytest.raises(TestbedError, match="qemu failed to start.*kernel") as error:
        start_qemu(command(with_overlay(info)), info)
    assert "\n" not in str(error.value)
    assert not info.pidfile.exists()


def test_overlay_is_backed_by_the_image(info: LabInfo) -> None:
    with_overlay(info)
    with_overlay(info)  # a second time replaces it
    found = subprocess.run(
        ["qemu-img", "info", "--output=json", str(info.overlay)],
        capture_output=True,
        text=True,
        check=True,
    )
    details = json.loads(found.stdout)
    assert details["format"] == "qcow2"
    assert details["backing-filename"] == str(info.image_dir / "disk.img")
    assert details["backing-filename-format"] == "raw"
