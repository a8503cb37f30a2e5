"""Listening sockets for this project's services (monitor, gateway): bound before they start.

A port that cannot be had is a ConfigError naming the config file's `listen`, raised before
anything else starts, so a service never half-starts on a taken port.
"""

from __future__ import annotations

import socket

from ollama_fleet.errors import ConfigError


def bind(host: str, port: int, *, source: str, backlog: int = 2048) -> socket.socket:
    """A non-blocking TCP socket listening on host:port (IPv6 when `host` has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: with protocol 0 asyncio does not set TCP_NODELAY on accepted
    # connections, and Nagle plus delayed ACKs cost ~40 ms per streamed chunk
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise ConfigError(f"{source}: listen: cannot listen on {where}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def listen_url(sock: socket.socket, *, path: str = "") -> str:
    """http://HOST:PORT (brackets for IPv6) of a bound socket, with `path` after it."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"
