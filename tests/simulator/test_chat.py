"""Tests of /api/chat and /api/generate: streaming, pacing, counters, refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.simulator.generation import DEFAULT_TOKENS
from ollama_fleet.testbed.servers import serve_in_thread

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
CHAT: dict[str, Any] = {"model": "llama3.2:1b", "messages": MESSAGES}


def ndjson_lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


@pytest.fixture(scope="module")
def paced_url() -> Iterator[str]:
    """A simulator pacing at 100 tokens/s."""
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=100))) as port:
        yield f"http://127.0.0.1:{port}"


def test_chat_streams_one_chunk_per_token(client: httpx.Client) -> None:
    response = client.post("/api/chat", json=CHAT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = ndjson_lines(response)
    assert len(lines) == DEFAULT_TOKENS + 1
    for line in lines[:-1]:
        assert line["done"] is False
        assert line["model"] == "llama3.2:1b"
        assert isinstance(line["created_at"], str)
        assert line["message"] == {"role": "assistant", "content": line["message"]["content"]}
    text = "".join(str(line["message"]["content"]) for line in lines)
    assert text.startswith("why is the sky blue why")
    final = lines[-1]
    assert final["done"] is True
    assert final["done_reason"] == "stop"
    assert final["eval_count"] == DEFAULT_TOKENS
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0


def test_chat_is_deterministic(client: httpx.Client) -> None:
    def content() -> str:
        body = client.post("/api/chat", json=CHAT | {"stream": False}).json()
        return str(body["message"]["content"])

    assert content() == content()


def test_chat_non_streaming(client: httpx.Client) -> None:
    body = client.post(
        "/api/chat", json=CHAT | {"stream": False, "options": {"num_predict": 3}}
    ).json()
    assert body["message"] == {"role": "assistant", "content": "why is the"}
    assert body["done"] is True
    assert body["done_reason"] == "length"  # num_predict cut it short, as in Ollama
    assert body["eval_count"] == 3


def test_streaming_is_paced_and_counters_match_the_rate(paced_url: str) -> None:
    started = time.monotonic()
    arrivals: list[float] = []
    lines: list[dict[str, Any]] = []
    with httpx.stream(
        "POST", f"{paced_url}/api/chat", json=CHAT | {"options": {"num_predict": 10}}
    ) as response:
        for line in response.iter_lines():
            arrivals.append(time.monotonic() - started)
            lines.append(json.loads(line))
    assert len(lines) == 11
    assert arrivals[-1] >= 0.09  # 10 tokens at 100/s
    assert arrivals[0] < arrivals[-1]
    final = lines[-1]
    assert final["eval_count"] == 10
    assert final["eval_duration"] == 100_000_000  # 10 tokens / 100 per second, in ns
    tokens_per_second = final["eval_count"] / (final["eval_duration"] / 1e9)
    assert tokens_per_second == pytest.approx(100.0)


def test_non_streaming_takes_as_long_as_streaming(paced_url: str) -> None:
    started = time.monotonic()
    body = httpx.post(
        f"{paced_url}/api/generate",
        json={
            "model": "llama3.2:1b",
            "prompt": "hi",
            "stream": False,
            "options": {"num_predict": 8},
        },
    ).json()
    assert time.monotonic() - started >= 0.075
    assert body["eval_duration"] == 80_000_000


def test_generate_streams_response_tokens(client: httpx.Client) -> None:
    response = client.post(
        "/api/generate",
        json={"model": "qwen2.5:0.5b", "prompt": "tell me a story", "options": {"num_predict": 4}},
    )
    lines = ndjson_lines(response)
    assert "".join(str(line["response"]) for line in lines) == "tell me a story"
    assert [line["done"] for line in lines] == [False] * 4 + [True]
    assert lines[-1]["eval_count"] == 4
    assert lines[-1]["done_reason"] == "length"


def test_chat_and_generate_with_the_ollama_client(ollama_client: ollama.Client) -> None:
    client = ollama_client
    parts = list(client.chat(model="llama3.2:1b", messages=MESSAGES, stream=True))
    assert parts[-1].done is True
    assert parts[-1].eval_count == DEFAULT_TOKENS
    assert "".join(p.message.content or "" for p in parts).startswith("why is the sky")
    whole = client.chat(model="llama3.2:1b", messages=[{"role": "user", "content": "hello"}])
    assert whole.message.content == " ".join(["hello"] * DEFAULT_TOKENS)
    generated = client.generate(model="llama3.2:1b", prompt="ping pong", options={"num_predict": 2})
    assert generated.response == "ping pong"
    assert generated.done_reason == "length"
    streamed = list(client.generate(model="llama3.2:1b", prompt="ping", stream=True))
    assert streamed[-1].done


def test_unknown_model_is_404_like_ollama(
    client: httpx.Client, ollama_client: ollama.Client
) -> None:
    for path, extra in (
        ("/api/chat", {"messages": MESSAGES}),
        ("/api/generate", {"prompt": "x"}),
    ):
        response = client.post(path, json={"model": "nope:1b", **extra})
        assert response.status_code == 404
        assert response.json() == {"error": 'model "nope:1b" not found, try pulling it first'}
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_client.chat(model="nope:1b", messages=MESSAGES)
    assert caught.value.status_code == 404


def test_embedding_model_refuses_chat(client: httpx.Client) -> None:
    response = client.post("/api/chat", json=CHAT | {"model": "nomic-embed-text"})
    assert response.status_code == 400
    assert response.json() == {"error": '"nomic-embed-text" does not support chat'}


def test_empty_chat_loads_and_keep_alive_zero_unloads(client: httpx.Client) -> None:
    loaded = client.post("/api/chat", json={"model": "qwen2.5:0.5b", "messages": []}).json()
    assert loaded["done_reason"] == "load"
    assert loaded["message"] == {"role": "assistant", "content": ""}
    assert "qwen2.5:0.5b" in [m["name"] for m in client.get("/api/ps").json()["models"]]
    unloaded = client.post("/api/generate", json={"model": "qwen2.5:0.5b", "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"
    assert unloaded["response"] == ""
    assert "qwen2.5:0.5b" not in [m["name"] for m in client.get("/api/ps").json()["models"]]


def test_num_predict_is_capped(client: httpx.Client) -> None:
    body = client.post(
        "/api/generate",
        json={
            "model": "llama3.2:1b",
            "prompt": "a",
            "stream": False,
            "options": {"num_predict": 10**12},
        },
    ).json()
    assert body["eval_count"] == 4096
