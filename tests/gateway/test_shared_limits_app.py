"""The gateway with its rate limits in a real redis-server: one limit for two apps, and what a
lost Redis does to requests (on_error open: each app's own limits; closed: 503)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest

from ollama_fleet.gateway.settings import SharedLimits
from redis_server import running_redis

from .live import gateway_config, make_key, running_gateway, sim_node

pytestmark = pytest.mark.integration

CHAT = {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}], "stream": False}
PASSWORD = "redis-pw-3f9a"


def test_two_gateways_on_one_redis_share_a_keys_rpm(tmp_path: Path) -> None:
    key, spec = make_key("alice", rpm=3)
    with running_redis(tmp_path / "redis", password=PASSWORD) as redis, sim_node() as node:
        config = gateway_config({"n1": node.url}, [spec])
        config = replace(config, shared_limits=SharedLimits(redis_url=redis.url))
        with running_gateway(config) as a, running_gateway(config) as b:
            statuses = []
            for gateway in (a, b, a, b, a):
                with gateway.client(key) as client:
                    statuses.append(client.post("/api/chat", json=CHAT).status_code)
            with a.client() as client:
                metrics = client.get("/metrics").text
    assert statuses == [200, 200, 200, 429, 429]  # alone, each would have let 3 through
    assert "gateway_redis_up 1.0" in metrics


@pytest.mark.parametrize(("on_error", "expected"), [("open", 200), ("closed", 503)])
def test_a_lost_redis_fails_as_configured_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, on_error: str, expected: int
) -> None:
    key, spec = make_key("alice", rpm=100)
    with running_redis(tmp_path / "redis", password=PASSWORD) as redis, sim_node() as node:
        mode: Literal["open", "closed"] = "open" if on_error == "open" else "closed"
        shared = SharedLimits(redis_url=redis.url, on_error=mode, timeout_s=0.5)
        config = replace(gateway_config({"n1": node.url}, [spec]), shared_limits=shared)
        with running_gateway(config) as gateway, gateway.client(key) as client:
            assert client.post("/api/chat", json=CHAT).status_code == 200
            redis.stop()
            with caplog.at_level(logging.INFO):
                answers = [client.post("/api/chat", json=CHAT) for _ in range(3)]
            metrics = client.get("/metrics").text
            redis.start()
    assert [a.status_code for a in answers] == [expected] * 3
    if expected == 503:
        assert "rate limits cannot be checked" in answers[0].json()["error"]
        assert answers[0].headers["retry-after"] == "5"
    assert "gateway_redis_up 0.0" in metrics
    lost = [r for r in caplog.records if "redis" in r.getMessage().lower()]
    assert len(lost) == 1, [r.getMessage() for r in lost]
    assert PASSWORD not in caplog.text
