"""A lab's state directory: the files in it, and its record (state.json) as a frozen LabInfo."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollama_fleet.errors import ConfigError
from ollama_fleet.fsutil import atomic_write
from ollama_fleet.lab.defaults import ACCELS, STATE_DIR_ENV
from ollama_fleet.lab.image import default_cache_dir
from ollama_fleet.values import port_problem

STATE_FILE = "state.json"
OVERLAY_FILE = "overlay.qcow2"
KEY_FILE = "id_ed25519"
KNOWN_HOSTS_FILE = "known_hosts"
STATE_VERSION = 1
# The monitor's port in the guest (monitor_port's default, which the lab's inventory keeps).
MONITOR_GUEST_PORT = 9464
# Guest port of each forward; the host side is a free 127.0.0.1 port chosen per lab.
# The ollama forward exists so tests can prove Ollama is NOT reachable from outside; the
# monitor's shows its status page and metrics.
GUEST_PORTS = {"ssh": 22, "http": 80, "https": 443, "ollama": 11434, "monitor": MONITOR_GUEST_PORT}
# Forwards a lab recorded before they existed may lack; its next start from stopped adds them.
LATER_FORWARDS = frozenset({"monitor"})


def default_state_dir() -> Path:
    """$OLLAMA_FLEET_LAB_DIR, or <cache>/lab."""
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured) if configured else default_cache_dir() / "lab"


@dataclass(frozen=True, slots=True, kw_only=True)
class LabInfo:
    """One lab: its forwards on 127.0.0.1, its image, its VM settings, qemu's pid if started.

    The files live in `state_dir` under fixed names (see the properties). `monitor_port` is
    None for a lab started before that forward existed (until its next start from stopped).
    """

    state_dir: Path
    ssh_port: int
    http_port: int
    https_port: int
    ollama_port: int
    image_dir: Path
    image_hash: str
    accel: str
    memory_mb: int
    cpus: int
    pid: int | None = None
    monitor_port: int | None = None

    @property
    def ports(self) -> dict[str, int]:
        """Host port per forward name (the keys of GUEST_PORTS) that this lab has."""
        ports = {
            "ssh": self.ssh_port,
            "http": self.http_port,
            "https": self.https_port,
            "ollama": self.ollama_port,
        }
        if self.monitor_port is not None:
            ports["monitor"] = self.monitor_port
        return ports

    @property
    def status_page_url(self) -> str | None:
        """The monitor's status page through its forward (once a deploy runs the monitor)."""
        return None if self.monitor_port is None else f"http://127.0.0.1:{self.monitor_port}/"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / KEY_FILE

    @property
    def ssh_public_key(self) -> Path:
        return self.state_dir / f"{KEY_FILE}.pub"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / KNOWN_HOSTS_FILE

    @property
    def serial_log(self) -> Path:
        return self.state_dir / "serial.log"

    @property
    def overlay(self) -> Path:
        return self.state_dir / OVERLAY_FILE

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "qemu.pid"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE


def info_to_json(info: LabInfo) -> str:
    data = {
        "version": STATE_VERSION,
        "pid": info.pid,
        "ports": info.ports,
        "image": {"dir": str(info.image_dir), "hash": info.image_hash},
        "accel": info.accel,
        "memory_mb": info.memory_mb,
        "cpus": info.cpus,
    }
    return json.dumps(data, indent=2) + "\n"


def info_from_json(state_dir: Path, text: str) -> LabInfo:
    """Parse state.json; ConfigError naming the file if it is not a lab's record."""
    where = state_dir / STATE_FILE
    try:
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            raise ConfigError(f"{where}: unknown state version {data.get('version')!r}")
        recorded = data["ports"]
        ports = {
            name: _port(where, recorded[name])
            for name in GUEST_PORTS
            if name not in LATER_FORWARDS or name in recorded
        }
        pid = data["pid"]
        info = LabInfo(
            state_dir=state_dir,
            ssh_port=ports["ssh"],
            http_port=ports["http"],
            https_port=ports["https"],
            ollama_port=ports["ollama"],
            image_dir=Path(_typed(where, data["image"]["dir"], str)),
            image_hash=_typed(where, data["image"]["hash"], str),
            accel=_typed(where, data["accel"], str),
            memory_mb=_typed(where, data["memory_mb"], int),
            cpus=_typed(where, data["cpus"], int),
            pid=None if pid is None else _typed(where, pid, int),
            monitor_port=ports.get("monitor"),
        )
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: invalid JSON: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{where}: not a lab state file ({type(exc).__name__}: {exc})") from None
    if info.accel not in ACCELS:
        raise ConfigError(f"{where}: accel {info.accel!r} is not one of {', '.join(ACCELS)}")
    return info


def load_info(state_dir: Path) -> LabInfo | None:
    """The lab recorded in `state_dir`, or None if no lab was ever started there."""
    try:
        text = (state_dir / STATE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{state_dir / STATE_FILE}: cannot read: {exc.strerror}") from None
    return info_from_json(state_dir, text)


def save_info(info: LabInfo) -> None:
    atomic_write(info.state_file, info_to_json(info), mode=0o644, what="lab state")


def _typed(where: Path, value: Any, kind: type[Any]) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _port(where: Path, value: Any) -> int:
    problem = port_problem(value)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return int(value)
