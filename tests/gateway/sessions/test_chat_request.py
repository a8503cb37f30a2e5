"""POST /v1/chat's body: what is accepted, and the field each refusal names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ollama_fleet.gateway.sessions.chat_request import ChatRequest, parse_chat, title_of
from ollama_fleet.gateway.sessions.problems import Problem

SID = "0123456789abcdef0123456789abcdef"


def parse(body: Any, *, max_chars: int = 1000) -> ChatRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_chat(raw, max_message_chars=max_chars)


def refusal(body: Any, *, max_chars: int = 1000) -> Problem:
    with pytest.raises(Problem) as caught:
        parse(body, max_chars=max_chars)
    return caught.value


def test_a_full_request_maps_options_onto_ollamas_names() -> None:
    request = parse(
        {
            "message": "hi",
            "session_id": SID,
            "model": " llama3.2:1b ",
            "stream": False,
            "options": {"temperature": 0.2, "max_tokens": 64, "stop": "END", "top_k": 5},
        }
    )
    assert request == ChatRequest(
        message="hi",
        session_id=SID,
        model="llama3.2:1b",
        stream=False,
        system=None,
        options={"temperature": 0.2, "num_predict": 64, "stop": ["END"], "top_k": 5},
    )


def test_defaults_stream_and_no_options() -> None:
    request = parse({"message": "hi"})
    assert request.stream is True and request.options == {} and request.model is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"\xff\xfe", 400, None),
        (b"[1, 2]", 400, None),
        ({"message": 3}, 422, "message"),
        ({"message": "x" * 11}, 422, "message"),
        ({"message": "hi", "stream": "yes"}, 422, "stream"),
        ({"message": "hi", "model": ""}, 422, "model"),
        ({"message": "hi", "system": 5}, 422, "system"),
        ({"message": "hi", "session_id": SID.upper()}, 422, "session_id"),
        ({"message": "hi", "options": []}, 422, "options"),
        ({"message": "hi", "options": {"max_tokens": 0}}, 422, "options.max_tokens"),
        ({"message": "hi", "options": {"max_tokens": True}}, 422, "options.max_tokens"),
        ({"message": "hi", "options": {"top_p": 1.5}}, 422, "options.top_p"),
        ({"message": "hi", "options": {"temperature": float("nan")}}, 422, "options.temperature"),
        ({"message": "hi", "options": {"stop": ["a", ""]}}, 422, "options.stop"),
        ({"message": "hi", "options": {"num_predict": 5}}, 422, "options.num_predict"),
        ({"message": "hi", "extra": 1}, 422, "extra"),
    ],
)
def test_refusals_name_the_field(body: Any, status: int, field: str | None) -> None:
    problem = refusal(body, max_chars=10)
    assert (problem.status, problem.field) == (status, field)
    assert problem.detail and "\n" not in problem.detail


def test_titles_are_the_first_line_cut_at_60() -> None:
    assert title_of("  Why is the sky   blue?\nexplain ") == "Why is the sky blue?"
    long = title_of("word " * 40)
    assert len(long) == 60 and long.endswith("…")


def test_problem_titles_are_rfc_9110s_whatever_the_python() -> None:
    from ollama_fleet.gateway.sessions.problems import problem_body

    body = json.loads(problem_body(422, "invalid-field", "x", instance="/v1/chat", field="message"))
    assert body == {
        "type": "https://ollama-fleet.dev/problems/invalid-field",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "x",
        "instance": "/v1/chat",
        "field": "message",
    }
