"""The gateway app over real simulator nodes: keys, roles, errors, limits, routing, streams."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ollama_fleet.gateway.accesslog import ACCESS_LOGGER
from ollama_fleet.gateway.routes import ROUTES, Route
from ollama_fleet.gateway.settings import Balancing, Strategy
from ollama_fleet.simulator.config import Faults
from ollama_fleet.testbed.servers import free_port

from .conftest import Keys
from .live import (
    RunningGateway,
    SimNode,
    gateway_config,
    make_key,
    running_gateway,
    sim_node,
    wait_for,
)

pytestmark = pytest.mark.integration

CHAT = {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hello"}]}
KEYED = [
    pytest.param(route, method, id=f"{method} {route.path}")
    for route in ROUTES
    if route.kind is not None
    for method in sorted(route.methods)
]


def _chat(model: str = "llama3.2:1b", **fields: Any) -> dict[str, Any]:
    return {**CHAT, "model": model, **fields}


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


@pytest.mark.parametrize(("route", "method"), KEYED)
@pytest.mark.parametrize("credentials", ["none", "wrong", "expired", "not bearer"])
def test_every_keyed_route_answers_401_without_a_valid_key(
    shared_gateway: RunningGateway, keys: Keys, route: Route, method: str, credentials: str
) -> None:
    headers = {
        "none": {},
        "wrong": {"Authorization": "Bearer ofk_not-a-key"},
        "expired": {"Authorization": f"Bearer {keys.expired}"},
        "not bearer": {"Authorization": f"Basic {keys.user}"},
    }[credentials]
    with shared_gateway.client() as client:
        answer = client.request(method, route.example, headers=headers, json=CHAT)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert keys.expired not in answer.text and keys.user not in answer.text
    if method != "HEAD" and route.api == "sessions":
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "https://ollama-fleet.dev/problems/unauthorized"
    elif method != "HEAD":
        error = answer.json()["error"]
        if route.api == "openai":
            assert error["type"] == "authentication_error"
        else:
            assert isinstance(error, str)


def test_the_open_routes_need_no_key(shared_gateway: RunningGateway) -> None:
    with shared_gateway.client() as client:
        assert client.get("/").text == "ollama-fleet gateway"
        assert client.get("/health").json() == {
            "status": "ok",
            "services": {"database": "ok", "ollama": "ok"},
        }
        assert client.get("/ready").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_a_readonly_key_lists_and_shows_but_may_not_generate(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with shared_gateway.client(keys.readonly) as client:
        names = {m["name"] for m in client.get("/api/tags").json()["models"]}
        assert names == {"llama3.2:1b", "qwen2.5:0.5b"}
        assert client.post("/api/show", json={"model": "qwen2.5:0.5b"}).status_code == 200
        refused = client.post("/api/chat", json=CHAT)
        assert refused.status_code == 403
        assert "readonly" in refused.json()["error"]
        openai = client.post("/v1/chat/completions", json=CHAT)
        assert openai.status_code == 403
        assert openai.json()["error"]["type"] == "permission_error"


def test_a_key_limited_to_some_models_sees_and_uses_only_those(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with shared_gateway.client(keys.qwen_only) as client:
        assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ["qwen2.5:0.5b"]
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["qwen2.5:0.5b"]
        refused = client.post("/api/chat", json=_chat(stream=False))
        assert refused.status_code == 403
        assert "llama3.2:1b" in refused.json()["error"]
        assert client.post("/api/chat", json=_chat("qwen2.5:0.5b", stream=False)).is_success


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/sha256:" + "0" * 64),
    ],
)
def test_ollamas_write_endpoints_are_refused_even_for_an_admin(
    shared_gateway: RunningGateway, keys: Keys, method: str, path: str
) -> None:
    with shared_gateway.client(keys.admin) as client:
        answer = client.request(method, path, json={"model": "llama3.2:1b"})
    assert answer.status_code == 403
    assert "ollama-fleet gateway pull" in answer.json()["error"]


def test_a_model_no_node_has_is_a_404_in_the_shape_of_each_api(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with shared_gateway.client(keys.user) as client:
        native = client.post("/api/chat", json=_chat("nope:7b"))
        assert native.status_code == 404
        assert native.json() == {"error": 'model "nope:7b" not found, try pulling it first'}
        openai = client.post("/v1/chat/completions", json=_chat("nope:7b"))
        assert openai.status_code == 404
        assert openai.json()["error"]["code"] == "model_not_found"
        assert client.get("/v1/models/nope:7b").status_code == 404
        assert client.get("/v1/models/qwen2.5:0.5b").json()["id"] == "qwen2.5:0.5b"


SMUGGLED = [
    pytest.param("/api/chat", b'{"model":"qwen2.5:0.5b","Model":"llama3.2:1b"}', id="chat Model"),
    pytest.param("/api/chat", b'{"model":"llama3.2:1b","model":"qwen2.5:0.5b"}', id="chat twice"),
    pytest.param("/api/chat", b'{"MODEL":"llama3.2:1b"}', id="chat MODEL alone"),
    pytest.param(
        "/v1/chat/completions", b'{"model":"qwen2.5:0.5b","mOdEl":"llama3.2:1b"}', id="v1 mOdEl"
    ),
    pytest.param(
        "/v1/embeddings", b'{"model":"qwen2.5:0.5b","model":"qwen2.5:0.5b"}', id="v1 twice"
    ),
    pytest.param("/api/show", b'{"name":"qwen2.5:0.5b","Name":"llama3.2:1b"}', id="show Name"),
    pytest.param("/api/show", b'{"model":"qwen2.5:0.5b","MoDeL":"llama3.2:1b"}', id="show MoDeL"),
    pytest.param("/api/show", b'{"name":"qwen2.5:0.5b","name":"llama3.2:1b"}', id="show twice"),
]


@pytest.mark.parametrize(("path", "body"), SMUGGLED)
def test_a_model_key_ollama_would_also_read_is_refused(
    shared_gateway: RunningGateway, keys: Keys, path: str, body: bytes
) -> None:
    # Go's encoding/json matches keys case-insensitively and the last one wins: the gateway
    # must check the model Ollama will run, so it refuses what it cannot read the same way
    headers = {"content-type": "application/json"}
    with shared_gateway.client(keys.qwen_only) as client:
        answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == 400
    error = answer.json()["error"]
    message = error["message"] if path.startswith("/v1/") else error
    assert isinstance(message, str) and ("once" in message or "twice" in message)
    if path.startswith("/v1/"):
        assert error["type"] == "invalid_request_error"


def test_bad_bodies_and_unknown_paths_get_clear_errors(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with shared_gateway.client(keys.user) as client:
        assert client.post("/api/chat", content=b"{not json").status_code == 400
        missing = client.post("/api/chat", json={"messages": []})
        assert (missing.status_code, missing.json()) == (400, {"error": "model is required"})
        named = client.post("/api/chat", json={"name": "llama3.2:1b", "messages": []})
        assert (named.status_code, named.json()) == (400, {"error": "model is required"})
        assert client.post("/api/chat", content=b"x" * (16 * 1024 * 1024 + 1)).status_code == 413
        assert client.get("/api/nothing").json() == {"error": "404 page not found"}
        assert client.get("/v1/nothing").json()["error"]["message"] == "404 page not found"
        wrong = client.get("/api/chat")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")


def test_version_is_the_lowest_of_the_healthy_nodes(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with shared_gateway.client(keys.readonly) as client:
        assert client.get("/api/version").json() == {"version": "0.12.0-simulator"}


def test_ps_merges_the_nodes_and_says_where_each_model_runs(
    shared_gateway: RunningGateway, keys: Keys, node_b: SimNode
) -> None:
    with shared_gateway.client(keys.user) as client:
        client.post(
            "/api/generate", json={"model": "qwen2.5:0.5b", "prompt": "x"}
        ).raise_for_status()
        running = wait_for(
            "qwen to show in the merged /api/ps",
            lambda: client.get("/api/ps").json()["models"],
        )
    assert [(m["name"], m["node"]) for m in running] == [("qwen2.5:0.5b", "b")]


def test_a_model_only_one_node_has_goes_to_that_node(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with shared_gateway.client(keys.user) as client:
        for _ in range(4):
            answer = client.post("/api/chat", json=_chat("qwen2.5:0.5b", stream=False))
            assert answer.headers["x-gateway-node"] == "b"


def test_the_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with shared_gateway.client(keys.limited) as client:
        first = client.post("/api/chat", json=_chat(stream=False))
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert client.post("/api/chat", json=_chat(stream=False)).status_code == 200
        refused = client.post("/v1/chat/completions", json=_chat())
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.json()["error"]["code"] == "requests"
    with shared_gateway.client(keys.admin) as admin:
        usage = admin.get("/admin/usage").json()["keys"]["slowpoke"]
    assert usage["rate_limited"] == 1 and usage["requests"] == 2


def test_metrics_have_every_family_after_a_request(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with shared_gateway.client(keys.user) as client:
        assert client.post("/api/chat", json=_chat(stream=False)).is_success
        text = client.get("/metrics").text
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "gateway_requests",
        "gateway_time_to_first_token_seconds",
        "gateway_tokens",
        "gateway_in_flight",
        "gateway_queue_depth",
        "gateway_breaker_state",
        "gateway_node_healthy",
        "gateway_added_latency_seconds",
        "gateway_rate_limited",
        "gateway_info",
    } <= families
    assert keys.user not in text


# -- tests that change nodes or faults: each has its own nodes and gateway ----------------


@pytest.fixture
def slow_pair(keys: Keys) -> Iterator[tuple[RunningGateway, SimNode, SimNode]]:
    """Nodes a and b with llama3.2:1b at 20 tokens/s, one slot and no queue each."""
    with sim_node(tps=20) as a, sim_node(tps=20) as b:
        config = gateway_config({"a": a.url, "b": b.url}, keys.specs, max_parallel=1, queue=0)
        with running_gateway(config) as gateway:
            yield gateway, a, b


class _Stream:
    """A streaming /api/chat in a thread: `first` is set at its first line, `lines` at the end."""

    def __init__(self, gateway: RunningGateway, key: str, body: dict[str, Any]) -> None:
        self.first = threading.Event()
        self.node: str | None = None
        self.lines: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(gateway, key, body))
        self._thread.start()

    def _run(self, gateway: RunningGateway, key: str, body: dict[str, Any]) -> None:
        with gateway.client(key) as client, client.stream("POST", "/api/chat", json=body) as r:
            self.node = r.headers.get("x-gateway-node")
            for line in r.iter_lines():
                self.lines.append(json.loads(line))
                self.first.set()
                if self.stop.is_set():
                    return

    def join(self) -> list[dict[str, Any]]:
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()
        return self.lines


def test_a_full_queue_answers_503_with_retry_after(
    slow_pair: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, _, _ = slow_pair
    streams = [_Stream(gateway, keys.user, _chat(options={"num_predict": 400})) for _ in "ab"]
    for stream in streams:
        assert stream.first.wait(10)
    with gateway.client(keys.user) as client:
        refused = client.post("/api/chat", json=_chat(stream=False))
    for stream in streams:
        stream.stop.set()
        stream.join()
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert {s.node for s in streams} == {"a", "b"}


def test_a_client_that_goes_away_stops_the_generation_on_the_node(
    slow_pair: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, a, b = slow_pair
    stream = _Stream(gateway, keys.user, _chat(options={"num_predict": 400}))
    assert stream.first.wait(10)
    stream.stop.set()
    stream.join()
    node = a if stream.node == "a" else b

    def cancelled() -> bool:
        return bool(node.stats()["generations"]["cancelled"] == 1)

    wait_for("the node to see its generation cancelled", cancelled)
    assert node.stats()["generations"]["completed"] == 0
    wait_for(
        "the slot to come back", lambda: all(s.in_flight == 0 for s in gateway.app.pool.snapshot())
    )


def test_a_drained_node_gets_nothing_new_and_finishes_its_stream(
    slow_pair: tuple[RunningGateway, SimNode, SimNode], keys: Keys
) -> None:
    gateway, _, _ = slow_pair
    stream = _Stream(gateway, keys.user, _chat(options={"num_predict": 30}))
    assert stream.first.wait(10)
    busy = stream.node
    assert busy is not None
    with gateway.client(keys.admin) as admin:
        state = admin.post(f"/admin/nodes/{busy}/drain").json()
        assert state["draining"] is True and state["in_flight"] == 1
    with gateway.client(keys.user) as client:
        for _ in range(3):
            answer = client.post("/api/chat", json=_chat(stream=False, options={"num_predict": 2}))
            assert answer.headers["x-gateway-node"] != busy
    lines = stream.join()
    assert lines[-1]["done"] is True


def test_a_stream_cut_upstream_ends_with_an_error_line(keys: Keys) -> None:
    with sim_node() as node:
        node.state.faults = Faults(cut_stream_after=3)
        config = gateway_config({"a": node.url}, keys.specs)
        with running_gateway(config) as gateway, gateway.client(keys.user) as client:
            answer = client.post("/api/chat", json=_chat())
            openai = client.post("/v1/chat/completions", json=_chat(stream=True))
    lines = _lines(answer)
    assert answer.status_code == 200
    assert len(lines) == 4 and "broke off" in lines[-1]["error"]
    assert openai.text.rstrip().splitlines()[-1].startswith('data: {"error":')


def test_a_model_loaded_on_one_node_is_sent_there(keys: Keys) -> None:
    with sim_node() as a, sim_node() as b:
        httpx.post(
            b.url + "/api/generate",
            json={"model": "llama3.2:1b", "prompt": "x", "stream": False},
            trust_env=False,
        ).raise_for_status()
        with running_gateway(gateway_config({"a": a.url, "b": b.url}, keys.specs)) as gateway:
            wait_for(
                "the gateway to see the model loaded on b",
                lambda: gateway.app.pool.snapshot()[1].loaded,
            )
            with gateway.client(keys.user) as client:
                nodes = {
                    client.post("/api/chat", json=_chat(stream=False)).headers["x-gateway-node"]
                    for _ in range(5)
                }
        assert a.stats()["generations"]["started"] == 0
    assert nodes == {"b"}


def test_ready_is_503_while_no_node_is_healthy(keys: Keys) -> None:
    config = gateway_config({"gone": f"http://127.0.0.1:{free_port()}"}, keys.specs)
    with running_gateway(config, wait=False) as gateway, gateway.client(keys.user) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        assert client.get("/api/version").status_code == 503
        assert client.get("/api/tags").json() == {"models": []}


def _nodes_of(client: httpx.Client, session: str) -> set[str]:
    headers = {"x-session-id": session}
    return {
        client.post("/api/chat", json=_chat(stream=False), headers=headers).headers[
            "x-gateway-node"
        ]
        for _ in range(4)
    }


def test_the_hash_header_keeps_a_session_on_one_node(keys: Keys) -> None:
    with sim_node() as a, sim_node() as b, sim_node() as c:
        balancing = Balancing(strategy=Strategy.HASH, queue_timeout_s=10.0)
        config = gateway_config(
            {"a": a.url, "b": b.url, "c": c.url}, keys.specs, balancing=balancing
        )
        with running_gateway(config) as gateway, gateway.client(keys.user) as client:
            seen = {s: _nodes_of(client, s) for s in ("s1", "s2", "s3", "s4", "s5", "s6")}
    assert all(len(where) == 1 for where in seen.values())
    assert len(set().union(*seen.values())) > 1


def _head_of_answer(url: str, request: bytes) -> bytes:
    """Send `request` (raw, its body maybe unfinished) and read the answer's status and headers."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer


