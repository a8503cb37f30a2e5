"""relay() under uvicorn in front of real simulators, read by a real streaming httpx client."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from ollama_fleet.gateway.nodes import Pool
from ollama_fleet.gateway.proxy import Outcome, relay
from ollama_fleet.gateway.settings import Breaker, GatewayConfig, NodeSpec, Timeouts
from ollama_fleet.gateway.upstream import Upstream
from ollama_fleet.simulator import Faults, SimulatorConfig, create_app
from ollama_fleet.testbed.servers import free_port, serve_in_thread

from .live import BrokenNode

pytestmark = pytest.mark.integration

MODEL = "llama3.2:1b"


@dataclass
class Gateway:
    """A tiny ASGI app around relay(): every request goes to `candidates` in order."""

    pool: Pool
    upstream: Upstream
    candidates: Sequence[str]
    queue_timeout_s: float = 5.0
    outcomes: queue.Queue[Outcome] = field(default_factory=queue.Queue)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/_test/close":
            await self.upstream.aclose()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        outcome = await relay(
            scope, receive, send, body=body, candidates=self.candidates, pool=self.pool,
            upstream=self.upstream, api="openai" if scope["path"].startswith("/v1/") else "ollama",
            path=scope["path"], queue_timeout_s=self.queue_timeout_s,
            extra_headers=(("x-ratelimit-remaining-requests", "9"),),
        )  # fmt: skip
        self.outcomes.put(outcome)

    def outcome(self) -> Outcome:
        return self.outcomes.get(timeout=10)


@dataclass
class Fleet:
    gateway: Gateway
    client: httpx.Client
    sims: dict[str, str]  # node name -> simulator base URL (absent for dead nodes)

    def stats(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(self.sims[name] + "/_simulator/stats").json()
        return answer


@dataclass(frozen=True)
class Node:
    name: str
    sim: SimulatorConfig | None  # None: nothing listens on its port (unless `url` is set)
    max_parallel: int = 4
    queue: int = 8
    url: str | None = None  # a server of the test's own


@contextmanager
def fleet(*nodes: Node, queue_timeout_s: float = 5.0, first_byte_s: float = 10) -> Iterator[Fleet]:
    with ExitStack() as stack:
        specs, sims = [], {}
        for node in nodes:
            if node.url is not None:
                url = node.url
            elif node.sim is None:
                url = f"http://127.0.0.1:{free_port()}"
            else:
                port = stack.enter_context(serve_in_thread(create_app(node.sim)))
                url = sims[node.name] = f"http://127.0.0.1:{port}"
            specs.append(
                NodeSpec(name=node.name, url=url, max_parallel=node.max_parallel, queue=node.queue)
            )
        config = GatewayConfig(nodes=tuple(specs), breaker=Breaker(failures=1, cooldown_s=60))
        gateway = Gateway(
            pool=Pool(config),
            upstream=Upstream(Timeouts(connect_s=5, first_byte_s=first_byte_s, read_s=10)),
            candidates=[n.name for n in nodes],
            queue_timeout_s=queue_timeout_s,
        )
        port = stack.enter_context(serve_in_thread(gateway))
        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20))
        stack.callback(client.post, "/_test/close")
        yield Fleet(gateway=gateway, client=client, sims=sims)


def sim(tokens_per_second: float = 0, **faults: Any) -> SimulatorConfig:
    return SimulatorConfig(tokens_per_second=tokens_per_second, faults=Faults(**faults))


def chat(tokens: int, *, stream: bool = True) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "tell me about the sky"}],
        "options": {"num_predict": tokens},
        "stream": stream,
    }


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_first_chunk_arrives_while_the_node_still_generates() -> None:
    with fleet(Node("a", sim(tokens_per_second=10))) as f:
        with f.client.stream("POST", "/api/chat", json=chat(5)) as response:
            lines = response.iter_lines()
            first = json.loads(next(lines))
            during = f.stats("a")
            rest = [json.loads(line) for line in lines]
        assert response.headers["x-gateway-node"] == "a"
        assert response.headers["x-ratelimit-remaining-requests"] == "9"
        assert response.headers["content-type"] == "application/x-ndjson"
        assert first["done"] is False
        assert during["generations"] == {"started": 1, "completed": 0, "cancelled": 0}
        assert rest[-1]["done"] is True
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.status, outcome.node, outcome.started) == (
            "ok",
            200,
            "a",
            True,
        )
        assert (outcome.tokens_out, outcome.attempts) == (5, 1)
        assert outcome.tokens_in is not None and outcome.tokens_in > 0
        assert outcome.ttfb_s is not None and outcome.bytes_out > 0
        assert f.stats("a")["generations"]["completed"] == 1


def test_a_non_streaming_answer_is_relayed_and_counted() -> None:
    with fleet(Node("a", sim())) as f:
        response = f.client.post("/api/chat", json=chat(3, stream=False))
        assert response.status_code == 200
        assert response.json()["eval_count"] == 3
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.tokens_out, outcome.bytes_out) == (
            "ok", 3, len(response.content)
        )  # fmt: skip


def test_a_closed_port_fails_over_to_the_next_node() -> None:
    with fleet(Node("dead", None), Node("good", sim())) as f:
        response = f.client.post("/api/chat", json=chat(2, stream=False))
        assert response.status_code == 200
        assert response.headers["x-gateway-node"] == "good"
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.node, outcome.attempts) == ("ok", "good", 2)
        assert [s.breaker for s in f.gateway.pool.snapshot()] == ["open", "closed"]


def test_a_node_that_hangs_up_before_answering_fails_over() -> None:
    with (
        BrokenNode(head=b"", content_type="application/json") as hangup,
        fleet(Node("hangup", None, url=hangup.url), Node("good", sim())) as f,
    ):
        response = f.client.post("/api/chat", json=chat(2, stream=False))
        assert (response.status_code, response.headers["x-gateway-node"]) == (200, "good")
        assert f.gateway.outcome().attempts == 2


def test_a_503_fails_over_and_a_404_is_relayed_as_it_is() -> None:
    with fleet(Node("busy", sim(status=503)), Node("good", sim())) as f:
        response = f.client.post("/api/chat", json=chat(2, stream=False))
        assert response.headers["x-gateway-node"] == "good"
        assert f.stats("busy")["requests"] == {"/api/chat": 1}
        assert f.gateway.outcome().attempts == 2
        f.gateway.candidates = ["good"]
        missing = f.client.post("/api/chat", json={"model": "nope:1b", "messages": []})
        assert missing.status_code == 404
        assert "nope" in missing.json()["error"]
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.status) == ("ok", 404)
        assert f.gateway.pool.snapshot()[1].breaker == "closed"


def test_when_every_node_fails_the_client_gets_502_in_its_api_shape() -> None:
    with fleet(Node("dead", None), Node("broken", sim(status=503))) as f:
        native = f.client.post("/api/chat", json=chat(2))
        assert native.status_code == 502
        # the node's own error text reaches the client: its best clue
        assert native.json()["error"].startswith(
            "no node answered: dead (connect), broken (HTTP 503: "
        )
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.node, outcome.attempts, outcome.started) == (
            "upstream_error", "broken", 2, False
        )  # fmt: skip
        assert outcome.error is not None and "HTTP 503" in outcome.error
        # both breakers are open now: nobody takes the next request
        openai = f.client.post("/v1/chat/completions", json=chat(2))
        assert openai.status_code == 503
        assert openai.headers["retry-after"] == "5"
        assert openai.json()["error"]["type"] == "server_error"
        assert f.gateway.outcome().kind == "no_node"


def test_an_ollama_500_is_relayed_as_it_is_and_no_failure_of_the_node() -> None:
    # Ollama refuses some requests with a 500 (a model too big for memory): running it on
    # every node would only repeat that, and a user could open every breaker with them
    with fleet(Node("full", sim(status=500)), Node("good", sim())) as f:
        answer = f.client.post("/api/chat", json=chat(2, stream=False))
        assert answer.status_code == 500
        assert answer.headers["x-gateway-node"] == "full"
        assert isinstance(answer.json()["error"], str) and answer.json()["error"]
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.status, outcome.attempts) == ("ok", 500, 1)
        assert f.stats("good")["requests"] == {}
        again = f.client.post("/api/chat", json=chat(2, stream=False))  # failures=1: still open?
        assert again.status_code == 500
        assert [s.breaker for s in f.gateway.pool.snapshot()] == ["closed", "closed"]


def test_no_answer_within_first_byte_is_a_504_and_not_run_again_elsewhere() -> None:
    slow = Node("slow", sim(latency_ms=3000))
    with fleet(slow, Node("good", sim()), first_byte_s=0.3) as f:
        answer = f.client.post("/v1/chat/completions", json=chat(2, stream=False))
        assert answer.status_code == 504
        error = answer.json()["error"]
        assert (error["message"], error["type"]) == (
            "node slow did not answer within 0.3 s", "server_error"
        )  # fmt: skip
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.status, outcome.attempts) == ("upstream_error", 504, 1)
        assert f.stats("good")["requests"] == {}


@pytest.mark.parametrize(
    ("api", "head", "joint"),
    [
        ("ollama", b'{"model":"m","mess', b"\n"),
        ("openai", b'data: {"id":"c-1","choi', b"\n\n"),
    ],
)
def test_a_stream_broken_mid_line_gets_its_error_on_a_line_of_its_own(
    api: str, head: bytes, joint: bytes
) -> None:
    path, kind = ("/api/chat", "application/x-ndjson")
    if api == "openai":
        path, kind = ("/v1/chat/completions", "text/event-stream")
    with (
        BrokenNode(head=head, content_type=kind) as node,
        fleet(Node("half", None, url=node.url)) as f,
    ):
        with f.client.stream("POST", path, json=chat(8)) as response:
            raw = response.iter_raw()
            first = next(raw)
            node.cut.set()
            rest = b"".join(raw)
        assert f.gateway.outcome().kind == "stream_broken"
    assert first == head
    assert rest.startswith(joint)
    last = rest.removeprefix(joint)
    if api == "ollama":
        assert last.endswith(b"\n") and last.count(b"\n") == 1
        message = json.loads(last)["error"]
    else:
        assert last.startswith(b"data: ") and last.endswith(b"\n\n")
        message = json.loads(last.removeprefix(b"data: "))["error"]["message"]
    assert message.startswith("upstream node half broke off the stream: ")


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_a_stream_cut_mid_way_ends_with_an_error_chunk(api: str) -> None:
    path = "/api/chat" if api == "ollama" else "/v1/chat/completions"
    with fleet(Node("cut", sim(cut_stream_after=2))) as f:
        with f.client.stream("POST", path, json=chat(8)) as response:
            text = response.read().decode()
        assert response.status_code == 200
        if api == "ollama":
            lines = text.splitlines()
            assert len(lines) == 3
            error = json.loads(lines[-1])["error"]
        else:
            events = [e for e in text.split("\n\n") if e]
            assert len(events) == 3
            error = json.loads(events[-1].removeprefix("data: "))["error"]
            assert error["type"] == "server_error"
            error = error["message"]
        assert error.startswith("upstream node cut broke off the stream: ")
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.started) == ("stream_broken", True)
        assert f.gateway.pool.snapshot()[0].breaker == "open"  # failures=1


def test_a_client_gone_mid_stream_stops_the_generation() -> None:
    with fleet(Node("a", sim(tokens_per_second=20))) as f:
        with f.client.stream("POST", "/api/chat", json=chat(1000)) as response:
            lines = response.iter_lines()
            next(lines)
        outcome = f.gateway.outcome()
        assert (outcome.kind, outcome.node, outcome.started) == ("client_cancel", "a", True)
        wait_for(lambda: f.stats("a")["generations"]["cancelled"] == 1, "generation cancelled")
        stats = f.stats("a")
        assert stats["generations"]["completed"] == 0
        assert stats["tokens_generated"] < 1000
        state = f.gateway.pool.snapshot()[0]
        assert (state.in_flight, state.breaker) == (0, "closed")


def test_a_full_queue_is_503_with_retry_after_and_a_queue_timeout_too() -> None:
    with fleet(Node("a", sim(tokens_per_second=20), max_parallel=1, queue=0)) as f:
        with f.client.stream("POST", "/api/chat", json=chat(1000)) as holding:
            lines = holding.iter_lines()  # kept: a dropped generator closes the response
            next(lines)
            refused = f.client.post("/api/chat", json=chat(1))
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert "busy" in refused.json()["error"]
            assert f.gateway.outcome().kind == "queue_full"
        assert f.gateway.outcome().kind == "client_cancel"
    with fleet(Node("a", sim(tokens_per_second=20), max_parallel=1, queue=1),
               queue_timeout_s=0.2) as f:  # fmt: skip
        with f.client.stream("POST", "/api/chat", json=chat(1000)) as holding:
            lines = holding.iter_lines()  # kept: a dropped generator closes the response
            next(lines)
            waited = f.client.post("/v1/chat/completions", json=chat(1))
            assert waited.status_code == 503
            assert "no free slot on node a" in waited.json()["error"]["message"]
            assert f.gateway.outcome().kind == "queue_timeout"
        assert f.gateway.outcome().kind == "client_cancel"
        assert f.gateway.pool.snapshot()[0].in_flight == 0
