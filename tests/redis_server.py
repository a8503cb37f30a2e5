"""A real redis-server (Debian's package) as a plain process on 127.0.0.1, for integration tests.

API (other tests reuse it, e.g. several gateways sharing one Redis):

    with running_redis(tmp_path, password="s3cret") as server:
        server.url            # "redis://:s3cret@127.0.0.1:PORT/0" (password URL-quoted)
        server.port           # fixed for the server's life: stop() and start() keep it
        server.stop()         # SIGTERM, wait until it exited (clients now get errors)
        server.start()        # again on the same port, empty (no persistence), waits for PING

Nothing is persisted (`save ""`, `appendonly no`); every file lives in the given directory. A
missing redis-server raises ToolMissingError: the test errors, it never skips.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from ollama_fleet.errors import TestbedError, ToolMissingError

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0


def redis_binary() -> str:
    """The redis-server binary, or ToolMissingError saying how to install it."""
    path = shutil.which("redis-server")
    if path is None:
        raise ToolMissingError(
            "redis-server is not installed: `apt-get install redis-server` (make test does it)"
        )
    return path


class RedisServer:
    """One redis-server on 127.0.0.1:`port` with its config, log and dir under `directory`."""

    def __init__(self, *, directory: Path, password: str | None = None) -> None:
        self._binary = redis_binary()
        self._directory = directory
        self._password = password
        self._process: subprocess.Popen[bytes] | None = None
        self.port = _free_port()
        auth = f":{quote(password, safe='')}@" if password is not None else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self._directory / "redis.log"

    def start(self) -> None:
        """Start the server (on the same port every time) and wait until it answers PING."""
        if self._process is not None:
            raise TestbedError("redis-server is running already")
        self._directory.mkdir(parents=True, exist_ok=True)
        config = self._directory / "redis.conf"
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self._directory}",
            f"logfile {self.log_path}",
            'save ""',
            "appendonly no",
            "daemonize no",
        ]
        if self._password is not None:
            lines.append(f"requirepass {self._password}")
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        self._process = subprocess.Popen(
            [self._binary, str(config)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        end = time.monotonic() + START_TIMEOUT_S
        while not self._answers_ping():
            if self._process.poll() is not None:
                self._process = None
                raise TestbedError(f"redis-server exited at start: {self._log_tail()}")
            if time.monotonic() > end:
                self.stop()
                raise TestbedError(f"redis-server did not answer in {START_TIMEOUT_S:g} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server and wait until it has exited (idempotent)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        # with requirepass an unauthenticated PING is refused, but the server is up
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:])


@contextmanager
def running_redis(directory: Path, *, password: str | None = None) -> Iterator[RedisServer]:
    """A started RedisServer in `directory`, stopped on exit."""
    server = RedisServer(directory=directory, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
