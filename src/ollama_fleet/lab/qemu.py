"""The lab's qemu process: its command line (pure), starting it detached, finding, stopping."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path

from ollama_fleet.errors import ConfigError, TestbedError
from ollama_fleet.lab.image import LabImage
from ollama_fleet.lab.ports import HOST
from ollama_fleet.lab.recipe import KERNEL_ARGS, SSH_KEY_PARAM
from ollama_fleet.lab.state import GUEST_PORTS, LabInfo
from ollama_fleet.lab.tools import last_line, require_tool, run_tool

START_TIMEOUT_S = 60.0
TERM_TIMEOUT_S = 10.0


class PortsTaken(TestbedError):
    """qemu could not listen on a forward's host port (taken since it was chosen)."""


def qemu_command(info: LabInfo, image: LabImage, *, public_key: str) -> list[str]:
    """qemu's argv for `info`: detached, serial console to a file, forwards on 127.0.0.1 only.

    Root's public key reaches the guest on the kernel command line (see the recipe's
    ollama-lab-init), so one generic image serves every lab.
    """
    if info.accel == "kvm":
        accel = ["-accel", "kvm", "-cpu", "host"]
    else:
        # TCG: KVM guests hang at kernel start on the machines this was built on. RDRAND
        # lets the guest's RNG start at once: without it, boot stalls ~20 s for entropy.
        accel = ["-accel", "tcg,thread=multi", "-cpu", "qemu64,+rdrand"]
    forwards = ",".join(
        f"hostfwd=tcp:{HOST}:{port}-:{GUEST_PORTS[name]}" for name, port in info.ports.items()
    )
    key = base64.b64encode(public_key.strip().encode()).decode()
    return [
        "qemu-system-x86_64",
        "-name",
        "ollama-lab,process=ollama-lab",
        "-nodefaults",
        "-no-user-config",
        *accel,
        "-m",
        str(info.memory_mb),
        "-smp",
        str(info.cpus),
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        " ".join([*KERNEL_ARGS, f"{SSH_KEY_PARAM}={key}"]),
        "-drive",
        f"file={_option_value(info.overlay)},format=qcow2,if=virtio,discard=unmap",
        "-netdev",
        f"user,id=n0,{forwards}",
        "-device",
        "virtio-net-pci,netdev=n0",
        "-device",
        "virtio-rng-pci",
        "-display",
        "none",
        "-serial",
        f"file:{info.serial_log}",
        "-daemonize",
        "-pidfile",
        str(info.pidfile),
    ]


def check_accel(accel: str) -> None:
    """ConfigError if `accel` cannot work here (kvm without a usable /dev/kvm)."""
    if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise ConfigError("--accel kvm: /dev/kvm is missing or not writable; use --accel tcg")


def create_overlay(image: LabImage, overlay: Path) -> None:
    """A fresh qcow2 overlay on the image: the lab's writes go there, the image stays clean."""
    overlay.unlink(missing_ok=True)
    run_tool(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", "raw"]
        + [str(overlay)],
        what="qemu-img create",
    )


def start_qemu(command: list[str], info: LabInfo) -> int:
    """Start qemu detached (it daemonizes once the VM is set up); its pid.

    PortsTaken if a forward's port was taken since it was chosen.
    """
    info.pidfile.unlink(missing_ok=True)
    if info.serial_log.exists():
        info.serial_log.replace(info.serial_log.with_name("serial.log.1"))  # the last boot's
    argv = [require_tool(command[0]), *command[1:]]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TestbedError(f"qemu did not start within {START_TIMEOUT_S:.0f} s") from None
    if result.returncode != 0:
        message = last_line(result.stderr)
        if "host forwarding rule" in message:
            raise PortsTaken(f"qemu: {message}")
        raise TestbedError(f"qemu failed to start (exit {result.returncode}): {message}")
    try:
        return int(info.pidfile.read_text().strip())
    except (OSError, ValueError):
        raise TestbedError(f"qemu started but wrote no pid to {info.pidfile}") from None


def qemu_running(info: LabInfo) -> bool:
    """Whether info.pid is this lab's qemu (not a dead one, nor a reused pid)."""
    if info.pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return f"file={_option_value(info.overlay)},".encode() in cmdline


def stop_qemu(info: LabInfo, *, timeout_s: float = TERM_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if qemu is still there after `timeout_s`."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, timeout_s)):
        if not qemu_running(info):
            return
        assert info.pid is not None  # qemu_running checked it
        try:
            os.kill(info.pid, sig)
        except ProcessLookupError:
            return
        if wait_for_exit(info, timeout_s=wait_s):
            return
    raise TestbedError(f"qemu (pid {info.pid}) survived SIGKILL")


def wait_for_exit(info: LabInfo, *, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for qemu to exit; whether it did."""
    deadline = time.monotonic() + timeout_s
    while qemu_running(info):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _option_value(path: Path) -> str:
    # In qemu's key=value option lists a literal comma is written twice.
    return str(path).replace(",", ",,")
