"""The admin API over real simulator nodes: nodes, drain, pull, delete, usage; admin role only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ollama_fleet.gateway.routes import ROUTES
from ollama_fleet.simulator.config import Faults

from .conftest import Keys
from .live import (
    RunningGateway,
    SimNode,
    gateway_config,
    running_gateway,
    sim_node,
    wait_for,
)

pytestmark = pytest.mark.integration

ADMIN_ROUTES = [r for r in ROUTES if r.action.value.startswith("admin_")]


@pytest.fixture
def fleet_of_two(keys: Keys) -> Iterator[tuple[RunningGateway, SimNode, SimNode]]:
    with (
        sim_node(["llama3.2:1b"]) as a,
        sim_node(["llama3.2:1b", "qwen2.5:0.5b"]) as b,
        running_gateway(gateway_config({"a": a.url, "b": b.url}, keys.specs)) as gateway,
    ):
        yield gateway, a, b


def _lines(answer: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in answer.text.splitlines() if line]


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=lambda r: r.path)
def test_only_an_admin_key_may_use_the_admin_api(
    shared_gateway: RunningGateway, keys: Keys, route: Any
) -> None:
    method = sorted(route.methods)[0]
    for key in (keys.user, keys.readonly):
        with shared_gateway.client(key) as client:
            answer = client.request(method, route.example, json={"model": "llama3.2:1b"})
        assert answer.status_code == 403
        assert "may not use admin routes" in answer.json()["error"]


def test_nodes_lists_every_node_with_its_state(
    fleet_of_two: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, a, _ = fleet_of_two
    with gateway.client(keys.admin) as admin:
        nodes = admin.get("/admin/nodes").json()["nodes"]
    assert [n["name"] for n in nodes] == ["a", "b"]
    first = nodes[0]
    assert (first["url"], first["healthy"], first["breaker"]) == (a.url, True, "closed")
    assert nodes[1]["models"] == ["llama3.2:1b", "qwen2.5:0.5b"]


def test_drain_and_undrain_move_new_requests_away_and_back(
    fleet_of_two: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, _, _ = fleet_of_two
    chat = {"model": "qwen2.5:0.5b", "prompt": "hi", "stream": False}
    with gateway.client(keys.admin) as admin:
        assert admin.post("/admin/nodes/b/drain").json()["draining"] is True
        drained = admin.post("/api/generate", json=chat)
        assert drained.status_code == 503  # qwen is only on b
        assert "retry-after" in drained.headers
        assert admin.post("/admin/nodes/b/undrain").json()["draining"] is False
        assert admin.post("/api/generate", json=chat).headers["x-gateway-node"] == "b"
        unknown = admin.post("/admin/nodes/zz/drain")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no node named 'zz'"})


def test_pull_streams_progress_per_node_and_the_model_is_routed_to_at_once(
    fleet_of_two: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, _, _ = fleet_of_two
    with gateway.client(keys.admin) as admin:
        answer = admin.post("/admin/pull", json={"model": "gemma2:2b", "nodes": ["a"]})
        assert answer.status_code == 200
        lines = _lines(answer)
        assert {line["node"] for line in lines} == {"a"}
        assert lines[-1] == {"node": "a", "done": True, "ok": True, "error": None}
        assert any(line.get("status") == "success" for line in lines)
        generated = admin.post("/api/generate", json={"model": "gemma2:2b", "prompt": "x"})
        assert generated.headers["x-gateway-node"] == "a"
        names = {m["name"] for m in admin.get("/api/tags").json()["models"]}
        assert "gemma2:2b" in names


def _pulls(node: SimNode) -> int:
    return int(node.stats()["requests"].get("/api/pull", 0))


def test_a_client_that_goes_away_stops_the_pull(keys: Keys) -> None:
    with sim_node() as node:
        node.state.faults = Faults(latency_ms=1500, paths=("/api/pull",))  # the pull "runs"
        config = gateway_config({"a": node.url}, keys.specs)
        with running_gateway(config) as gateway, gateway.client(keys.admin) as admin:
            body = {"model": "gemma2:2b"}
            with admin.stream("POST", "/admin/pull", json=body) as answer:
                assert answer.status_code == 200
                wait_for("the pull to reach the node", lambda: _pulls(node))
            # the pull ends on the node (its answer abandoned or, had it gone on, sent whole)
            wait_for("the node to be done with it", lambda: node.stats()["in_flight"] == 0)
        assert _pulls(node) == 1
    assert node.state.find("gemma2:2b") is None  # the node never got to finish it


def test_pull_of_a_model_a_node_cannot_get_reports_the_error_for_that_node(
    fleet_of_two: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, _, _ = fleet_of_two
    with gateway.client(keys.admin) as admin:
        lines = _lines(admin.post("/admin/pull", json={"model": "no-such-model:1b"}))
    summaries = [line for line in lines if line.get("done") is True]
    assert [(s["node"], s["ok"]) for s in summaries] == [("a", False), ("b", False)]
    assert all(s["error"] for s in summaries)


def test_delete_removes_the_model_from_the_nodes_that_have_it(
    fleet_of_two: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, a, b = fleet_of_two
    with gateway.client(keys.admin) as admin:
        answer = admin.request("DELETE", "/admin/models", json={"model": "qwen2.5:0.5b"})
        assert answer.json() == {"model": "qwen2.5:0.5b", "nodes": {"b": "deleted"}}
        assert b.state.find("qwen2.5:0.5b") is None
        gone = admin.post("/api/generate", json={"model": "qwen2.5:0.5b", "prompt": "x"})
        assert gone.status_code == 404
        again = admin.request("DELETE", "/admin/models", json={"model": "qwen2.5:0.5b"})
        assert again.status_code == 404
        bad = admin.request("DELETE", "/admin/models", json={"nodes": ["a"]})
    assert (bad.status_code, bad.json()) == (400, {"error": "model is required"})
    assert a.state.find("llama3.2:1b") is not None


def test_usage_counts_requests_and_tokens_per_key(
    fleet_of_two: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, _, _ = fleet_of_two
    body = {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]}
    with gateway.client(keys.user) as client:
        for _ in range(3):
            assert client.post("/api/chat", json=body).is_success
    with gateway.client(keys.admin) as admin:
        usage = admin.get("/admin/usage").json()["keys"]
    assert usage["alice"]["requests"] == 3
    assert usage["alice"]["tokens_in"] > 0 and usage["alice"]["tokens_out"] > 0
    assert keys.user not in json.dumps(usage)
