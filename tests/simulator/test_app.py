"""Tests of the simulator app as a whole: labelling, routing, Host check, bad requests."""

from __future__ import annotations

import httpx
import ollama
import pytest

from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread

pytestmark = pytest.mark.integration


def test_root_says_it_is_a_simulator(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text.startswith("Ollama is running")
    assert "simulator" in response.text and "test double" in response.text
    assert response.headers["x-ollama-simulator"] == "1"
    head = client.head("/")
    assert head.status_code == 200
    assert head.content == b""


def test_version_is_labelled(client: httpx.Client) -> None:
    response = client.get("/api/version")
    assert response.status_code == 200
    assert response.json() == {"version": "0.12.0-simulator"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/api/chat"), ("POST", "/api/tags"), ("PUT", "/api/delete")],
)
def test_unknown_routes_get_ollamas_plain_404(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 404
    assert response.text == "404 page not found"
    assert response.headers["x-ollama-simulator"] == "1"


def test_tags_lists_the_configured_models(client: httpx.Client) -> None:
    models = client.get("/api/tags").json()["models"]
    assert [m["name"] for m in models] == [
        "llama3.2:1b",
        "qwen2.5:0.5b",
        "nomic-embed-text:latest",
    ]
    first = models[0]
    assert set(first) == {"name", "model", "modified_at", "size", "digest", "details"}
    assert first["model"] == "llama3.2:1b"
    assert first["size"] == 1_321_098_329
    assert len(first["digest"]) == 64
    assert first["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "1.2B",
        "quantization_level": "Q8_0",
    }


def test_tags_through_the_ollama_client(ollama_client: ollama.Client) -> None:
    listed = ollama_client.list()
    assert [m.model for m in listed.models] == [
        "llama3.2:1b",
        "qwen2.5:0.5b",
        "nomic-embed-text:latest",
    ]
    assert listed.models[0].details is not None
    assert listed.models[0].details.family == "llama"
    assert listed.models[0].modified_at is not None


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:11434", "10.0.0.5", "ollama.example.com:443", "[2001:db8::1]"],
)
def test_foreign_host_header_gets_empty_403(client: httpx.Client, host: str) -> None:
    response = client.get("/api/tags", headers={"Host": host})
    assert response.status_code == 403
    assert response.content == b""
    assert response.headers["x-ollama-simulator"] == "1"


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:11434",
        "127.0.0.1:11434",
        "127.0.0.2",
        "[::1]:11434",
        "::1",
        "0.0.0.0:11434",
        "gpu1.localhost",
        "box.local",
        "ollama.internal:80",
        "LOCALHOST",
    ],
)
def test_local_host_headers_are_allowed(client: httpx.Client, host: str) -> None:
    assert client.get("/api/tags", headers={"Host": host}).status_code == 200


def test_host_check_can_be_disabled() -> None:
    app = create_app(SimulatorConfig(loopback_only_hosts=False, tokens_per_second=0))
    with serve_in_thread(app) as port:
        response = httpx.get(f"http://127.0.0.1:{port}/api/tags", headers={"Host": "evil.example"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "path", ["/api/chat", "/api/generate", "/api/show", "/api/pull", "/api/embed"]
)
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "missing request body"),
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "cannot unmarshal"),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
        (b"[" * 100_000, "invalid JSON"),
        (b'{"model": 42}', "model must be a string"),
        (b"{}", "model is required"),
    ],
)
def test_bad_request_bodies_get_400_json(
    client: httpx.Client, path: str, body: bytes, needle: str
) -> None:
    response = client.post(path, content=body)
    assert response.status_code == 400
    assert needle in response.json()["error"]


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "llama3.2:1b", "messages": "hi"},
        {"model": "llama3.2:1b", "messages": [1]},
        {"model": "llama3.2:1b", "messages": [{"role": "user", "content": 5}]},
        {"model": "llama3.2:1b", "messages": [{"content": "x"}], "stream": "yes"},
        {"model": "llama3.2:1b", "messages": [{"content": "x"}], "options": []},
        {"model": "llama3.2:1b", "messages": [{"content": "x"}], "options": {"num_predict": "9"}},
        {"model": "llama3.2:1b", "messages": [{"content": "x"}], "keep_alive": "soon"},
    ],
)
def test_bad_chat_fields_get_400(client: httpx.Client, payload: dict[str, object]) -> None:
    response = client.post("/api/chat", json=payload)
    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", b'{"model": "llama3.2:1b", "messages": [], "keep_alive": NaN}'),
        ("/api/chat", b'{"model": "llama3.2:1b", "messages": [], "keep_alive": 1e300}'),
        ("/api/generate", b'{"model": "llama3.2:1b", "prompt": "x", "keep_alive": -Infinity}'),
        (
            "/api/generate",
            b'{"model": "llama3.2:1b", "prompt": "x", "options": {"num_predict": 1e300}}',
        ),
        ("/api/embed", b'{"model": "nomic-embed-text", "input": "' + b"9" * 5000 + b'"}'),
        ("/api/show", b'{"model": ' + b"9" * 5000 + b"}"),
        (
            "/v1/chat/completions",
            b'{"model": "llama3.2:1b", "messages": [{"content": [{"type": 1}]}]}',
        ),
        ("/v1/chat/completions", b'{"model": "llama3.2:1b", "messages": [{}], "max_tokens": -5}'),
    ],
)
def test_odd_bodies_never_cause_a_server_error(
    client: httpx.Client, path: str, body: bytes
) -> None:
    response = client.post(path, content=body)
    assert response.status_code < 500
    assert response.headers["x-ollama-simulator"] == "1"