def test_a_key_at_its_concurrency_limit_gets_429_before_it_sends_its_body(keys: Keys) -> None:
    key, spec = make_key("one-at-a-time", max_concurrent=1)
    with sim_node(tps=20) as node, running_gateway(gateway_config({"a": node.url}, (spec,))) as gw:
        stream = _Stream(gw, key, _chat(options={"num_predict": 400}))
        assert stream.first.wait(10)
        with gw.client(key) as client:
            refused = client.post("/api/chat", json=_chat(stream=False))
        # the body is not read first: a client at its limit cannot make the gateway hold one
        head = _head_of_answer(
            gw.url,
            b"POST /api/chat HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + key.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{",
        )  # fmt: skip
        stream.stop.set()
        stream.join()
        with gw.client(key) as client:  # every way out gave the slot back
            assert client.post("/api/chat", content=b"{oops").status_code == 400
            assert client.post("/api/chat", json=_chat("nope:1b")).status_code == 404
            assert client.post("/api/chat", json=_chat(stream=False)).status_code == 200
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"].startswith("key 'one-at-a-time' has 1 requests in flight")
    assert head.startswith(b"HTTP/1.1 429 ")
    assert b"\r\nretry-after: 1\r\n" in head.lower()


def test_an_answer_where_nothing_ran_charges_no_rate_limit(keys: Keys) -> None:
    key, spec = make_key("metered", rpm=5, tpm=1000)
    body = _chat(stream=False, options={"num_predict": 5})  # estimate: 5 // 4 + 1 + 5 = 7
    with sim_node() as node:
        config = gateway_config({"a": node.url}, (spec, *keys.specs))
        with running_gateway(config) as gw, gw.client(key) as client:
            with gw.client(keys.admin) as root:
                root.post("/admin/nodes/a/drain").raise_for_status()
                for _ in range(2):
                    assert client.post("/api/chat", json=body).status_code == 503
                root.post("/admin/nodes/a/undrain").raise_for_status()
            served = client.post("/api/chat", json=body)
    assert served.status_code == 200
    assert served.headers["x-ratelimit-remaining-requests"] == "4"
    assert served.headers["x-ratelimit-remaining-tokens"] == str(1000 - 7)


