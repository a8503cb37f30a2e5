"""Live parts for the gateway's integration tests: simulator nodes, keys, a running gateway.

Simulator nodes run in threads (`sim_node`) or, where a test must kill one, as processes
(`SimulatorProcess`); `BrokenNode` is a raw HTTP server that breaks off mid-line, which the
simulator (it cuts only between chunks) cannot do. The gateway runs in a thread with its
lifespan (`running_gateway`), or as `python -m ollama_fleet gateway --config FILE`
(`GatewayProcess`) for signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from ollama_fleet.gateway.app import GatewayApp, create_app
from ollama_fleet.gateway.keys import hash_key, new_key
from ollama_fleet.gateway.settings import (
    Balancing,
    GatewayConfig,
    Health,
    KeySpec,
    Limits,
    NodeSpec,
    Role,
)
from ollama_fleet.simulator import SimulatorConfig
from ollama_fleet.simulator import create_app as create_simulator
from ollama_fleet.simulator.config import model_from_name
from ollama_fleet.simulator.state import SimulatorState
from ollama_fleet.testbed.servers import serve_in_thread
from polling import wait_for

START_TIMEOUT_S = 20.0
FAST_HEALTH = Health(interval_s=0.2, timeout_s=2.0, max_backoff_s=0.5, models_refresh_s=0.3)
BANNER = re.compile(r"simulator \(a test double, not Ollama\) listening on (http://\S+)")
GATEWAY_LISTENING = re.compile(r"gateway: listening on (http://127\.0\.0\.1:\d+)")


class BrokenNode:
    """A raw HTTP/1.1 server on 127.0.0.1: any request gets 200, chunked, with `head` (half a
    line, say) as its one chunk; once `cut` is set the connection is reset, unfinished. With
    an empty `head` it hangs up as soon as it has read the request, before any answer."""

    def __init__(self, *, head: bytes, content_type: str) -> None:
        self.head = head
        self.content_type = content_type
        self.cut = threading.Event()
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            if not self.head:
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: " + self.content_type.encode()
                + b"\r\ntransfer-encoding: chunked\r\n\r\n"
                + f"{len(self.head):x}\r\n".encode() + self.head + b"\r\n"
            )  # fmt: skip
            await writer.drain()
            await asyncio.to_thread(self.cut.wait, START_TIMEOUT_S)
        finally:
            writer.transport.abort()

    def __enter__(self) -> BrokenNode:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise AssertionError("the broken node did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cut.set()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=START_TIMEOUT_S)


@dataclass(frozen=True)
class SimNode:
    """A simulator node in a thread: its URL and its state (faults, models)."""

    url: str
    state: SimulatorState

    def stats(self) -> dict[str, Any]:
        """The simulator's counters (GET /_simulator/stats)."""
        answer = httpx.get(self.url + "/_simulator/stats", timeout=5, trust_env=False)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data


@contextlib.contextmanager
def sim_node(models: Sequence[str] = ("llama3.2:1b",), *, tps: float = 0.0) -> Iterator[SimNode]:
    """A simulator with these models, streaming `tps` tokens a second (0: at once)."""
    config = SimulatorConfig(
        models=tuple(model_from_name(name) for name in models), tokens_per_second=tps
    )
    app = create_simulator(config)
    with serve_in_thread(app) as port:
        yield SimNode(url=f"http://127.0.0.1:{port}", state=app.state.simulator)


class SimulatorProcess:
    """`python -m ollama_fleet simulator --port 0` as a child process (for SIGKILL)."""

    def __init__(self, models: Sequence[str], *, tps: float) -> None:
        command = [sys.executable, "-m", "ollama_fleet", "simulator", "--port", "0"]
        command += [arg for name in models for arg in ("--model", name)]
        command += ["--tokens-per-second", str(tps)]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        found = BANNER.search(line)
        if found is None:
            self.kill()
            raise AssertionError(f"the simulator did not start: {line!r}")
        self.url = found.group(1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def make_key(name: str, *, role: Role = Role.USER, **fields: Any) -> tuple[str, KeySpec]:
    """A fresh key and its spec (only the digest goes into the config)."""
    key = new_key()
    return key, KeySpec(name=name, sha256=hash_key(key), role=role, **fields)


def gateway_config(
    nodes: dict[str, str],
    keys: Sequence[KeySpec],
    *,
    max_parallel: int = 4,
    queue: int = 32,
    **fields: Any,
) -> GatewayConfig:
    """A config for these nodes (name -> URL) and keys, with fast health checks."""
    specs = tuple(
        NodeSpec(name=name, url=url, max_parallel=max_parallel, queue=queue)
        for name, url in nodes.items()
    )
    config = GatewayConfig(
        listen=("127.0.0.1", 0),
        nodes=specs,
        keys=tuple(keys),
        health=FAST_HEALTH,
        balancing=Balancing(queue_timeout_s=10.0),
        limits=Limits(),
        access_log=True,
        source="<test>",
    )
    return replace(config, **fields)


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass


@dataclass(frozen=True)
class RunningGateway:
    """A gateway app served in a thread: its URL and the app itself."""

    url: str
    app: GatewayApp

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)

    def wait_ready(self) -> None:
        """Until every node is healthy and its models are known to the gateway."""

        def ready() -> bool:
            states = self.app.pool.snapshot()
            return all(s.healthy and s.models for s in states)

        wait_for("every node to be healthy with its models", ready)


@contextlib.contextmanager
def running_gateway(config: GatewayConfig, *, wait: bool = True) -> Iterator[RunningGateway]:
    """The gateway for `config` under uvicorn (with its lifespan) on 127.0.0.1:0."""
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _ThreadServer(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="gateway", daemon=True
    )
    thread.start()
    try:
        wait_for("the gateway to start", lambda: server.started or not thread.is_alive())
        assert thread.is_alive(), "the gateway's server thread ended at start"
        running = RunningGateway(url=f"http://127.0.0.1:{port}", app=app)
        if wait:
            running.wait_ready()
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)
        sock.close()


def write_config(path: Path, config: GatewayConfig) -> Path:
    """gateway.yml for `config` (the fields the tests use)."""
    data: dict[str, Any] = {
        "listen": f"{config.listen[0]}:{config.listen[1]}",
        "nodes": [
            {"name": n.name, "url": n.url, "max_parallel": n.max_parallel, "queue": n.queue}
            for n in config.nodes
        ],
        "keys": [{"name": k.name, "sha256": k.sha256, "role": k.role.value} for k in config.keys],
        "health": {"interval": "200ms", "timeout": "2s", "max_backoff": "1s"},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class GatewayProcess:
    """`python -m ollama_fleet gateway --config FILE` as a child process, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        command = [sys.executable, "-m", "ollama_fleet", "gateway", "--config", str(config)]
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.url: str = wait_for("the gateway to listen", self._listening, timeout_s=30)

    def _listening(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"gateway exited {self.proc.returncode}: {self.text()}")
        found = GATEWAY_LISTENING.findall(self.text())
        return found[-1] if found else None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the gateway did not stop within 30 s of SIGTERM") from None

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
