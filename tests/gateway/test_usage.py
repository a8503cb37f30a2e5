"""The usage scanner finds token counts and the first token in bodies split at any byte."""

from __future__ import annotations

import json

import pytest

from ollama_fleet.gateway.usage import UsageScanner


def ndjson(*objs: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


NATIVE = ndjson(
    {"model": "m", "message": {"role": "assistant", "content": ""}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": "Hi"}, "done": False},
    {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True,
     "prompt_eval_count": 12, "eval_count": 345},
)  # fmt: skip
SSE = (
    b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":89,"total_tokens":96}}'
    b"\n\n"
    b"data: [DONE]\n\n"
)
PLAIN = json.dumps(
    {"model": "m", "response": "a whole answer", "done": True, "prompt_eval_count": 5,
     "eval_count": 6}, indent=1,
).encode()  # fmt: skip
EMBED = b'{"model":"e","embeddings":[[0.1,0.2]],"prompt_eval_count":3}'


def scan(pieces: list[bytes]) -> UsageScanner:
    scanner = UsageScanner()
    for index, piece in enumerate(pieces):
        scanner.feed(piece, now=float(index))
    return scanner


@pytest.mark.parametrize(
    ("body", "tokens_in", "tokens_out"),
    [(NATIVE, 12, 345), (SSE, 7, 89), (PLAIN, 5, 6), (EMBED, 3, None)],
    ids=["ndjson", "sse", "json", "embed"],
)
def test_counts_are_found_whatever_the_split(
    body: bytes, tokens_in: int, tokens_out: int | None
) -> None:
    for cut in range(len(body) + 1):
        usage = scan([body[:cut], body[cut:]]).usage()
        assert (usage.tokens_in, usage.tokens_out) == (tokens_in, tokens_out), cut
        assert usage.bytes == len(body)


def test_byte_by_byte_keeps_only_a_short_tail() -> None:
    scanner = UsageScanner()
    for index in range(len(NATIVE)):
        scanner.feed(NATIVE[index : index + 1], now=0.0)
        assert len(scanner._tail) <= 96
    assert scanner.usage().tokens_out == 345


def test_first_token_is_the_first_non_empty_content() -> None:
    lines = NATIVE.splitlines(keepends=True)
    usage = scan(lines).usage()
    assert usage.first_byte_at == 0.0  # the role-only line
    assert usage.first_token_at == 1.0  # "Hi"
    sse_events = [event + b"\n\n" for event in SSE.split(b"\n\n") if event]
    assert scan(sse_events).usage().first_token_at == 1.0


def test_text_that_looks_like_a_count_does_not_count() -> None:
    fake = ndjson(
        {"message": {"content": '{"eval_count": 999, "prompt_tokens": 5}'}, "done": False},
        {"message": {"content": ""}, "done": True, "eval_count": 2},
    )
    for cut in range(len(fake) + 1):
        usage = scan([fake[:cut], fake[cut:]]).usage()
        assert (usage.tokens_in, usage.tokens_out) == (None, 2), cut


def test_an_answer_without_content_has_no_first_token() -> None:
    usage = scan([EMBED]).usage()
    assert usage.first_token_at is None
    assert usage.first_byte_at == 0.0
    assert UsageScanner().usage().first_byte_at is None
