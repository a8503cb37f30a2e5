"""Gateway replicas for the scale-out tests: processes on one database and Redis, behind Caddy.

    config = replica_config(path, nodes=NODES, keys=SPECS, database_url=PG, redis_url=REDIS)
    with Replica(config, tmp_path / "a.log") as a, Replica(config, tmp_path / "b.log") as b:
        a.ready(), b.ready()                                      # its nodes checked healthy
        with caddy_front(tmp_path / "caddy", [a, b]) as front:   # round robin, SSE unbuffered
            turn = stream_chat(bearer_client(front.url, KEY), {"message": "hi", "model": M})
            a.requests(key="alice", path="/v1/chat")               # its access log lines

Each replica is `python -m ollama_fleet gateway --config FILE` (tests/gateway/live.py's
GatewayProcess), so a test can SIGKILL one (`kill()`); its access log is read back from its
log file. Caddy (Debian's 2.6.2) runs through ollama_fleet.testbed.caddy's CaddyProcess.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from httpx_sse import connect_sse

from ollama_fleet.gateway.settings import KeySpec
from ollama_fleet.testbed.caddy import CaddyProcess
from ollama_fleet.testbed.servers import free_port
from polling import wait_for

from .live import GatewayProcess
from .sessions_live import Turn

ACCESS_LOGGER = "ollama_fleet.gateway.access"


def replica_config(
    path: Path,
    *,
    nodes: Mapping[str, str],
    keys: Sequence[KeySpec],
    database_url: str,
    redis_url: str | None = None,
) -> Path:
    """gateway.yml for one replica: these nodes (name -> URL) and keys, sessions on
    `database_url` flushed every 100 ms, limits in Redis at `redis_url` (None: in memory)."""
    data: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "nodes": [{"name": name, "url": url} for name, url in nodes.items()],
        "keys": [_key(spec) for spec in keys],
        "health": {"interval": "200ms", "timeout": "2s", "max_backoff": "1s"},
        "sessions": {"database_url": database_url, "flush_interval": "100ms"},
        "access_log": True,
    }
    if redis_url is not None:
        data["redis"] = {"url": redis_url}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)  # it holds the database's URL
    return path


def _key(spec: KeySpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": spec.name, "sha256": spec.sha256, "role": spec.role.value}
    if spec.rpm is not None:
        entry["rpm"] = spec.rpm
    return entry


class Replica(GatewayProcess):
    """One gateway process; its access log read back from its log file."""

    def __init__(self, config: Path, log: Path) -> None:
        super().__init__(config, log)
        self.config = config
        self.port = int(self.url.rsplit(":", 1)[1])

    def __enter__(self) -> Replica:
        return self

    def ready(self) -> Replica:
        """Until /ready answers 200 (every node checked healthy)."""

        def answers() -> bool:
            try:
                return httpx.get(self.url + "/ready", timeout=5, trust_env=False).is_success
            except httpx.TransportError:
                return False

        wait_for(f"the gateway at {self.url} to be ready", answers)
        return self

    def client(self, key: str) -> httpx.Client:
        return bearer_client(self.url, key)

    def messages(self, key: str, session_id: str) -> list[dict[str, Any]]:
        """The session's stored messages, read through this replica."""
        with self.client(key) as client:
            answer = client.get(f"/v1/sessions/{session_id}/messages")
        assert answer.status_code == 200, answer.text
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    def requests(self, *, key: str, path: str) -> list[dict[str, Any]]:
        """The access log lines of requests with this key's name to this path."""
        lines = []
        for line in self.text().splitlines():
            _, _, tail = line.partition(f"{ACCESS_LOGGER} ")
            if tail.startswith("{"):
                entry = json.loads(tail)
                if entry["key"] == key and entry["path"] == path:
                    lines.append(entry)
        return lines

    def kill(self) -> None:
        """SIGKILL, and wait until it is gone."""
        self.proc.kill()
        self.proc.wait()


def bearer_client(url: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30, trust_env=False
    )


def stream_chat(
    client: httpx.Client, body: Mapping[str, Any], *, on_token: Callable[[Turn], None] | None = None
) -> Turn:
    """POST /v1/chat streamed, read with a real SSE client until it ends or is cut (a killed
    gateway: then the last event is a token); `on_token` sees the turn after each token."""
    with connect_sse(client, "POST", "/v1/chat", json=dict(body)) as source:
        turn = Turn(status=source.response.status_code, headers=dict(source.response.headers))
        if turn.status != 200:
            source.response.read()
            turn.events.append(json.loads(source.response.text))
            return turn
        with contextlib.suppress(httpx.TransportError):
            for sse in source.iter_sse():
                turn.events.append(json.loads(sse.data))
                if on_token is not None and turn.events[-1]["type"] == "token":
                    on_token(turn)
    return turn


@dataclass(frozen=True)
class Front:
    """Caddy in front of the replicas: its URL."""

    url: str


@contextlib.contextmanager
def caddy_front(directory: Path, replicas: Sequence[Replica]) -> Iterator[Front]:
    """A real Caddy on 127.0.0.1 over plain HTTP, round robin over the replicas; answers are
    relayed as they come (`flush_interval -1`), so SSE tokens are not held back."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    upstreams = " ".join(f"127.0.0.1:{replica.port}" for replica in replicas)
    caddyfile = directory / "Caddyfile"
    caddyfile.write_text(
        "{\n\tadmin off\n\tauto_https off\n"
        f"\tstorage file_system {{\n\t\troot {directory / 'storage'}\n\t}}\n}}\n"
        f"http://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n"
        f"\treverse_proxy {upstreams} {{\n"
        "\t\tlb_policy round_robin\n\t\tflush_interval -1\n"
        # see ollama_fleet.testbed.caddy: Caddy 2.6.2 may cut answers to unbuffered POSTs
        "\t\tbuffer_requests\n\t}\n}\n"
    )
    with CaddyProcess(caddyfile, ports=[port]):
        yield Front(url=f"http://127.0.0.1:{port}")
