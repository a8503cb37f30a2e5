"""Ollama's NDJSON chat lines into SSE events, through a real store for the recorder."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ollama_fleet.gateway.sessions.events import ChatStream
from ollama_fleet.gateway.sessions.recorder import AnswerRecorder
from ollama_fleet.gateway.sessions.store import Store, open_store


def line(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode() + b"\n"


def chunk(text: str) -> bytes:
    return line({"model": "m", "message": {"role": "assistant", "content": text}, "done": False})


DONE = line({"model": "m", "done": True, "prompt_eval_count": 7, "eval_count": 3})


async def with_store(tmp_path: Path, body: Any) -> Any:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    await store.open()
    try:
        session = await store.create_session(
            owner="alice", title="t", model="m", now=datetime.now(UTC)
        )
        return await body(store, session.id)
    finally:
        await store.close()


def run(tmp_path: Path, messages: list[dict[str, Any]], *, stream: bool = True) -> Any:
    async def body(store: Store, session_id: str) -> Any:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        recorder = AnswerRecorder(store, session_id=session_id, interval_s=0.0)
        chat = ChatStream(send, session_id=session_id, stream=stream, recorder=recorder)
        for message in messages:
            await chat(message)
        message_id = await recorder.finish(
            complete=chat.done and chat.error is None, tokens=chat.answer_tokens, error=chat.error
        )
        stored = await store.messages(session_id)
        return chat, sent, message_id, stored

    return asyncio.run(with_store(tmp_path, body))


def start(status: int = 200) -> dict[str, Any]:
    headers = [(b"content-type", b"application/x-ndjson"), (b"x-gateway-node", b"n1")]
    return {"type": "http.response.start", "status": status, "headers": headers}


def body(data: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def events(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert raw.endswith(b"\n\n") or not raw
    return [json.loads(e.removeprefix(b"data: ")) for e in raw.split(b"\n\n") if e]


def test_tokens_become_events_even_when_lines_are_split_across_chunks(tmp_path: Path) -> None:
    whole = chunk("Hel") + chunk("lo ") + chunk("wörld") + DONE
    parts = [whole[:10], whole[10:57], whole[57:58], whole[58:]]
    chat, sent, message_id, stored = run(
        tmp_path, [start(), *(body(p) for p in parts), body(b"", more=False)]
    )
    assert sent[0]["headers"][0] == (b"content-type", b"text/event-stream; charset=utf-8")
    assert (b"x-gateway-node", b"n1") in sent[0]["headers"]
    assert [e["content"] for e in events(sent)] == ["Hel", "lo ", "wörld"]
    assert not any(m.get("more_body") is False for m in sent)  # the caller ends the stream
    assert chat.done and (chat.prompt_tokens, chat.answer_tokens, chat.total_tokens) == (7, 3, 10)
    assert stored[-1].content == "Hello wörld" and stored[-1].complete
    assert stored[-1].id == message_id and stored[-1].tokens == 3


def test_an_error_line_after_a_cut_is_caught_and_the_partial_kept(tmp_path: Path) -> None:
    cut = chunk("partial ") + b'{"model":"m","mess' + b'\n{"error":"node broke off"}\n'
    chat, sent, _, stored = run(tmp_path, [start(), body(cut, more=False)])
    assert [e["content"] for e in events(sent)] == ["partial "]
    assert chat.error == "node broke off" and not chat.done
    assert stored[-1].content == "partial " and stored[-1].complete is False
    assert stored[-1].error == "node broke off"


def test_a_refusal_is_held_back_for_the_caller(tmp_path: Path) -> None:
    refusal = line({"error": 'model "m" not found, try pulling it first'})
    chat, sent, _, _ = run(tmp_path, [start(404), body(refusal, more=False)])
    assert sent == [] and chat.status == 404 and not chat.started
    assert chat.upstream_error() == 'model "m" not found, try pulling it first'


def test_not_streamed_sends_nothing_until_the_end(tmp_path: Path) -> None:
    chat, sent, _, stored = run(
        tmp_path, [start(), body(chunk("a") + chunk("b") + DONE, more=False)], stream=False
    )
    assert sent == [] and stored[-1].content == "ab" and chat.done
