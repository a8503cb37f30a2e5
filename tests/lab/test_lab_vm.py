"""The lab VM for real: systemd, SSH, the forwards, the CLI, reboot, down and up again.

One VM for the session (the `lab_vm` fixture of tests/lab_fixtures.py). The last test
reboots it, stops it and starts it again, and leaves it running for later modules.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from ollama_fleet.cli.lab import lab
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import load_inventory
from ollama_fleet.lab import LabInfo, LabOptions, down, load_info, reboot, run_ssh, status, up
from ollama_fleet.lab.ports import choose_ports
from ollama_fleet.lab.qemu import qemu_running
from ollama_fleet.lab.vault import read_lab_password

pytestmark = pytest.mark.integration

BOOT_ID = "cat /proc/sys/kernel/random/boot_id"


def current(lab_vm: LabInfo) -> LabInfo:
    """The lab as recorded now (its qemu pid changes when a test stops and starts it)."""
    info = load_info(lab_vm.state_dir)
    assert info is not None
    return info


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`ollama-fleet lab ARGS` in a real process: `lab ssh` replaces the process with ssh."""
    code = "from ollama_fleet.cli.lab import lab; lab()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_systemd_is_up(lab_vm: LabInfo) -> None:
    result = run_ssh(lab_vm, "systemctl is-system-running --wait", check=False)
    assert result.stdout.strip() in ("running", "degraded"), result.stdout + result.stderr
    assert run_ssh(lab_vm, "systemctl is-active ssh networking").stdout.split() == ["active"] * 2


def test_a_bare_debian_12_host(lab_vm: LabInfo) -> None:
    facts = run_ssh(lab_vm, ". /etc/os-release; echo $VERSION_ID; hostname; python3 -V")
    assert facts.stdout.split("\n")[:2] == ["12", "ollama-lab"]
    assert facts.stdout.split("\n")[2].startswith("Python 3.11")
    for package in ("caddy", "nftables", "python3-venv"):
        installed = run_ssh(lab_vm, f"dpkg -s {package}", check=False)
        assert installed.returncode != 0, f"{package} is in the image; the deploy installs it"
    assert "bookworm-security" in run_ssh(lab_vm, "cat /etc/apt/sources.list").stdout


def test_root_by_key_only(lab_vm: LabInfo) -> None:
    sshd = run_ssh(lab_vm, "sshd -T").stdout.splitlines()
    assert "permitrootlogin without-password" in sshd
    assert "passwordauthentication no" in sshd
    keys = run_ssh(lab_vm, "cat /root/.ssh/authorized_keys").stdout
    assert keys == lab_vm.ssh_public_key.read_text()
    assert lab_vm.ssh_key.stat().st_mode & 0o777 == 0o600


def test_the_ollama_forward_reaches_a_closed_port(lab_vm: LabInfo) -> None:
    # The forward exists so deploy tests can prove Ollama is not exposed: with nothing
    # listening in the guest, the connection closes without an HTTP answer.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{lab_vm.ollama_port}/", timeout=30)


def test_status_and_the_cli(lab_vm: LabInfo) -> None:
    found = status(lab_vm.state_dir)
    assert found.ready
    result = CliRunner().invoke(lab, ["status", "--state-dir", str(lab_vm.state_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("lab: running, SSH answers")
    shell = lab_cli("ssh", "--state-dir", str(lab_vm.state_dir), "--", "hostname; exit 3")
    assert (shell.returncode, shell.stdout) == (3, "ollama-lab\n"), shell.stderr


def test_the_inventory_reaches_the_lab(lab_vm: LabInfo) -> None:
    # the lab's keys beside its inventory (host_vars/lab.yml) are vault-encrypted
    password = read_lab_password(lab_vm.state_dir)
    host = load_inventory(lab_vm.inventory, vault=password).host("lab")
    ssh = [
        "ssh",
        "-F",
        "/dev/null",
        "-p",
        str(host.vars["ssh_port"]),
        "-i",
        host.vars["ssh_key"],
        "-o",
        f"UserKnownHostsFile={host.vars['ssh_known_hosts_file']}",
        "-o",
        "BatchMode=yes",
        f"{host.vars['ssh_user']}@{host.vars['ssh_hostname']}",
        "hostname",
    ]
    result = subprocess.run(ssh, capture_output=True, text=True, timeout=60)
    assert result.stdout == "ollama-lab\n", result.stderr
    assert host.vars["lab_ollama_port"] == lab_vm.ollama_port


def test_up_on_a_running_lab_changes_nothing(lab_vm: LabInfo) -> None:
    before = current(lab_vm)
    assert up(lab_vm.state_dir) == before
    other = choose_ports({})["ssh"]
    with pytest.raises(ConfigError, match=f"--ssh-port {other}: the lab is running with"):
        up(lab_vm.state_dir, LabOptions(ssh_port=other))


def test_reboot_then_down_and_up_keep_ports_and_overlay(lab_vm: LabInfo) -> None:
    before = current(lab_vm)
    first_boot = run_ssh(before, BOOT_ID).stdout.strip()
    run_ssh(before, "echo kept > /root/lab-marker && sync")

    second_boot = reboot(before)
    assert second_boot != first_boot
    assert qemu_running(before)  # qemu reset the guest; the process and forwards stayed
    assert run_ssh(before, "cat /root/lab-marker").stdout == "kept\n"
    assert run_ssh(before, "wc -l < /root/.ssh/authorized_keys").stdout.strip() == "1"

    stopped = down(lab_vm.state_dir)
    assert stopped is not None
    assert stopped.pid is None
    assert not qemu_running(before)
    assert not status(lab_vm.state_dir).running

    again = up(lab_vm.state_dir)
    assert again.ports == before.ports
    assert again.pid != before.pid
    assert run_ssh(again, "cat /root/lab-marker").stdout == "kept\n"  # the same overlay
    assert run_ssh(again, BOOT_ID).stdout.strip() not in (first_boot, second_boot)
