"""The simulator's push, create, copy and blobs endpoints, and Ollama's validation of them all.

The probe requests of the checks' auth check (empty names, HEAD of an all-zero digest) must
be refused as Ollama refuses them, and must change nothing. The real `ollama` client drives
copy, create and the blob upload as it would against Ollama.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import closing

import httpx
import ollama
import pytest

from ollama_fleet.checks.probes.auth import WRITE_PROBES, WriteProbe

ZEROS = "sha256:" + "0" * 64


def names(url: str) -> list[str]:
    return [m["name"] for m in httpx.get(f"{url}/api/tags").json()["models"]]


@pytest.mark.parametrize("probe", WRITE_PROBES, ids=[p.endpoint for p in WRITE_PROBES])
def test_the_checks_probes_are_refused_and_change_nothing(
    fresh_url: str, probe: WriteProbe
) -> None:
    before = httpx.get(f"{fresh_url}/api/tags").json()
    response = httpx.request(probe.method, f"{fresh_url}{probe.path}", json=probe.body)
    if probe.method == "HEAD":
        assert (response.status_code, response.content) == (404, b"")
    else:
        assert response.status_code == 400
        assert set(response.json()) == {"error"}
    assert response.headers["x-ollama-simulator"] == "1"
    assert httpx.get(f"{fresh_url}/api/tags").json() == before


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/api/copy", {}, 'source "" is invalid'),
        ("/api/copy", {"source": "llama3.2:1b"}, 'destination "" is invalid'),
        ("/api/copy", {"source": "bad name!", "destination": "x"}, 'source "bad name!" is invalid'),
        ("/api/create", {}, "invalid model name"),
        ("/api/create", {"model": "a b"}, "invalid model name"),
        ("/api/create", {"model": "mine"}, "neither 'from' or 'files' was specified"),
        ("/api/create", {"model": "mine", "files": {"m.gguf": ZEROS}}, "cannot create a model"),
        ("/api/push", {}, "model is required"),
        ("/api/push", {"model": "bad name!"}, "invalid model name"),
    ],
)
def test_invalid_requests_get_ollamas_400(
    client: httpx.Client, path: str, body: dict[str, object], error: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert error in response.json()["error"]


@pytest.mark.parametrize("path", ["/api/copy", "/api/create", "/api/push"])
def test_missing_body_is_400(client: httpx.Client, path: str) -> None:
    response = client.post(path)
    assert response.status_code == 400
    assert response.json() == {"error": "missing request body"}


def test_copy_installs_the_same_model_under_a_new_name(fresh_url: str) -> None:
    with closing(ollama.Client(host=fresh_url)) as client:
        assert client.copy("llama3.2:1b", "team/llama:copy").status == "success"
    tags = {m["name"]: m for m in httpx.get(f"{fresh_url}/api/tags").json()["models"]}
    assert tags["team/llama:copy"]["digest"] == tags["llama3.2:1b"]["digest"]
    assert tags["team/llama:copy"]["size"] == tags["llama3.2:1b"]["size"]


def test_copy_of_a_missing_model_is_404(client: httpx.Client) -> None:
    response = client.post("/api/copy", json={"source": "nope:1b", "destination": "x"})
    assert response.status_code == 404
    assert response.json() == {"error": 'model "nope:1b" not found'}


def test_create_from_an_installed_model_streams_and_installs(fresh_url: str) -> None:
    response = httpx.post(
        f"{fresh_url}/api/create", json={"model": "brief", "from": "qwen2.5:0.5b"}
    )
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["status"].startswith("using existing layer sha256:")
    assert [line["status"] for line in lines[1:]] == ["writing manifest", "success"]
    assert names(fresh_url)[0] == "brief:latest"
    with closing(ollama.Client(host=fresh_url)) as client:
        assert client.create(model="brief2", from_="brief", stream=False).status == "success"
        shown = client.show("brief2")
    assert shown.details is not None and shown.details.family == "qwen2"


def test_create_from_a_model_that_is_not_there_is_404(client: httpx.Client) -> None:
    response = client.post("/api/create", json={"model": "x", "from": "nope:1b"})
    assert response.status_code == 404


def test_push_says_there_is_no_registry(client: httpx.Client) -> None:
    streamed = client.post("/api/push", json={"model": "llama3.2:1b"})
    assert streamed.status_code == 200
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert lines[0] == {"status": "retrieving manifest"}
    assert "simulator" in lines[-1]["error"]
    single = client.post("/api/push", json={"model": "llama3.2:1b", "stream": False})
    assert single.status_code == 500
    assert client.post("/api/push", json={"model": "nope:1b"}).status_code == 404


def test_blob_upload_then_head(fresh_url: str) -> None:
    content = b"GGUF simulated bytes"
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    assert httpx.head(f"{fresh_url}/api/blobs/{digest}").status_code == 404
    created = httpx.post(f"{fresh_url}/api/blobs/{digest}", content=content)
    assert created.status_code == 201
    assert httpx.head(f"{fresh_url}/api/blobs/{digest}").status_code == 200
    assert httpx.post(f"{fresh_url}/api/blobs/{digest}", content=b"other").status_code == 200


def test_blob_with_the_wrong_content_is_a_digest_mismatch(client: httpx.Client) -> None:
    response = client.post(f"/api/blobs/{ZEROS}", content=b"x")
    assert response.status_code == 400
    assert response.json()["error"].startswith(f'digest mismatch, expected "{ZEROS}", got "sha256:')
    assert client.head(f"/api/blobs/{ZEROS}").status_code == 404


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "g" * 64])
def test_a_malformed_digest_is_400(client: httpx.Client, digest: str) -> None:
    assert client.head(f"/api/blobs/{digest}").status_code == 400
    response = client.post(f"/api/blobs/{digest}", content=b"x")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid digest format"}


def test_get_on_blobs_is_ollamas_plain_404(client: httpx.Client) -> None:
    response = client.get(f"/api/blobs/{ZEROS}")
    assert response.status_code == 404
    assert response.text == "404 page not found"
