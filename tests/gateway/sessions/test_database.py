"""The gateway and its sessions database: away at start (the relay goes on, sessions answer
503, /health says so), and newer than the code (the start refused, one line, nothing changed)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ollama_fleet.gateway.keys import hash_key, new_key
from ollama_fleet.gateway.settings import Sessions
from pg_cluster import running_cluster
from polling import wait_for

from ..live import gateway_config, make_key, running_gateway, sim_node
from ..sessions_live import MODEL

pytestmark = pytest.mark.integration

PASSWORD = "db-pw-77c1"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_database_away_at_start_leaves_the_relay_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://fleet:{PASSWORD}@127.0.0.1:{closed_port()}/fleet"
    key, spec = make_key("alice")
    with sim_node((MODEL,)) as node:
        config = replace(
            gateway_config({"n1": node.url}, [spec]), sessions=Sessions(database_url=url)
        )
        with running_gateway(config) as gateway, gateway.client(key) as client:
            relayed = client.post(
                "/api/chat",
                json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            )
            chat = client.post("/v1/chat", json={"message": "hi", "model": MODEL})
            listed = client.get("/v1/sessions")
            health = client.get("/health").json()
            metrics = client.get("/metrics").text
    assert relayed.status_code == 200
    for answer in (chat, listed):
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("/database-unavailable")
    assert health == {"status": "degraded", "services": {"database": "unavailable", "ollama": "ok"}}
    assert "gateway_sessions_database_up 0.0" in metrics
    assert PASSWORD not in caplog.text and "***@127.0.0.1" in caplog.text


def test_a_database_newer_than_the_code_stops_the_start(tmp_path: Path) -> None:
    database = tmp_path / "sessions.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE ollama_fleet_schema (version INTEGER PRIMARY KEY, applied_at)")
        db.execute("INSERT INTO ollama_fleet_schema VALUES (99, 0)")
    before = database.read_bytes()
    config = {
        "listen": "127.0.0.1:0",
        "nodes": [{"name": "n1", "url": "http://127.0.0.1:9"}],
        "keys": [{"name": "alice", "sha256": hash_key(new_key())}],
        "sessions": {"database_url": f"sqlite:///{database}"},
    }
    path = tmp_path / "gateway.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "ollama_fleet", "gateway", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: the sessions database {database} is at schema version 99, but this ollama-fleet "
        "knows versions up to 2: upgrade ollama-fleet on this host (or point "
        "sessions.database_url at another database)"
    )
    assert "listening" not in done.stderr
    assert database.read_bytes() == before


def test_a_restarted_postgresql_costs_at_most_one_failed_call(tmp_path: Path) -> None:
    """Every pooled connection dies with the server; the first call that finds one dead has
    the idle ones tested, so the calls after it find fresh connections."""
    key, spec = make_key("alice")
    with running_cluster() as cluster, sim_node((MODEL,)) as node:
        sessions = Sessions(database_url=cluster.new_database())
        config = replace(gateway_config({"n1": node.url}, [spec]), sessions=sessions)
        with running_gateway(config) as gateway, gateway.client(key) as client:
            assert client.get("/v1/sessions").status_code == 200
            cluster.restart()
            statuses = [client.get("/v1/sessions").status_code for _ in range(3)]
            wait_for(
                "the pool to replace its dead connections",
                lambda: client.get("/v1/sessions").status_code == 200,
            )
            after = [client.get("/v1/sessions").status_code for _ in range(25)]
    assert statuses[0] in (200, 503) and statuses[1:] == [200, 200]
    assert after == [200] * 25
