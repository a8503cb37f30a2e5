"""Facts captured from real hosts: which command each facts/<os>/<name>.txt answers, and a way
to capture them again from a bare host (the lab VM for Debian 12).

    .venv/bin/python tests/deploys/captured.py debian12 \\
        .venv/bin/ollama-fleet lab ssh --state-dir DIR --

runs every command below on the host (one `sh -s` over the given SSH command, read-only) and
rewrites the files of facts/debian12/. A file holds the command's standard output, line for
line; packages.txt is not captured (the `dpkg -l` lines of what the roles install, once
installed). See facts/README.md for where each OS's files come from.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from pyinfra.api import FactBase
from pyinfra.facts.deb import DebArch, DebPackages
from pyinfra.facts.files import File
from pyinfra.facts.server import Groups, LinuxDistribution, TmpDir, Users

from ollama_fleet.deploys.converge import snapshot_script
from ollama_fleet.deploys.facts import AptSourceUris, PythonVersion, SecureBoot, SshdPorts
from ollama_fleet.deploys.gpu import NONFREE_SOURCES

FACTS = Path(__file__).parent / "facts"
# paths whose File fact (stat) a bare host answers from stat.txt; any other is missing
STAT_PATHS = (
    "/",
    "/etc",
    "/etc/apt",
    "/etc/apt/keyrings",
    "/etc/apt/sources.list.d",
    "/etc/apt/trusted.gpg.d",
    "/usr/share/keyrings",
    "/etc/modprobe.d",
    "/etc/modules-load.d",
    "/etc/systemd/system",
    "/usr",
    "/usr/share",
    "/usr/local",
    "/usr/local/bin",
    "/opt",
    "/srv",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/lib/apt",
    "/var/lib/apt/periodic",
    "/tmp",
    "/etc/os-release",
    "/etc/ssh/sshd_config",
)
# tools whose `command -v` a bare host answers from command-v.txt ("" where it lacks one)
TOOLS = (
    "curl",
    "wget",
    "dpkg",
    "dpkg-query",
    "systemctl",
    "apt",
    "apt-get",
    "apt-key",
    "lspci",
    "nvidia-smi",
    "nvidia-modprobe",
    "mokutil",
    "sshd",
    "python3",
    "nft",
    "caddy",
    "sha256sum",
    "update-initramfs",
    "runuser",
    "gpg",
    "journalctl",
    "id",
    "getent",
    "useradd",
    "groupadd",
    "usermod",
    "userdel",
    "groupdel",
    "adduser",
    "mkdir",
    "chmod",
    "chown",
    "tar",
    "gzip",
    "zstd",
    "unzip",
    "sudo",
)
# what the site's snapshot asks a bare host in snapshot-bare.txt (every role, default variables)
SNAPSHOT_ASKS: dict[str, Any] = {
    "files": [
        "/etc/caddy/Caddyfile",
        "/etc/nftables.conf",
        "/etc/systemd/system/ollama.service",
        "/etc/systemd/system/ollama.service.d/ollama-fleet.conf",
        "/etc/ollama-fleet/gateway.yml",
    ],
    "dirs": [
        "/etc/systemd/system/ollama.service.d",
        "/usr/share/ollama/.ollama/models",
        "/etc/ollama-fleet",
        "/etc/nftables.d",
    ],
    "lines": ["/opt/ollama/RELEASE", "/opt/ollama-fleet/.ollama-fleet-bundle"],
    "packages": ["ca-certificates", "caddy", "curl", "gzip", "nftables", "python3-venv", "tar"],
    "services": ["caddy", "nftables.service", "ollama.service", "ollama-fleet-check.timer"],
    "users": ["ollama", "ollama-fleet"],
    "models_url": "http://127.0.0.1:11434",
}


def fact_command(fact: type[FactBase[Any]], *args: Any, **kwargs: Any) -> str:
    """The command `fact` runs (without pyinfra's `command -v` guard around it)."""
    command = fact().command(*args, **kwargs)
    return command if isinstance(command, str) else command.get_raw_value()


def captured_commands() -> dict[str, str]:
    """{file name: the command whose standard output facts/<os>/<name>.txt holds}."""
    return {
        "os-release": "cat /etc/os-release",
        "uname-r": "uname -r",
        "uname-s": "uname -s",
        "boot-id": "cat /proc/sys/kernel/random/boot_id",
        "tmpdir": fact_command(TmpDir),
        "etc-group": fact_command(Groups),
        "users": fact_command(Users),
        "linux-distribution": fact_command(LinuxDistribution),
        "dpkg-l": fact_command(DebPackages),
        "dpkg-print-architecture": fact_command(DebArch),
        "apt-sources": fact_command(AptSourceUris, skip=NONFREE_SOURCES),
        "secure-boot": fact_command(SecureBoot),
        "sshd-T-port": fact_command(SshdPorts),
        "python3-version": fact_command(PythonVersion),
        "stat": "; ".join(fact_command(File, path) for path in STAT_PATHS),
        "command-v": (
            f"for t in {' '.join(TOOLS)}; do printf '%s ' $t; command -v $t || echo; done"
        ),
        "snapshot-bare": snapshot_script(**SNAPSHOT_ASKS),
    }


@cache
def os_file(os_name: str, name: str) -> tuple[str, ...]:
    """The lines of facts/<os>/<name>.txt."""
    return tuple((FACTS / os_name / f"{name}.txt").read_text(encoding="utf-8").splitlines())


def has_file(os_name: str, name: str) -> bool:
    return (FACTS / os_name / f"{name}.txt").is_file()


def kernel(os_name: str) -> str:
    """The host's running kernel (`uname -r`)."""
    return os_file(os_name, "uname-r")[0]


def tools(os_name: str) -> dict[str, str]:
    """{tool: path} from `command -v` on the host; "" for a tool it lacks."""
    found = {}
    for line in os_file(os_name, "command-v"):
        tool, _, path = line.partition(" ")
        found[tool] = path.strip()
    return found


def stat_lines(os_name: str) -> dict[str, str]:
    """{path: what pyinfra's File fact prints} for the bare host's standard paths."""
    return {re.findall(r" '([^']+)'", line)[0]: line for line in os_file(os_name, "stat")}


def capture_script(commands: dict[str, str]) -> str:
    """One POSIX script running each command, its output between marker lines."""
    parts = []
    for name, command in commands.items():
        parts.append(f"echo '=== {name} ==='\n( {command}\n) 2>/dev/null\necho '=== end ==='")
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    os_name, ssh = argv[0], argv[1:]
    commands = captured_commands()
    done = subprocess.run(
        [*ssh, "sh", "-s"],
        input=capture_script(commands),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    found = re.findall(r"^=== (\S+) ===\n(.*?)^=== end ===$", done.stdout, re.M | re.S)
    (FACTS / os_name).mkdir(parents=True, exist_ok=True)
    for name, output in found:
        (FACTS / os_name / f"{name}.txt").write_text(output, encoding="utf-8")
        print(f"facts/{os_name}/{name}.txt: {len(output.splitlines())} lines")
    missing = set(commands) - {name for name, _ in found}
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
