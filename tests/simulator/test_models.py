"""Tests of the model endpoints: ps, show, pull, delete, embed."""

from __future__ import annotations

import json
from contextlib import closing

import httpx
import ollama
import pytest

from ollama_fleet.simulator.generation import EMBED_DIM


def names(url: str) -> list[str]:
    return [m["name"] for m in httpx.get(f"{url}/api/tags").json()["models"]]


def test_ps_lists_models_after_use(fresh_url: str) -> None:
    with closing(ollama.Client(host=fresh_url)) as client:
        assert client.ps().models == []
        client.chat(model="llama3.2:1b", messages=[{"role": "user", "content": "hi"}])
        client.embed(model="nomic-embed-text", input="x", keep_alive="10m")
        ps_models = client.ps().models
    running = httpx.get(f"{fresh_url}/api/ps").json()["models"]
    assert [m["name"] for m in running] == ["nomic-embed-text:latest", "llama3.2:1b"]
    entry = running[1]
    assert set(entry) == {
        "name",
        "model",
        "size",
        "digest",
        "details",
        "expires_at",
        "size_vram",
        "context_length",
    }
    assert entry["size_vram"] == entry["size"] == 1_321_098_329
    assert ps_models[1].expires_at is not None


def test_first_use_reports_a_load(fresh_url: str) -> None:
    chat = {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "x"}], "stream": False}
    cold = httpx.post(f"{fresh_url}/api/chat", json=chat).json()
    warm = httpx.post(f"{fresh_url}/api/chat", json=chat).json()
    assert cold["load_duration"] > warm["load_duration"]


def test_show(client: httpx.Client, ollama_client: ollama.Client) -> None:
    body = client.post("/api/show", json={"model": "llama3.2:1b"}).json()
    assert body["details"]["family"] == "llama"
    assert body["model_info"]["general.architecture"] == "llama"
    assert body["model_info"]["general.parameter_count"] == 1_200_000_000
    assert body["capabilities"] == ["completion"]
    assert "FROM llama3.2:1b" in body["modelfile"]
    for key in ("parameters", "template", "license"):
        assert isinstance(body[key], str)
    shown = ollama_client.show("nomic-embed-text")
    assert shown.capabilities == ["embedding"]
    assert shown.details is not None and shown.details.family == "nomic-bert"


def test_show_unknown_is_404(client: httpx.Client) -> None:
    response = client.post("/api/show", json={"model": "x"})
    assert response.status_code == 404
    assert response.json() == {"error": "model 'x' not found"}


def test_pull_streams_progress_and_adds_the_model(fresh_url: str) -> None:
    response = httpx.post(f"{fresh_url}/api/pull", json={"model": "mistral:7b"})
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0] == {"status": "pulling manifest"}
    assert [line["status"] for line in lines[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    progress = lines[1:-3]
    assert progress
    for line in progress:
        assert line["status"] == f"pulling {line['digest'][7:19]}"
        assert line["digest"].startswith("sha256:")
        assert 0 <= line["completed"] <= line["total"]
    assert any(line["completed"] == line["total"] for line in progress)
    assert names(fresh_url)[0] == "mistral:7b"


def test_pull_with_the_ollama_client(fresh_url: str) -> None:
    with closing(ollama.Client(host=fresh_url)) as client:
        statuses = [p.status for p in client.pull("gemma2:2b", stream=True)]
        assert statuses[0] == "pulling manifest"
        assert statuses[-1] == "success"
        assert client.pull("llama3.1:8b").status == "success"
        listed = [m.model for m in client.list().models]
    assert "gemma2:2b" in listed and "llama3.1:8b" in listed


def test_pull_unknown_model_is_a_200_stream_with_an_error_line(fresh_url: str) -> None:
    response = httpx.post(f"{fresh_url}/api/pull", json={"model": "no-such-model:1b"})
    assert response.status_code == 200
    last = json.loads(response.text.splitlines()[-1])
    assert last == {"error": "pull model manifest: file does not exist"}
    with (
        closing(ollama.Client(host=fresh_url)) as client,
        pytest.raises(ollama.ResponseError, match="file does not exist"),
    ):
        list(client.pull("no-such-model:1b", stream=True))
    assert "no-such-model:1b" not in names(fresh_url)


def test_pull_unknown_model_without_stream_is_500(fresh_url: str) -> None:
    response = httpx.post(f"{fresh_url}/api/pull", json={"model": "nope", "stream": False})
    assert response.status_code == 500
    assert response.json() == {"error": "pull model manifest: file does not exist"}


def test_delete_then_pull_back(fresh_url: str) -> None:
    deleted = httpx.request("DELETE", f"{fresh_url}/api/delete", json={"model": "qwen2.5:0.5b"})
    assert deleted.status_code == 200
    assert deleted.content == b""
    assert "qwen2.5:0.5b" not in names(fresh_url)
    again = httpx.request("DELETE", f"{fresh_url}/api/delete", json={"model": "qwen2.5:0.5b"})
    assert again.status_code == 404
    assert again.json() == {"error": "model 'qwen2.5:0.5b' not found"}
    chat = {"model": "qwen2.5:0.5b", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(f"{fresh_url}/api/chat", json=chat).status_code == 404
    with closing(ollama.Client(host=fresh_url)) as client:
        assert client.pull("qwen2.5:0.5b").status == "success"
    restored = httpx.get(f"{fresh_url}/api/tags").json()["models"][0]
    assert restored["name"] == "qwen2.5:0.5b"
    assert restored["size"] == 397_821_319  # the configured model comes back, not a guess


def test_delete_with_the_ollama_client(fresh_url: str) -> None:
    with closing(ollama.Client(host=fresh_url)) as client:
        assert client.delete("llama3.2:1b").status == "success"
    assert "llama3.2:1b" not in names(fresh_url)


def test_embed(client: httpx.Client, ollama_client: ollama.Client) -> None:
    body = client.post(
        "/api/embed", json={"model": "nomic-embed-text", "input": ["a b", "c"]}
    ).json()
    assert body["model"] == "nomic-embed-text"
    assert len(body["embeddings"]) == 2
    assert all(len(v) == EMBED_DIM for v in body["embeddings"])
    assert body["embeddings"][0] != body["embeddings"][1]
    assert body["prompt_eval_count"] == 3
    assert body["total_duration"] >= body["load_duration"] > 0
    single = ollama_client.embed(model="nomic-embed-text", input="a b")
    assert list(single.embeddings[0]) == body["embeddings"][0]


@pytest.mark.parametrize("bad_input", [5, [1, 2], {"a": "b"}, ["a", None]])
def test_embed_refuses_bad_input(client: httpx.Client, bad_input: object) -> None:
    response = client.post("/api/embed", json={"model": "nomic-embed-text", "input": bad_input})
    assert response.status_code == 400
    assert "input" in response.json()["error"]


def test_embed_unknown_model_is_404(client: httpx.Client) -> None:
    response = client.post("/api/embed", json={"model": "nope", "input": "x"})
    assert response.status_code == 404


def test_legacy_embeddings_endpoint(client: httpx.Client) -> None:
    body = client.post("/api/embeddings", json={"model": "nomic-embed-text", "prompt": "a"})
    assert len(body.json()["embedding"]) == EMBED_DIM
