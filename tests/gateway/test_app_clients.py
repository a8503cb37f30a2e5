"""The official `ollama` and `openai` Python clients through the gateway, and a node killed."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest

from ollama_fleet.simulator.config import Faults

from .conftest import Keys
from .live import (
    RunningGateway,
    SimulatorProcess,
    gateway_config,
    running_gateway,
    sim_node,
    wait_for,
)

pytestmark = pytest.mark.integration

HELLO = [{"role": "user", "content": "hello there"}]


@contextlib.contextmanager
def _ollama(gateway: RunningGateway, key: str) -> Iterator[ollama.Client]:
    client = ollama.Client(host=gateway.url, headers={"Authorization": f"Bearer {key}"})
    with client:
        yield client


@contextlib.contextmanager
def _openai(gateway: RunningGateway, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
        yield client


def test_the_ollama_client_chats_generates_embeds_and_lists(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with _ollama(shared_gateway, keys.user) as client:
        _use_ollama(client)


def _use_ollama(client: ollama.Client) -> None:
    assert client.chat(model="llama3.2:1b", messages=HELLO).message.content
    parts = list(client.chat(model="llama3.2:1b", messages=HELLO, stream=True))
    assert len(parts) > 2 and parts[-1].done and parts[-1].eval_count
    assert "".join(p.message.content or "" for p in parts[:-1])
    assert client.generate(model="qwen2.5:0.5b", prompt="hi").response
    assert [p.response for p in client.generate(model="qwen2.5:0.5b", prompt="hi", stream=True)]
    assert client.embed(model="llama3.2:1b", input=["a", "b"]).embeddings
    assert {m.model for m in client.list().models} == {"llama3.2:1b", "qwen2.5:0.5b"}
    assert client.show("qwen2.5:0.5b").details is not None
    assert client.ps().models is not None


def test_the_ollama_client_sees_the_gateways_errors(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with pytest.raises(ollama.ResponseError) as missing, _ollama(shared_gateway, keys.user) as c:
        c.chat(model="nope:1b", messages=HELLO)
    assert missing.value.status_code == 404
    assert "not found, try pulling it first" in missing.value.error
    with (
        pytest.raises(ollama.ResponseError) as refused,
        _ollama(shared_gateway, keys.readonly) as c,
    ):
        c.chat(model="llama3.2:1b", messages=HELLO)
    assert refused.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as unauthorised, _ollama(shared_gateway, "x") as c:
        c.list()
    assert unauthorised.value.status_code == 401
    with pytest.raises(ollama.ResponseError) as pull, _ollama(shared_gateway, keys.admin) as c:
        c.pull("llama3.1:8b")
    assert pull.value.status_code == 403


def test_the_openai_client_chats_completes_embeds_and_lists(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with _openai(shared_gateway, keys.user) as client:
        _use_openai(client)


def _use_openai(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="llama3.2:1b", messages=HELLO)  # type: ignore[arg-type]
    assert reply.choices[0].message.content and reply.usage is not None
    chunks = list(
        client.chat.completions.create(model="llama3.2:1b", messages=HELLO, stream=True)  # type: ignore[arg-type]
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert client.completions.create(model="qwen2.5:0.5b", prompt="hi").choices[0].text
    assert len(client.embeddings.create(model="llama3.2:1b", input="hi").data) == 1
    assert {m.id for m in client.models.list()} == {"llama3.2:1b", "qwen2.5:0.5b"}
    assert client.models.retrieve("qwen2.5:0.5b").id == "qwen2.5:0.5b"


def test_the_openai_client_raises_its_own_errors(
    shared_gateway: RunningGateway, keys: Keys
) -> None:
    with pytest.raises(openai.AuthenticationError), _openai(shared_gateway, "x") as client:
        client.models.list()
    with pytest.raises(openai.PermissionDeniedError), _openai(shared_gateway, keys.readonly) as c:
        c.chat.completions.create(model="llama3.2:1b", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError) as missing, _openai(shared_gateway, keys.user) as c:
        c.chat.completions.create(model="nope:1b", messages=HELLO)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"


def test_the_openai_client_raises_rate_limit_error_at_the_rpm_limit(keys: Keys) -> None:
    with (
        sim_node() as node,
        running_gateway(gateway_config({"a": node.url}, keys.specs)) as gw,
        _openai(gw, keys.limited) as client,
    ):
        for _ in range(2):
            client.chat.completions.create(model="llama3.2:1b", messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="llama3.2:1b", messages=HELLO)  # type: ignore[arg-type]
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert limited.value.response.headers["x-ratelimit-limit-requests"] == "2"


def test_a_stream_cut_upstream_raises_in_the_ollama_client(keys: Keys) -> None:
    with sim_node() as node, running_gateway(gateway_config({"a": node.url}, keys.specs)) as gw:
        node.state.faults = Faults(cut_stream_after=2)
        seen: list[str] = []
        with pytest.raises(ollama.ResponseError) as broken, _ollama(gw, keys.user) as client:
            for part in client.chat(model="llama3.2:1b", messages=HELLO, stream=True):
                seen.append(part.message.content or "")
    assert len(seen) == 2
    assert "broke off the stream" in broken.value.error


def _chat_via(url: str, key: str) -> tuple[str | None, list[dict[str, Any]]]:
    body = {"model": "llama3.2:1b", "messages": HELLO, "options": {"num_predict": 10}}
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False) as client,
        client.stream("POST", "/api/chat", json=body) as answer,
    ):
        return answer.headers.get("x-gateway-node"), [
            json.loads(line) for line in answer.iter_lines() if line
        ]


def test_requests_waiting_on_a_killed_node_complete_on_another(keys: Keys) -> None:
    doomed = SimulatorProcess(["llama3.2:1b"], tps=10)
    try:
        with sim_node(tps=10) as survivor:
            config = gateway_config(
                {"doomed": doomed.url, "survivor": survivor.url},
                keys.specs,
                max_parallel=1,
                queue=8,
            )
            with running_gateway(config) as gateway:
                pool = gateway.app.pool
                with concurrent.futures.ThreadPoolExecutor(6) as workers:
                    futures = [workers.submit(_chat_via, gateway.url, keys.user) for _ in range(6)]
                    waiting = wait_for(
                        "requests to wait in the doomed node's queue",
                        lambda: pool.snapshot()[0].queued,
                    )
                    doomed.kill()
                    results = [f.result(timeout=60) for f in futures]
    finally:
        doomed.kill()
    complete = [lines for _, lines in results if lines and lines[-1].get("done") is True]
    broken = [node for node, lines in results if not lines or "error" in lines[-1]]
    assert waiting >= 1
    # only the one request in flight on the doomed node (its one slot) may be lost
    assert broken in ([], ["doomed"])
    assert len(complete) == 6 - len(broken)
