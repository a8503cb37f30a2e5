"""Host ports for the lab's forwards on 127.0.0.1: asked for, remembered, or free."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from ollama_fleet.errors import ConfigError
from ollama_fleet.lab.state import GUEST_PORTS
from ollama_fleet.testbed.servers import free_ports

HOST = "127.0.0.1"
# The default lab's ports when they are free: inventories/lab.yml is written for them.
DEFAULT_PORTS = {"ssh": 52022, "http": 52080, "https": 52443, "ollama": 52434, "monitor": 52464}


def port_is_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:`port` right now.

    With SO_REUSEADDR, as qemu's forwards bind: connections to the lab's last run that are
    still in TIME_WAIT do not make its port look taken, so `lab down && lab up` keeps it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def choose_ports(
    requested: Mapping[str, int | None],
    previous: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """A host port per forward (the keys of GUEST_PORTS).

    A requested port must be free (ConfigError otherwise). Without one, the lab keeps the
    port it had before if that is still free, so its inventory and known_hosts stay
    valid; else it gets a free port.
    """
    chosen: dict[str, int] = {}
    for name in GUEST_PORTS:
        port = requested.get(name)
        if port is not None:
            if not port_is_free(port):
                raise ConfigError(f"--{name}-port {port}: 127.0.0.1:{port} is already in use")
            chosen[name] = port
    for name in GUEST_PORTS:
        old = (previous or {}).get(name)
        if name in chosen or old is None or old in chosen.values():
            continue
        if port_is_free(old):
            chosen[name] = old
    missing = [name for name in GUEST_PORTS if name not in chosen]
    fresh = iter(port for port in free_ports(len(missing) + 4) if port not in chosen.values())
    chosen.update({name: next(fresh) for name in missing})
    if len(set(chosen.values())) != len(chosen):
        raise ConfigError(f"two forwards share one port: {_describe(chosen)}")
    return {name: chosen[name] for name in GUEST_PORTS}


def _describe(ports: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {port}" for name, port in ports.items())
