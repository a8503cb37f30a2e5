"""Tests of what the simulator tells tests: /_simulator/stats, /_simulator/pace, and the
/v1/completions and /v1/embeddings endpoints a gateway relays (through the real openai client)."""

from __future__ import annotations

import base64
import math
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import openai
import pytest

from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.simulator.generation import DEFAULT_TOKENS, MAX_TOKENS
from ollama_fleet.testbed.servers import serve_in_thread

pytestmark = pytest.mark.integration

STATS = "/_simulator/stats"
PACE = "/_simulator/pace"
SLOW = 20.0  # tokens/s: a MAX_TOKENS reply would take minutes, so a test can leave mid-way
CHAT: dict[str, Any] = {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]}
LONG = {"options": {"num_predict": MAX_TOKENS}}
Stats = dict[str, Any]


def zero_stats() -> Stats:
    return {
        "requests": {},
        "generations": {"started": 0, "completed": 0, "cancelled": 0},
        "in_flight": 0,
        "max_in_flight": 0,
        "tokens_generated": 0,
    }


@pytest.fixture
def sim() -> Iterator[httpx.Client]:
    """A simulator of its own (fresh counters, unpaced) and an httpx client for it."""
    with (
        serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        yield client


def stats(client: httpx.Client) -> Stats:
    response = client.get(STATS)
    assert response.status_code == 200, response.text
    body: Stats = response.json()
    return body


def wait_for(client: httpx.Client, what: str, done: Callable[[Stats], bool]) -> Stats:
    """Poll the stats until `done` holds (a failure after 10 s names `what`)."""
    deadline = time.monotonic() + 10
    while True:
        current = stats(client)
        if done(current):
            return current
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; stats: {current}")
        time.sleep(0.01)


def idle(client: httpx.Client) -> Stats:
    return wait_for(client, "no request in flight", lambda s: s["in_flight"] == 0)


def set_pace(client: httpx.Client, tokens_per_second: float) -> None:
    response = client.put(PACE, json={"tokens_per_second": tokens_per_second})
    assert response.json() == {"tokens_per_second": tokens_per_second}


def test_a_stream_that_runs_to_its_end(sim: httpx.Client) -> None:
    assert stats(sim) == zero_stats()
    with sim.stream("POST", "/api/chat", json=CHAT | {"options": {"num_predict": 5}}) as reply:
        lines = list(reply.iter_lines())
    assert len(lines) == 6
    assert idle(sim) == zero_stats() | {
        "requests": {"/api/chat": 1},
        "generations": {"started": 1, "completed": 1, "cancelled": 0},
        "max_in_flight": 1,
        "tokens_generated": 5,
    }


def test_non_streaming_generations_of_every_kind(sim: httpx.Client) -> None:
    assert sim.post("/api/chat", json=CHAT | {"stream": False}).status_code == 200
    generate = {"model": "llama3.2:1b", "prompt": "a b", "stream": False}
    assert sim.post("/api/generate", json=generate).status_code == 200
    oai = {"model": "llama3.2:1b", "max_tokens": 3}
    chat = sim.post("/v1/chat/completions", json=oai | {"messages": CHAT["messages"]})
    assert chat.json()["usage"]["completion_tokens"] == 3
    completion = sim.post("/v1/completions", json=oai | {"prompt": "x", "stream": True})
    assert completion.text.endswith("data: [DONE]\n\n")
    after = idle(sim)
    assert after["generations"] == {"started": 4, "completed": 4, "cancelled": 0}
    assert after["tokens_generated"] == 2 * DEFAULT_TOKENS + 3 + 3
    assert set(after["requests"]) == {
        "/api/chat",
        "/api/generate",
        "/v1/chat/completions",
        "/v1/completions",
    }


def test_a_client_leaving_mid_stream_stops_the_generation(sim: httpx.Client) -> None:
    set_pace(sim, SLOW)
    with sim.stream("POST", "/api/chat", json=CHAT | LONG) as reply:
        lines = reply.iter_lines()
        assert '"done":false' in next(lines)
        assert '"done":false' in next(lines)
    # leaving the block closed the connection with the body unread
    gone = wait_for(sim, "the cancel", lambda s: s["generations"]["cancelled"] == 1)
    assert gone["generations"] == {"started": 1, "completed": 0, "cancelled": 1}
    assert 2 <= gone["tokens_generated"] < MAX_TOKENS
    # a whole generation afterwards adds its own tokens and nothing more
    with sim.stream("POST", "/api/chat", json=CHAT | {"options": {"num_predict": 3}}) as reply:
        assert len(list(reply.iter_lines())) == 4
    after = idle(sim)
    assert after["tokens_generated"] == gone["tokens_generated"] + 3
    assert after["generations"] == {"started": 2, "completed": 1, "cancelled": 1}


def test_an_openai_client_closing_its_stream_cancels(sim: httpx.Client) -> None:
    set_pace(sim, SLOW)
    with openai.OpenAI(
        base_url=f"{str(sim.base_url).rstrip('/')}/v1", api_key="x", max_retries=0
    ) as oai:
        stream = oai.completions.create(
            model="llama3.2:1b", prompt="go", max_tokens=MAX_TOKENS, stream=True
        )
        assert next(iter(stream)).choices[0].text == "go"
        stream.close()
    gone = wait_for(sim, "the cancel", lambda s: s["generations"]["cancelled"] == 1)
    assert gone["tokens_generated"] < MAX_TOKENS
    assert idle(sim)["requests"] == {"/v1/completions": 1}


def test_a_non_streaming_client_giving_up_cancels(sim: httpx.Client) -> None:
    set_pace(sim, SLOW)
    with pytest.raises(httpx.ReadTimeout):
        sim.post(
            "/api/generate",
            json={"model": "llama3.2:1b", "prompt": "x"} | LONG | {"stream": False},
            timeout=httpx.Timeout(10, read=0.3),
        )
    gone = wait_for(sim, "the cancel", lambda s: s["generations"]["cancelled"] == 1)
    assert gone["generations"]["completed"] == 0
    assert gone["tokens_generated"] < MAX_TOKENS
    assert idle(sim)["in_flight"] == 0


def test_max_in_flight_is_the_peak(sim: httpx.Client) -> None:
    set_pace(sim, SLOW)
    with ExitStack() as stack:
        readers = []  # kept: dropping a line iterator closes its response
        for _ in range(3):
            reply = stack.enter_context(sim.stream("POST", "/api/chat", json=CHAT | LONG))
            readers.append(reply.iter_lines())
            next(readers[-1])
        busy = wait_for(sim, "three in flight", lambda s: s["in_flight"] == 3)
        assert busy["max_in_flight"] == 3
        assert busy["generations"]["started"] == 3
    done = wait_for(sim, "three cancels", lambda s: s["generations"]["cancelled"] == 3)
    assert idle(sim)["max_in_flight"] == 3
    assert done["requests"] == {"/api/chat": 3}


def test_every_request_counts_by_path_errors_too(sim: httpx.Client) -> None:
    assert sim.put("/_simulator/faults", json={"status": 503, "paths": ["/api/tags"]}).is_success
    assert sim.get("/api/tags").status_code == 503
    assert sim.post("/api/chat", json=CHAT | {"model": "nope"}).status_code == 404
    assert sim.get("/nowhere").status_code == 404
    assert sim.get("/api/version", headers={"Host": "evil.example"}).status_code == 403
    assert sim.post("/api/embed", json={"model": "nomic-embed-text", "input": "a"}).is_success
    assert sim.get(PACE).is_success  # control requests are not counted
    assert idle(sim) == zero_stats() | {
        "requests": {
            "/api/chat": 1,
            "/api/embed": 1,
            "/api/tags": 1,
            "/api/version": 1,
            "/nowhere": 1,
        },
        "max_in_flight": 1,
    }


def test_delete_resets_the_counters(sim: httpx.Client) -> None:
    assert sim.post("/api/chat", json=CHAT | {"stream": False}).is_success
    assert idle(sim)["tokens_generated"] == DEFAULT_TOKENS
    reset = sim.delete(STATS)
    assert reset.status_code == 200
    assert reset.json() == zero_stats()
    assert stats(sim) == zero_stats()


def test_a_reset_keeps_what_is_in_flight_and_forgets_its_end(sim: httpx.Client) -> None:
    set_pace(sim, SLOW)
    with sim.stream("POST", "/api/chat", json=CHAT | LONG) as reply:
        lines = reply.iter_lines()  # kept: dropping it would close the response
        next(lines)
        reset = sim.delete(STATS).json()
        assert reset["in_flight"] == 1
        assert reset["max_in_flight"] == 1
        assert reset["generations"]["started"] == 0
    after = idle(sim)
    assert after["generations"] == {"started": 0, "completed": 0, "cancelled": 0}
    assert after["requests"] == {}


def test_pace_can_change_at_runtime(sim: httpx.Client) -> None:
    assert sim.get(PACE).json() == {"tokens_per_second": 0}
    set_pace(sim, 50)
    final = sim.post("/api/chat", json=CHAT | {"stream": False}).json()
    assert final["eval_count"] / (final["eval_duration"] / 1e9) == pytest.approx(50)
    assert sim.delete(PACE).json() == {"tokens_per_second": 0}
    assert sim.get(PACE).json() == {"tokens_per_second": 0}


@pytest.mark.parametrize(
    "body",
    [
        b'{"tokens_per_second": -1}',
        b'{"tokens_per_second": "fast"}',
        b'{"tokens_per_second": true}',
        b'{"tokens_per_second": Infinity}',
        b'{"tokens_per_second": 5, "bogus": 1}',
        b"{}",
        b"[]",
    ],
)
def test_pace_refuses_bad_values(sim: httpx.Client, body: bytes) -> None:
    response = sim.put(PACE, content=body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert sim.get(PACE).json() == {"tokens_per_second": 0}


def test_control_endpoints_are_exempt_from_faults_and_the_host_check(sim: httpx.Client) -> None:
    assert sim.put("/_simulator/faults", json={"status": 500}).is_success
    foreign = {"Host": "gateway.example"}
    assert sim.get(STATS, headers=foreign).status_code == 200
    assert sim.put(PACE, json={"tokens_per_second": 1}, headers=foreign).status_code == 200


@pytest.fixture(scope="module")
def oai() -> Iterator[openai.OpenAI]:
    """The real openai client against a simulator's /v1."""
    with (
        serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port,
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0) as client,
    ):
        yield client


def test_completions(oai: openai.OpenAI) -> None:
    completion = oai.completions.create(model="llama3.2:1b", prompt="Why is the sky blue?")
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == "llama3.2:1b"
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.text.startswith("why is the sky blue why")
    assert completion.usage is not None
    assert completion.usage.completion_tokens == DEFAULT_TOKENS
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_completions_stream(oai: openai.OpenAI) -> None:
    stream = oai.completions.create(
        model="llama3.2:1b",
        prompt="Why is the sky blue?",
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "why is the sky"
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None] * 4 + ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_completions_refusals(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="not found"):
        oai.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.BadRequestError, match="does not support generate"):
        oai.completions.create(model="nomic-embed-text", prompt="x")


