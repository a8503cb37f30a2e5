"""Reading a relayed body as Ollama (Go's encoding/json) will: one model, no second spelling."""

from __future__ import annotations

import pytest

from ollama_fleet.gateway.bodies import SHOW_FIELDS, BadBody, read_request


def test_the_model_and_the_object_are_read() -> None:
    request = read_request(b'{"model": "llama3.2:1b", "options": {"Model": "nested is fine"}}')
    assert request.model == "llama3.2:1b"
    assert request.payload["options"] == {"Model": "nested is fine"}
    assert read_request(b'{"name": "qwen2.5:0.5b"}', fields=SHOW_FIELDS).model == "qwen2.5:0.5b"
    both = b'{"model": "a:1b", "name": "b:1b"}'
    assert read_request(both, fields=SHOW_FIELDS).model == "a:1b"  # as Ollama: model wins
    assert read_request(b'{"model": "", "name": "b:1b"}', fields=SHOW_FIELDS).model == "b:1b"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"model": "a", "Model": "b"}', 'the body has "Model", which Ollama reads as "model"'),
        (b'{"MODEL": "b"}', 'the body has "MODEL", which Ollama reads as "model"'),
        (b'{"model": "a", "mod\\u0065l": "b"}', 'the body has "model" more than once'),
        (b'{"model": "a", "model": "b"}', 'the body has "model" more than once'),
        (b'{"name": "a"}', "model is required"),  # only /api/show reads name
        (b'{"model": 5}', "model is required"),
        (b'{"model": "  "}', "model is required"),
        (b"[]", "the body is not a JSON object"),
        (b'{"model": "a"} {"model": "b"}', "the body is not a JSON object"),
        (b"[" * 100_000, "the body is not a JSON object"),
    ],
)
def test_bodies_ollama_would_read_otherwise_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(BadBody) as caught:
        read_request(body)
    assert str(caught.value).startswith(problem)


def test_show_refuses_a_second_name_too() -> None:
    for body in (b'{"name": "a", "Name": "b"}', b'{"name": "a", "name": "b"}'):
        with pytest.raises(BadBody):
            read_request(body, fields=SHOW_FIELDS)
