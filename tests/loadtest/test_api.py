"""The two chat APIs: the request bodies, answers parsed, non-200 answers classified (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ollama_fleet.checks.model import FailureClass
from ollama_fleet.loadtest.api import (
    DONE,
    BadAnswer,
    Piece,
    chat_path,
    classify_answer,
    parse_native,
    parse_openai,
    request_body,
)
from ollama_fleet.loadtest.model import Api, LoadSettings


def _settings(api: Api, *, stream: bool) -> LoadSettings:
    return LoadSettings(
        url="http://x", model="m:1b", api=api, stream=stream, prompt="hi", max_tokens=7
    )


def test_the_native_body_asks_num_predict() -> None:
    assert chat_path(Api.OLLAMA) == "/api/chat"
    assert request_body(_settings(Api.OLLAMA, stream=True)) == {
        "model": "m:1b",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "options": {"num_predict": 7},
    }


def test_the_openai_stream_asks_for_usage() -> None:
    assert chat_path(Api.OPENAI) == "/v1/chat/completions"
    streamed = request_body(_settings(Api.OPENAI, stream=True))
    assert streamed["max_tokens"] == 7
    assert streamed["stream_options"] == {"include_usage": True}
    assert "stream_options" not in request_body(_settings(Api.OPENAI, stream=False))


def test_native_chunks() -> None:
    chunk = {"message": {"role": "assistant", "content": "Hel"}, "done": False}
    final = {"message": {"content": ""}, "done": True, "eval_count": 12}
    assert parse_native(json.dumps(chunk)) == Piece(content="Hel")
    assert parse_native(json.dumps(final)) == Piece(done=True, tokens=12)
    assert parse_native('{"error": "boom"}') == Piece(error="boom")


@pytest.mark.parametrize("line", ["not json", "[1]", '{"done": true}'])
def test_a_native_chunk_that_is_not_ollamas_is_a_bad_answer(line: str) -> None:
    with pytest.raises(BadAnswer):
        parse_native(line)


def _event(data: Any) -> str:
    return "data: " + json.dumps(data)


def test_openai_events() -> None:
    delta = {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
    usage = {"choices": [], "usage": {"completion_tokens": 9, "prompt_tokens": 3}}
    assert parse_openai(_event(delta), stream=True) == Piece(content="Hel")
    assert parse_openai(_event(usage), stream=True) == Piece(tokens=9)
    assert parse_openai("data: [DONE]", stream=True) is DONE
    assert parse_openai("", stream=True) is None
    assert parse_openai(": keep-alive", stream=True) is None
    error = {"error": {"message": "boom", "type": "api_error"}}
    assert parse_openai(_event(error), stream=True) == Piece(error="boom")


def test_a_whole_openai_answer() -> None:
    whole = {
        "choices": [{"message": {"role": "assistant", "content": "Hello."}}],
        "usage": {"completion_tokens": 4},
    }
    assert parse_openai(json.dumps(whole), stream=False) == Piece(
        content="Hello.", done=True, tokens=4
    )
    with pytest.raises(BadAnswer, match="no choices"):
        parse_openai('{"choices": []}', stream=False)
    with pytest.raises(BadAnswer, match="delta"):
        parse_openai(_event({"choices": ["x"]}), stream=True)


NATIVE_MISSING = b'{"error": "model \\"m:1b\\" not found, try pulling it first"}'
OPENAI_MISSING = b'{"error": {"message": "model \'m:1b\' not found", "type": "not_found_error"}}'


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b'{"error": "unauthorized"}', FailureClass.AUTH),
        (403, b"", FailureClass.AUTH),
        (404, NATIVE_MISSING, FailureClass.MODEL_MISSING),
        (404, OPENAI_MISSING, FailureClass.MODEL_MISSING),  # the same refusal, OpenAI's shape
        (404, b"404 page not found", FailureClass.BAD_RESPONSE),  # no Ollama API at the URL
        (429, b'{"error": "too many requests"}', FailureClass.OVERLOAD),
        (503, b'{"error": "server busy"}', FailureClass.OVERLOAD),
        (500, b'{"error": "internal"}', FailureClass.SERVER_ERROR),
        (502, b"bad gateway", FailureClass.SERVER_ERROR),
        (400, b'{"error": "bad"}', FailureClass.BAD_RESPONSE),
    ],
)  # fmt: skip
def test_non_200_answers_get_the_checks_classes(
    status: int, body: bytes, expected: FailureClass
) -> None:
    finding = classify_answer(status, body, action="POST /api/chat", model="m:1b")
    assert finding.failure_class is expected
    assert finding.message.startswith(f"POST /api/chat: HTTP {status}")
