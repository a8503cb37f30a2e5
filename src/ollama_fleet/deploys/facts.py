"""Facts the roles read from a host: small shell commands whose output is parsed here.

Each fact's `process` is pure, so tests can feed it canned output (the @strictfake connector
of tests/deploys does, from outputs captured on real hosts).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from pyinfra.api import FactBase


class OsRelease(FactBase[dict[str, str]]):
    """/etc/os-release as a mapping (ID, VERSION_ID, VERSION_CODENAME, ...)."""

    def command(self) -> str:
        return "cat /etc/os-release"

    def default(self) -> dict[str, str]:
        return {}

    def process(self, output: list[str]) -> dict[str, str]:
        values = {}
        for line in output:
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip('"')
        return values


class NvidiaGpu(FactBase[dict[str, Any]]):
    """{"devices": [PCI lines of vendor 10de], "driver": nvidia-smi's driver version or None}."""

    def command(self) -> str:
        return (
            # sysfs where lspci (pciutils) is not installed, as on a minimal Debian
            "(lspci -n -d 10de: 2>/dev/null || grep -l 0x10de /sys/bus/pci/devices/*/vendor "
            "2>/dev/null | sed 's|/vendor$| 10de (sysfs)|' || true) | sed 's/^/pci /'; "
            "(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null || true)"
            " | sed 's/^/driver /'"
        )

    def default(self) -> dict[str, Any]:
        return {"devices": [], "driver": None}

    def process(self, output: list[str]) -> dict[str, Any]:
        devices = [line[4:] for line in output if line.startswith("pci ") and line[4:].strip()]
        drivers = [line[7:].strip() for line in output if line.startswith("driver ")]
        return {"devices": devices, "driver": next((d for d in drivers if d), None)}


class KernelRelease(FactBase[str]):
    """`uname -r`: the running kernel, for its headers package."""

    def command(self) -> str:
        return "uname -r"

    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else ""


class Marker(FactBase[str | None]):
    """The first line of a small state file ollama-fleet writes (e.g. the installed release)."""

    def command(self, path: str) -> str:
        return f"cat {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return output[0].strip() if output and output[0].strip() else None


class OllamaModels(FactBase[list[str] | None]):
    """Names in Ollama's /api/tags, or None when Ollama does not answer (not installed yet)."""

    def command(self, base_url: str) -> str:
        url = shlex.quote(f"{base_url}/api/tags")
        return f"curl -fsS --max-time 10 {url} 2>/dev/null || echo unreachable"

    def process(self, output: list[str]) -> list[str] | None:
        text = "\n".join(output).strip()
        if not text or text == "unreachable":
            return None
        try:
            return sorted(str(m["name"]) for m in json.loads(text)["models"])
        except (ValueError, KeyError, TypeError):
            return None


class SshdPorts(FactBase[list[int]]):
    """The TCP ports sshd listens on, from `sshd -T` (empty when that cannot be read)."""

    def command(self) -> str:
        return "(sshd -T 2>/dev/null || /usr/sbin/sshd -T 2>/dev/null || true) | grep -i '^port '"

    def default(self) -> list[int]:
        return []

    def process(self, output: list[str]) -> list[int]:
        ports = []
        for line in output:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                ports.append(int(parts[1]))
        return sorted(set(ports))


class PythonVersion(FactBase[str | None]):
    """`python3 --version` as "3.11", or None without python3."""

    def command(self) -> str:
        script = 'import sys; print("%d.%d" % sys.version_info[:2])'
        return f"python3 -c '{script}' 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return output[0].strip() if output and output[0].strip() else None


class PathModes(FactBase[list[tuple[str, str]]]):
    """(mode, path) for `path` and each existing parent, to find untraversable directories."""

    def command(self, path: str) -> str:
        return (
            f"p={shlex.quote(path)}; "
            'while [ -n "$p" ] && [ "$p" != / ]; do '
            '[ -e "$p" ] && stat -c "%a %n" "$p"; p=$(dirname "$p"); done; true'
        )

    def default(self) -> list[tuple[str, str]]:
        return []

    def process(self, output: list[str]) -> list[tuple[str, str]]:
        pairs = []
        for line in output:
            mode, _, path = line.strip().partition(" ")
            if mode and path:
                pairs.append((mode, path))
        return pairs


class SecureBoot(FactBase[bool | None]):
    """Whether UEFI Secure Boot is on (`mokutil --sb-state`); None when it cannot be told."""

    def command(self) -> str:
        return (
            "if command -v mokutil >/dev/null; then mokutil --sb-state 2>&1 || true; "
            # without mokutil: the SecureBoot EFI variable's last byte (1: on)
            "elif [ -d /sys/firmware/efi ]; then "
            "v=$(od -An -t u1 /sys/firmware/efi/efivars/SecureBoot-* 2>/dev/null | "
            "awk '{print $NF}'); "
            "if [ \"$v\" = 1 ]; then echo 'SecureBoot enabled'; "
            "elif [ \"$v\" = 0 ]; then echo 'SecureBoot disabled'; "
            "else echo 'efi, no mokutil'; fi; "
            "else echo 'not supported: no EFI'; fi"
        )

    def process(self, output: list[str]) -> bool | None:
        text = " ".join(output).lower()
        if "secureboot enabled" in text:
            return True
        if "secureboot disabled" in text or "not supported" in text:
            return False
        return None


class PendingReboot(FactBase[tuple[str | None, str]]):
    """(boot id written in the reboot marker or None, the current boot id)."""

    def command(self, path: str) -> str:
        return (
            f"echo marker $(cat {shlex.quote(path)} 2>/dev/null); "
            "echo boot $(cat /proc/sys/kernel/random/boot_id)"
        )

    def default(self) -> tuple[str | None, str]:
        return None, ""

    def process(self, output: list[str]) -> tuple[str | None, str]:
        values = dict(line.strip().partition(" ")[::2] for line in output if line.strip())
        return values.get("marker") or None, values.get("boot", "")


AptSource = tuple[str, str, str | None]  # URI, suite, its signed-by keyring (None: apt's own)


class AptSourceUris(FactBase[list[AptSource]]):
    """(URI, suite, signed-by) of every `deb` source the host's apt uses (one-line and deb822
    files), leaving out `skip` (the file ollama-fleet itself writes from these)."""

    def command(self, skip: str = "") -> str:
        return (
            "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
            "/etc/apt/sources.list.d/*.sources; do "
            f'[ -f "$f" ] && [ "$f" != {shlex.quote(skip)} ] && cat "$f" && echo; done; true'
        )

    def default(self) -> list[AptSource]:
        return []

    def process(self, output: list[str]) -> list[AptSource]:
        found: list[AptSource] = []
        stanza: dict[str, str] = {}

        def close() -> None:
            if "deb" in stanza.get("types", "").split():
                signed_by = stanza.get("signed-by") or None
                for uri in stanza.get("uris", "").split():
                    found.extend(
                        (uri, suite, signed_by) for suite in stanza.get("suites", "").split()
                    )
            stanza.clear()

        for raw in [*output, ""]:
            if not raw.strip():  # a blank line ends a deb822 stanza; a comment does not
                close()
                continue
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            if words[0] == "deb":
                options, _, rest = (
                    line[3:].strip().partition("]") if "[" in line else ("", "", line[3:])
                )
                signed = re.search(r"signed-by=(\S+)", options)
                words = rest.split()
                if len(words) >= 2:
                    found.append((words[0], words[1], signed.group(1) if signed else None))
            elif ":" in words[0]:
                key, _, value = line.partition(":")
                stanza[key.strip().lower()] = value.strip()
        return list(dict.fromkeys(found))
