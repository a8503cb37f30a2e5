"""Tests of the OpenAI-compatible endpoints, through the real openai client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from ollama_fleet.simulator.generation import DEFAULT_TOKENS

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Why is the sky blue?"}]


def test_chat_completion(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="llama3.2:1b", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.system_fingerprint == "fp_ollama"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert (choice.message.content or "").startswith("why is the sky blue")
    assert completion.usage is not None
    assert completion.usage.completion_tokens == DEFAULT_TOKENS
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_chat_completion_max_tokens(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="llama3.2:1b",
        messages=MESSAGES,
        max_tokens=2,
    )
    assert completion.choices[0].message.content == "why is"
    assert completion.choices[0].finish_reason == "length"


def test_chat_completion_stream(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="llama3.2:1b",
        messages=MESSAGES,
        stream=True,
        max_tokens=5,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "why is the sky blue"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes == [None] * 5 + ["length"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_raw_stream_ends_with_done(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"model": "llama3.2:1b", "messages": MESSAGES, "stream": True, "max_tokens": 2},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    assert json.loads(events[0][6:])["choices"][0]["delta"]["content"] == "why"


def test_unknown_model_is_openai_style_404(oai: openai.OpenAI, client: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.chat.completions.create(model="nope", messages=MESSAGES)
    assert caught.value.status_code == 404
    body = client.post("/v1/chat/completions", json={"model": "nope", "messages": MESSAGES})
    assert body.json() == {
        "error": {
            "message": 'model "nope" not found, try pulling it first',
            "type": "not_found_error",
            "param": None,
            "code": None,
        }
    }


@pytest.mark.parametrize(
    "payload",
    [b"{oops", b'{"model": "llama3.2:1b"}', b'{"model": "llama3.2:1b", "messages": [7]}'],
)
def test_bad_requests_are_openai_style_400(client: httpx.Client, payload: bytes) -> None:
    response = client.post("/v1/chat/completions", content=payload)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_models(oai: openai.OpenAI) -> None:
    models = list(oai.models.list())
    assert [m.id for m in models] == ["llama3.2:1b", "qwen2.5:0.5b", "nomic-embed-text:latest"]
    assert all(m.object == "model" and m.owned_by == "library" for m in models)
    assert oai.models.retrieve("qwen2.5:0.5b").id == "qwen2.5:0.5b"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("nope")
