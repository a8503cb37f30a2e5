"""SSH into the lab: the lab's key pair, the ssh command line, running a command in the VM."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ollama_fleet.errors import TestbedError
from ollama_fleet.lab.ports import HOST
from ollama_fleet.lab.state import LabInfo
from ollama_fleet.lab.tools import last_line, require_tool, run_tool

USER = "root"


def ensure_key_pair(key: Path) -> str:
    """The lab's ed25519 key pair at `key` (made once, private part mode 0600); the public key."""
    public = key.with_name(f"{key.name}.pub")
    if not (key.is_file() and public.is_file()):
        key.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        run_tool(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ollama-fleet-lab", "-f"]
            + [str(key)],
            what="ssh-keygen",
        )
    key.chmod(0o600)
    return public.read_text(encoding="utf-8").strip()


def ssh_options(info: LabInfo, *, connect_timeout_s: int = 10) -> list[str]:
    """Options for ssh to the lab, independent of the user's ~/.ssh/config.

    accept-new: the first connection records the lab's host key in the lab's own
    known_hosts (a fresh overlay starts a new one); a changed key is then refused.
    """
    return [
        "-F",
        "/dev/null",
        "-p",
        str(info.ssh_port),
        "-i",
        str(info.ssh_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={info.known_hosts}",
        "-o",
        f"ConnectTimeout={connect_timeout_s}",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=6",
        "-o",
        "LogLevel=ERROR",
    ]


def ssh_command(info: LabInfo, *args: str, connect_timeout_s: int = 10) -> list[str]:
    """argv of `ssh` into the lab as root: a shell without `args`, else run them.

    As always with ssh, the remote shell gets `args` joined with spaces.
    """
    options = ssh_options(info, connect_timeout_s=connect_timeout_s)
    return [require_tool("ssh"), *options, f"{USER}@{HOST}", *args]


def run_ssh(
    info: LabInfo,
    command: str,
    *,
    check: bool = True,
    timeout_s: float | None = 600.0,
    input: str | None = None,
    connect_timeout_s: int = 10,
) -> subprocess.CompletedProcess[str]:
    """Run shell `command` in the lab as root; output captured as text.

    With `check`, a non-zero exit is a TestbedError with the command's last error line.
    """
    argv = ssh_command(info, command, connect_timeout_s=connect_timeout_s)
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, input=input, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise TestbedError(f"lab: `{command}` did not finish within {timeout_s:.0f} s") from None
    if check and result.returncode != 0:
        detail = last_line(result.stderr) or last_line(result.stdout)
        raise TestbedError(f"lab: `{command}` exited {result.returncode}: {detail}")
    return result
