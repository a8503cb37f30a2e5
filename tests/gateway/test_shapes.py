"""Error bodies and merged model lists in Ollama's and OpenAI's shapes."""

from __future__ import annotations

import json

from ollama_fleet.gateway.shapes import (
    error_body,
    error_message,
    merge_ps,
    merge_tags,
    ollama_error,
    openai_error,
    openai_models,
    stream_error,
)


def test_error_bodies() -> None:
    assert json.loads(ollama_error("no such model")) == {"error": "no such model"}
    assert json.loads(openai_error("slow down", status=429, code="requests")) == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_exceeded",
            "param": None,
            "code": "requests",
        }
    }
    types = {s: json.loads(error_body("openai", "x", status=s))["error"]["type"] for s in
             (400, 401, 403, 404, 429, 500, 502, 503)}  # fmt: skip
    assert types == {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "invalid_request_error",
        429: "rate_limit_exceeded",
        500: "server_error",
        502: "server_error",
        503: "server_error",
    }
    assert json.loads(error_body("ollama", "x", status=503)) == {"error": "x"}


def test_stream_errors_end_the_stream_in_its_format() -> None:
    line = stream_error("ollama", "node gpu-1 broke off")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"error": "node gpu-1 broke off"}
    event = stream_error("openai", "node gpu-1 broke off")
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    error = json.loads(event[len(b"data: ") :])["error"]
    assert (error["message"], error["type"]) == ("node gpu-1 broke off", "server_error")


def test_a_stream_error_after_half_a_line_or_event_ends_that_first() -> None:
    def joint(api: str, after: bytes) -> bytes:
        piece = stream_error(api, "x", after=after)  # type: ignore[arg-type]
        return piece[: piece.index(b"{" if api == "ollama" else b"data: ")]

    assert [joint("ollama", after) for after in (b"", b'{"a":1}\n', b'{"a":')] == [
        b"", b"", b"\n"
    ]  # fmt: skip
    sse = (b"", b"data: {}\n\n", b"data: {}\r\n\r\n", b"data: {}\n", b"data: {")
    assert [joint("openai", after) for after in sse] == [b"", b"", b"", b"\n", b"\n\n"]


def test_error_message_reads_both_shapes_and_nothing_else() -> None:
    assert error_message(b'{"error": "model requires more system memory"}') == (
        "model requires more system memory"
    )
    assert error_message(openai_error("boom", status=500)) == "boom"
    for other in (b"<html>500</html>", b'{"error": 5}', b"[]", b"[" * 100_000):
        assert error_message(other) is None


def tag(name: str, digest: str, modified: str) -> dict[str, object]:
    return {"name": name, "model": name, "digest": digest, "modified_at": modified, "size": 1}


def test_merge_tags_keeps_one_entry_per_name_and_digest_the_newest() -> None:
    merged = merge_tags(
        {
            "a": [
                tag("llama3.2:1b", "d1", "2025-01-01T10:00:00.123456789+01:00"),
                tag("qwen:0.5b", "q1", "2025-03-01T00:00:00Z"),
            ],
            "b": [
                tag("llama3.2:1b", "d1", "2025-02-01T10:00:00Z"),
                tag("llama3.2:1b", "d2", "2024-12-01T00:00:00Z"),
            ],
        }
    )
    assert [(e["name"], e["digest"], e["modified_at"]) for e in merged] == [
        ("qwen:0.5b", "q1", "2025-03-01T00:00:00Z"),
        ("llama3.2:1b", "d1", "2025-02-01T10:00:00Z"),
        ("llama3.2:1b", "d2", "2024-12-01T00:00:00Z"),
    ]


def test_merge_ps_names_the_node() -> None:
    merged = merge_ps({"b": [{"name": "m:1"}], "a": [{"name": "m:1"}, {"name": "n:2"}]})
    assert merged == [
        {"name": "m:1", "node": "a"},
        {"name": "n:2", "node": "a"},
        {"name": "m:1", "node": "b"},
    ]


def test_openai_models_lists_each_name_once() -> None:
    merged = merge_tags(
        {
            "a": [tag("llama3.2:1b", "d1", "2025-02-01T00:00:00Z")],
            "b": [tag("llama3.2:1b", "d2", "2024-01-01T00:00:00Z"), tag("me/x:1", "x", "bad")],
        }
    )
    assert openai_models(merged) == {
        "object": "list",
        "data": [
            {"id": "llama3.2:1b", "object": "model", "created": 1738368000, "owned_by": "library"},
            {"id": "me/x:1", "object": "model", "created": 0, "owned_by": "me"},
        ],
    }
