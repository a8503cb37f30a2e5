"""A gateway with sessions for tests: a simulator node, keys, a database, SSE turns.

    with sessions_gateway(tmp_path) as gw:          # SQLite in tmp_path
        turn = gw.chat(gw.alice, "hello")           # one streamed turn, parsed by httpx-sse
        gw.client(gw.alice).get("/v1/sessions")

`database_url` picks PostgreSQL (tests/pg_cluster.py makes one); `tps` paces the simulator.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from ollama_fleet.gateway.settings import GatewayConfig, Role, Sessions

from .live import RunningGateway, SimNode, gateway_config, make_key, running_gateway, sim_node

MODEL = "llama3.2:1b"


@dataclass
class Turn:
    """One streamed /v1/chat answer: its events in order, parsed from the SSE stream."""

    status: int
    events: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def tokens(self) -> list[str]:
        return [e["content"] for e in self.events if e["type"] == "token"]

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]

    @property
    def session_id(self) -> str:
        return str(self.events[0]["session_id"])


@dataclass
class SessionsGateway:
    """The running gateway and its keys (alice and bob: users; root: admin)."""

    running: RunningGateway
    alice: str
    bob: str
    root: str
    node: SimNode

    @property
    def url(self) -> str:
        return self.running.url

    def client(self, key: str | None = None) -> httpx.Client:
        return self.running.client(key)

    def chat(self, key: str, message: str, **fields: Any) -> Turn:
        """POST /v1/chat streamed, read to its end with a real SSE client."""
        body = {"message": message, "model": MODEL, **fields}
        with self.client(key) as client, connect_sse(client, "POST", "/v1/chat", json=body) as es:
            turn = Turn(status=es.response.status_code, headers=dict(es.response.headers))
            if es.response.status_code != 200:
                es.response.read()
                turn.events.append(json.loads(es.response.text))
                return turn
            for sse in es.iter_sse():
                turn.events.append(json.loads(sse.data))
        return turn


def sessions_config(node_url: str, database_url: str, keys: Any, **sessions: Any) -> GatewayConfig:
    return gateway_config(
        {"n1": node_url},
        keys,
        sessions=Sessions(database_url=database_url, **{"flush_interval_s": 0.1, **sessions}),
    )


@contextlib.contextmanager
def sessions_gateway(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    tps: float = 0.0,
    **config: Any,
) -> Iterator[SessionsGateway]:
    """A gateway with sessions on `database_url` (default: SQLite in tmp_path) in front of one
    simulator node; `config` overrides GatewayConfig fields (`sessions=` replaces the record)."""
    url = database_url or f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    alice, alice_spec = make_key("alice")
    bob, bob_spec = make_key("bob")
    root, root_spec = make_key("root", role=Role.ADMIN)
    with sim_node((MODEL,), tps=tps) as node:
        base = sessions_config(node.url, url, [alice_spec, bob_spec, root_spec])
        with running_gateway(replace(base, **config)) as running:
            yield SessionsGateway(running=running, alice=alice, bob=bob, root=root, node=node)
