"""Serve the simulator (test double) on a socket bound first, so the banner tells the truth.

The socket is bound and listening before anything is printed: `--port 0` reports the port
the OS chose, and a taken port is a one-line ConfigError instead of a banner and then a
uvicorn traceback.
"""

from __future__ import annotations

import errno
import socket

import uvicorn

from ollama_fleet.errors import ConfigError
from ollama_fleet.simulator.app import create_app
from ollama_fleet.simulator.config import SimulatorConfig

BANNER = "Ollama API simulator (a test double, not Ollama) listening on {url}"


def url_of(host: str, port: int) -> str:
    """http://host:port, with an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port and listening; port 0 lets the OS choose one.

    Raises ConfigError naming the address when it cannot be had (taken, not local, not a
    name that resolves).
    """
    where = url_of(host, port)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot listen on {where}: {(exc.strerror or str(exc)).lower()}"
        ) from None
    # IPPROTO_TCP explicitly: with protocol 0 asyncio does not set TCP_NODELAY on accepted
    # connections, and Nagle plus delayed ACKs cost ~40 ms per request.
    sock = socket.socket(family, kind, proto)
    try:
        # as uvicorn does: a restart may rebind while old connections sit in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # uvicorn's default backlog; clients queue until it accepts
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        if exc.errno == errno.EADDRINUSE:
            reason += " (another server holds that port)"
        raise ConfigError(f"cannot listen on {where}: {reason}") from None
    return sock


def bound_url(sock: socket.socket) -> str:
    """The URL a listening socket answers on (the real port, also for port 0)."""
    host, port = sock.getsockname()[:2]
    return url_of(host, port)


def serve_socket(config: SimulatorConfig | None, sock: socket.socket) -> None:
    """Print the banner, then run the simulator on `sock` under uvicorn until interrupted."""
    print(BANNER.format(url=bound_url(sock)), flush=True)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level="warning", access_log=False)
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def serve(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 11434
) -> None:
    """Run the simulator on host:port until interrupted (blocking); ConfigError if the
    address cannot be had, before anything is printed."""
    serve_socket(config, listen(host, port))
