"""Tests of fault injection and of the /_simulator/faults control endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import ollama
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from ollama_fleet.simulator import Faults, SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread

from .conftest import FAULTS_URL

pytestmark = pytest.mark.integration

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
CHAT: dict[str, Any] = {"model": "llama3.2:1b", "messages": MESSAGES}


def set_faults(client: httpx.Client, **faults: Any) -> None:
    response = client.put(FAULTS_URL, json=faults)
    assert response.status_code == 200, response.text


def test_control_endpoint_get_put_delete(client: httpx.Client) -> None:
    assert client.get(FAULTS_URL).json() == {
        "latency_ms": 0,
        "status": None,
        "malformed": False,
        "cut_stream_after": None,
        "stream_error": None,
        "paths": [],
    }
    put = client.put(FAULTS_URL, json={"status": 503, "paths": ["/api/chat"]})
    assert put.json()["status"] == 503
    assert client.get(FAULTS_URL).json()["paths"] == ["/api/chat"]
    assert client.delete(FAULTS_URL).json()["status"] is None
    assert client.get(FAULTS_URL).json()["paths"] == []
    assert client.post("/api/chat", json=CHAT | {"stream": False}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"bogus": 1},
        {"status": "500"},
        {"status": 200},
        {"latency_ms": True},
        {"latency_ms": None},
        {"latency_ms": -5},
        {"malformed": 1},
        {"paths": "/api/chat"},
        {"paths": ["api/chat"]},
        {"stream_error": 3},
        {"cut_stream_after": 1.5},
    ],
)
def test_control_endpoint_refuses_bad_faults(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.put(FAULTS_URL, json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert client.get(FAULTS_URL).json()["status"] is None  # unchanged


def test_control_endpoint_is_exempt_from_faults_and_host_check(client: httpx.Client) -> None:
    set_faults(client, status=500, malformed=True, latency_ms=5000)
    # exempt means no injected latency: it answers well inside a 2 s timeout
    response = client.get(FAULTS_URL, headers={"Host": "evil.example"}, timeout=2.0)
    assert response.status_code == 200
    assert response.json()["status"] == 500


def test_latency(client: httpx.Client) -> None:
    set_faults(client, latency_ms=200)
    started = time.monotonic()
    assert client.get("/api/tags").status_code == 200
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "unauthorized"),
        (404, "model 'llama3.2:1b' not found"),
        (429, "too many requests"),
        (500, "internal server error"),
        (503, "server busy, please try again.  maximum pending requests exceeded"),
        (502, "bad gateway"),
    ],
)
def test_status_faults(
    client: httpx.Client, ollama_client: ollama.Client, status: int, message: str
) -> None:
    set_faults(client, status=status)
    response = client.post("/api/chat", json=CHAT)
    assert response.status_code == status
    assert response.json() == {"error": message}
    assert response.headers["x-ollama-simulator"] == "1"
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_client.chat(model="llama3.2:1b", messages=MESSAGES)
    assert caught.value.status_code == status


def test_status_fault_on_v1_is_openai_shaped(client: httpx.Client, oai: openai.OpenAI) -> None:
    set_faults(client, status=429)
    with pytest.raises(openai.RateLimitError) as caught:
        oai.models.list()
    assert caught.value.body == {
        "message": "too many requests",
        "type": "api_error",
        "param": None,
        "code": None,
    }


def test_malformed(client: httpx.Client, ollama_client: ollama.Client) -> None:
    set_faults(client, malformed=True)
    response = client.get("/api/tags")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    with pytest.raises(json.JSONDecodeError):
        ollama_client.list()


def test_faults_are_scoped_by_path(client: httpx.Client) -> None:
    set_faults(client, status=503, paths=["/api/chat"])
    assert client.post("/api/chat", json=CHAT).status_code == 503
    assert client.post("/api/generate", json={"model": "llama3.2:1b", "prompt": "x"}).is_success
    assert client.get("/api/tags").status_code == 200
    assert client.get("/").status_code == 200


def test_cut_stream_native(client: httpx.Client) -> None:
    set_faults(client, cut_stream_after=3)
    received: list[dict[str, Any]] = []
    with (
        pytest.raises(httpx.RemoteProtocolError, match="incomplete"),
        client.stream("POST", "/api/chat", json=CHAT) as response,
    ):
        assert response.status_code == 200
        received.extend(json.loads(line) for line in response.iter_lines())
    assert len(received) == 3
    assert not any(line["done"] for line in received)


def test_cut_stream_before_final_chunk_when_short(client: httpx.Client) -> None:
    set_faults(client, cut_stream_after=100)
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/api/generate", json={"model": "llama3.2:1b", "prompt": "x"}) as r,
    ):
        received.extend(r.iter_lines())
    assert received and all('"done":false' in line for line in received)


def test_cut_stream_seen_by_the_clients(
    client: httpx.Client, ollama_client: ollama.Client, oai: openai.OpenAI
) -> None:
    set_faults(client, cut_stream_after=2)
    parts: list[ollama.ChatResponse] = []
    with pytest.raises(httpx.RemoteProtocolError):
        parts.extend(ollama_client.chat(model="llama3.2:1b", messages=MESSAGES, stream=True))
    assert len(parts) == 2
    chunks: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        chunks.extend(
            oai.chat.completions.create(
                model="llama3.2:1b",
                messages=MESSAGES,
                stream=True,
            )
        )
    assert len(chunks) == 2


def test_cut_stream_pull_does_not_install(fresh_url: str) -> None:
    with httpx.Client(base_url=fresh_url) as client:
        set_faults(client, cut_stream_after=4)
        with (
            pytest.raises(httpx.RemoteProtocolError),
            client.stream("POST", "/api/pull", json={"model": "gemma2:2b"}) as response,
        ):
            list(response.iter_lines())
        client.delete(FAULTS_URL)
        tags = client.get("/api/tags").json()["models"]
    assert "gemma2:2b" not in [m["name"] for m in tags]


def test_stream_error_native(client: httpx.Client, ollama_client: ollama.Client) -> None:
    set_faults(client, stream_error="llama runner process has terminated")
    response = client.post("/api/chat", json=CHAT)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1] == {"error": "llama runner process has terminated"}
    assert all(line.get("done") is False for line in lines[:-1])
    assert len(lines) > 1
    with pytest.raises(ollama.ResponseError, match="runner process"):
        list(ollama_client.generate(model="llama3.2:1b", prompt="x", stream=True))


def test_stream_error_pull_does_not_install(fresh_url: str) -> None:
    with httpx.Client(base_url=fresh_url) as client:
        set_faults(client, stream_error="disk full")
        response = client.post("/api/pull", json={"model": "mistral:7b"})
        assert response.status_code == 200
        assert json.loads(response.text.splitlines()[-1]) == {"error": "disk full"}
        client.delete(FAULTS_URL)
        assert "mistral:7b" not in [m["name"] for m in client.get("/api/tags").json()["models"]]


def test_stream_error_openai(client: httpx.Client, oai: openai.OpenAI) -> None:
    set_faults(client, stream_error="boom")
    with pytest.raises(openai.APIError, match="boom"):
        list(
            oai.chat.completions.create(
                model="llama3.2:1b",
                messages=MESSAGES,
                stream=True,
            )
        )


def test_stream_faults_leave_non_streaming_answers_alone(client: httpx.Client) -> None:
    set_faults(client, stream_error="boom", cut_stream_after=0)
    response = client.post("/api/chat", json=CHAT | {"stream": False})
    assert response.status_code == 200
    assert response.json()["done"] is True


def test_faults_from_the_config() -> None:
    config = SimulatorConfig(tokens_per_second=0, faults=Faults(status=401, paths=("/api/tags",)))
    with serve_in_thread(create_app(config)) as port:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/tags").json() == {"error": "unauthorized"}
        assert httpx.get(f"{base}/api/version").status_code == 200
        assert httpx.delete(f"{base}{FAULTS_URL}").status_code == 200
        assert httpx.get(f"{base}/api/tags").status_code == 200