def floats(embedding: list[float] | str) -> list[float]:
    if isinstance(embedding, str):  # base64 of little-endian float32s
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return embedding


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_embeddings(oai: openai.OpenAI, encoding_format: Any) -> None:
    # without encoding_format the openai client asks for base64 and decodes it itself
    extra = {} if encoding_format is None else {"encoding_format": encoding_format}
    result = oai.embeddings.create(model="nomic-embed-text", input=["a b", "c"], **extra)
    assert all(isinstance(d.embedding, str) for d in result.data) == (encoding_format == "base64")
    assert result.object == "list"
    assert result.model == "nomic-embed-text"
    assert [(d.object, d.index) for d in result.data] == [("embedding", 0), ("embedding", 1)]
    native = httpx.post(
        f"{oai.base_url}".removesuffix("v1/") + "api/embed",
        json={"model": "nomic-embed-text", "input": ["a b", "c"]},
    ).json()["embeddings"]
    for got, want in zip((floats(d.embedding) for d in result.data), native, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
        assert math.isclose(sum(v * v for v in got), 1.0, rel_tol=1e-5)
    assert result.usage.prompt_tokens == 3
    assert result.usage.total_tokens == 3


def test_embeddings_refusals(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError, match="encoding format"):
        oai.embeddings.create(
            model="nomic-embed-text", input="x", extra_body={"encoding_format": "int8"}
        )
    missing = httpx.post(f"{oai.base_url}embeddings", json={"model": "nomic-embed-text"})
    assert missing.status_code == 400
    assert missing.json()["error"]["type"] == "invalid_request_error"


def test_stats_are_consistent_under_concurrent_clients(sim: httpx.Client) -> None:
    errors: list[BaseException] = []

    def one() -> None:
        try:
            sim.post("/api/chat", json=CHAT | {"stream": False}).raise_for_status()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    after = idle(sim)
    assert after["generations"] == {"started": 8, "completed": 8, "cancelled": 0}
    assert after["tokens_generated"] == 8 * DEFAULT_TOKENS
    assert 1 <= after["max_in_flight"] <= 8
