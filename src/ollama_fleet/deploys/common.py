"""What the roles share: their variables from host data, controller-prepared inputs, errors."""

from __future__ import annotations

from typing import Any

from pyinfra import host

from ollama_fleet.errors import FleetError
from ollama_fleet.hostvars import BY_NAME, defaults, enabled
from ollama_fleet.render import dial_address

PREPARED_KEY = (
    "fleet_prepared"  # inputs the controller made for this host (see ollama_fleet.controller)
)
STATE_DIR = "/var/lib/ollama-fleet"
CACHE_DIR = "/var/cache/ollama-fleet"


class DeployError(FleetError):
    """A role cannot go on for one host (unsupported OS, unsafe firewall...): that host fails."""


def role_vars(role: str) -> dict[str, Any]:
    """The role's variables for the current host: inventory values over the role's defaults."""
    return {name: host.data.get(name, default) for name, default in defaults(role).items()}


def var(name: str) -> Any:
    """Any role's variable for the current host (roles read each other's, e.g. ollama_host)."""
    return host.data.get(name, BY_NAME[name].default)


def role_enabled(role: str) -> bool:
    """Whether `role` runs on the current host (its X_enabled; models needs Ollama, caddy
    Ollama or the gateway)."""
    names = (f"{role}_enabled", "ollama_enabled", "gateway_enabled", "services_enabled")
    return enabled({name: var(name) for name in dict.fromkeys(names)}, role)


def nvidia_gpu_seen() -> bool:
    """Whether the current host shows an NVIDIA GPU (a PCI device of vendor 10de, or a driver
    answering nvidia-smi)."""
    from ollama_fleet.deploys.facts import NvidiaGpu

    found = host.get_fact(NvidiaGpu)
    return bool(found["devices"] or found["driver"])


def has_nvidia_gpu() -> bool:
    """Whether the gpu role installs (or installed) the NVIDIA driver on the current host."""
    return bool(var("gpu_enabled")) and (bool(var("gpu_assume_present")) or nvidia_gpu_seen())


def prepared(key: str) -> Any:
    """An input the controller prepared for the current host (an artifact, a file's text)."""
    return (host.data.get(PREPARED_KEY) or {}).get(key)


def local_address(host_port: str) -> tuple[str, int]:
    """(address as written in a URL, port) to reach a service bound to `host_port` locally."""
    address, _, port = dial_address(host_port).rpartition(":")
    return address, int(port)


def ollama_url() -> str:
    return f"http://{dial_address(str(var('ollama_host')))}"