def test_a_tpm_below_the_completion_estimate_still_serves_uncapped_requests(keys: Keys) -> None:
    key, spec = make_key("small", tpm=100)  # < limits.completion_estimate (256)
    with (
        sim_node() as node,
        running_gateway(gateway_config({"a": node.url}, (spec,))) as gw,
        gw.client(key) as client,
    ):
        served = client.post("/api/chat", json=_chat(stream=False))
        long_prompt = [{"role": "user", "content": "x" * 800}]  # about 201 tokens
        refused = client.post("/api/chat", json=_chat(stream=False, messages=long_prompt))
    assert served.status_code == 200
    assert refused.status_code == 429
    assert "retry-after" not in refused.headers  # waiting cannot help: the prompt is too long
    assert "prompt alone" in refused.json()["error"]


def test_model_labels_are_one_series_per_model_whatever_its_spelling(keys: Keys) -> None:
    key, spec = make_key("speller")
    with (
        sim_node() as node,
        running_gateway(gateway_config({"a": node.url}, (spec,))) as gw,
        gw.client(key) as client,
    ):
        for model in ("llama3.2:1b", "LLAMA3.2:1b", " llama3.2:1b", "Llama3.2:1B", "x:1b"):
            client.post("/api/chat", json=_chat(model, stream=False))
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    models = {
        s.labels["model"]
        for s in families["gateway_requests"].samples
        if s.name == "gateway_requests_total" and s.labels["key"] == "speller"
    }
    assert models == {"llama3.2:1b", ""}  # "" for a model no node lists


def test_the_access_log_has_one_json_line_per_request_without_secrets(
    shared_gateway: RunningGateway, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    prompt = "a secret prompt about penguins"
    body = _chat("qwen2.5:0.5b", stream=False, messages=[{"role": "user", "content": prompt}])
    with shared_gateway.client(keys.user) as client:
        assert client.post("/api/chat", json=body).is_success
        assert client.get("/api/tags", headers={"Authorization": "Bearer nope"}).status_code == 401

    def access_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]

    # a line is written once the answer went out: the client may read it before that
    lines = wait_for("both access lines", lambda: len(access_lines()) >= 2 and access_lines())
    served, refused = (json.loads(line) for line in lines[-2:])
    assert (served["path"], served["status"], served["key"], served["node"]) == (
        "/api/chat",
        200,
        "alice",
        "b",
    )
    assert served["outcome"] == "ok" and served["tokens_out"] > 0 and served["bytes"] > 0
    assert (refused["status"], refused["key"], refused["outcome"]) == (401, None, "unauthorized")
    text = "\n".join(lines)
    assert prompt not in text and "penguins" not in text and keys.user not in text
