"""The sessions API through a real gateway (uvicorn on 127.0.0.1) on a simulator node.

Streams are read with a real SSE client (httpx-sse); problem+json shapes are asserted whole;
what is stored is read back through the API and, for what it does not show, from the database.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_fleet.gateway.settings import KeySpec, Sessions
from ollama_fleet.simulator.config import Faults
from polling import wait_for

from ..live import make_key
from ..sessions_live import MODEL, SessionsGateway, sessions_gateway

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
HI = {"message": "hi", "model": MODEL}


def problem(answer: httpx.Response) -> dict[str, Any]:
    assert answer.headers["content-type"] == PROBLEM, answer.text
    data: dict[str, Any] = answer.json()
    assert data["type"].startswith("https://ollama-fleet.dev/problems/")
    assert data["status"] == answer.status_code
    assert set(data) >= {"type", "title", "status", "detail", "instance"}
    return data


@pytest.fixture
def gw(tmp_path: Path) -> Any:
    with sessions_gateway(tmp_path) as running:
        yield running


def test_a_streamed_turn_creates_a_titled_session_and_stores_both_messages(
    gw: SessionsGateway,
) -> None:
    turn = gw.chat(gw.alice, "What is a GPU?\nAnd a second line", options={"max_tokens": 8})
    assert turn.status == 200
    assert turn.headers["content-type"].startswith("text/event-stream")
    assert turn.tokens and all(e["session_id"] == turn.session_id for e in turn.events)
    done = turn.last
    assert done["type"] == "done" and set(done) == {
        "type",
        "session_id",
        "message_id",
        "total_tokens",
    }
    assert isinstance(done["total_tokens"], int) and done["total_tokens"] > 8
    with gw.client(gw.alice) as client:
        sessions = client.get("/v1/sessions").json()
        stored = client.get(f"/v1/sessions/{turn.session_id}/messages").json()
    [session] = sessions["data"]
    assert session["title"] == "What is a GPU?" and session["message_count"] == 2
    assert session["model"] == MODEL and sessions["next_cursor"] is None
    user, answer = stored["data"]
    assert (user["role"], user["content"]) == ("user", "What is a GPU?\nAnd a second line")
    assert answer["role"] == "assistant" and answer["id"] == done["message_id"]
    assert answer["content"] == "".join(turn.tokens)
    assert answer["complete"] is True and answer["tokens"] == 8 and answer["error"] is None


def test_a_session_continues_not_streamed_with_its_model(gw: SessionsGateway) -> None:
    first = gw.chat(gw.alice, "hello")
    with gw.client(gw.alice) as client:
        answer = client.post(
            "/v1/chat", json={"message": "again", "session_id": first.session_id, "stream": False}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"id", "session_id", "content", "model", "created_at", "tokens_used"}
        assert body["session_id"] == first.session_id and body["model"] == MODEL
        assert body["content"] and body["created_at"].endswith("Z")
        stored = client.get(f"/v1/sessions/{first.session_id}/messages").json()["data"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[-1]["content"] == body["content"] and stored[-1]["id"] == body["id"]
    # the second turn sent the first as context: more prompt tokens than a fresh "again"
    fresh = gw.chat(gw.alice, "again", stream=True)
    assert body["tokens_used"] - stored[-1]["tokens"] > fresh.last["total_tokens"] - len(
        fresh.tokens
    )


def test_a_system_prompt_is_the_first_message(gw: SessionsGateway) -> None:
    turn = gw.chat(gw.alice, "hi", system="Answer in French.")
    with gw.client(gw.alice) as client:
        stored = client.get(f"/v1/sessions/{turn.session_id}/messages").json()["data"]
        again = client.post(
            "/v1/chat",
            json={"message": "x", "session_id": turn.session_id, "system": "other"},
        )
    assert [m["role"] for m in stored] == ["system", "user", "assistant"]
    assert stored[0]["content"] == "Answer in French."
    assert problem(again)["field"] == "system" and again.status_code == 422


def test_another_key_gets_404_and_an_admin_sees_all(gw: SessionsGateway) -> None:
    turn = gw.chat(gw.alice, "mine")
    sid = turn.session_id
    with gw.client(gw.bob) as bob:
        assert bob.get("/v1/sessions").json()["data"] == []
        answers = [
            bob.get(f"/v1/sessions/{sid}/messages"),
            bob.patch(f"/v1/sessions/{sid}", json={"title": "stolen"}),
            bob.delete(f"/v1/sessions/{sid}"),
            bob.post("/v1/chat", json={"message": "in", "session_id": sid}),
        ]
    for answer in answers:
        assert answer.status_code == 404
        assert problem(answer)["type"].endswith("/session-not-found")
    with gw.client(gw.alice) as alice:
        assert alice.get(f"/v1/sessions/{sid}/messages").json()["data"][0]["content"] == "mine"
    with gw.client(gw.root) as root:
        assert [s["id"] for s in root.get("/v1/sessions").json()["data"]] == [sid]
        renamed = root.patch(f"/v1/sessions/{sid}", json={"title": "by admin"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "by admin"
        assert root.delete(f"/v1/sessions/{sid}").status_code == 204
        gone = root.get(f"/v1/sessions/{sid}/messages")
    assert gone.status_code == 404 and problem(gone)["instance"] == f"/v1/sessions/{sid}/messages"


def test_rename_and_delete_take_the_messages_with_it(gw: SessionsGateway, tmp_path: Path) -> None:
    sid = gw.chat(gw.alice, "to delete").session_id
    with gw.client(gw.alice) as client:
        renamed = client.patch(f"/v1/sessions/{sid}", json={"title": "  new title "})
        assert renamed.json()["title"] == "new title" and renamed.json()["message_count"] == 2
        assert client.delete(f"/v1/sessions/{sid}").status_code == 204
        assert client.delete(f"/v1/sessions/{sid}").status_code == 404
    with sqlite3.connect(tmp_path / "sessions.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)


def test_sessions_are_paged_newest_first(gw: SessionsGateway) -> None:
    ids = [gw.chat(gw.alice, f"session {n}").session_id for n in range(5)]
    seen: list[str] = []
    cursor = None
    with gw.client(gw.alice) as client:
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/sessions", params=params).json()
            assert len(page["data"]) <= 2
            seen += [s["id"] for s in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]
        gw.chat(gw.alice, "bump", session_id=ids[0])
        assert client.get("/v1/sessions").json()["data"][0]["id"] == ids[0]
        bad = client.get("/v1/sessions", params={"cursor": "nonsense"})
        assert bad.status_code == 422 and problem(bad)["field"] == "cursor"
        bad = client.get("/v1/sessions", params={"limit": "0"})
        assert bad.status_code == 422 and problem(bad)["field"] == "limit"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b'{"message": "a\\u0000b", "model": "llama3.2:1b"}', 422, "message"),
        (b'{"message": "lone \\ud800", "model": "llama3.2:1b"}', 422, "message"),
        ({"message": ""}, 422, "message"),
        ({"message": "   "}, 422, "message"),
        ({"message": "x" * 101}, 422, "message"),
        ({"message": "hi", "modle": MODEL}, 422, "modle"),
        (
            {"message": "hi", "model": MODEL, "options": {"temprature": 1}},
            422,
            "options.temprature",
        ),
        (
            {"message": "hi", "model": MODEL, "options": {"temperature": 9}},
            422,
            "options.temperature",
        ),
        ({"message": "hi", "model": MODEL, "session_id": "../etc"}, 422, "session_id"),
        ({"message": "hi", "model": MODEL, "session_id": "0" * 32}, 404, "session_id"),
        ({"message": "hi"}, 422, "model"),
        ({"message": "hi", "model": "no-such-model:7b"}, 404, "model"),
    ],
)
def test_bad_requests_are_problems_naming_the_field(
    tmp_path: Path, body: Any, status: int, field: str | None
) -> None:
    sessions = Sessions(database_url=f"sqlite:///{tmp_path / 's.db'}", max_message_chars=100)
    with sessions_gateway(tmp_path, sessions=sessions) as gw, gw.client(gw.alice) as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = client.post("/v1/chat", content=content)
        assert answer.status_code == status, answer.text
        found = problem(answer)
        assert found.get("field") == field and found["instance"] == "/v1/chat"
        assert client.get("/v1/sessions").json()["data"] == []  # nothing stored


def test_keys_are_checked_first(gw: SessionsGateway) -> None:
    with gw.client() as anonymous:
        answer = anonymous.get("/v1/sessions")
    assert answer.status_code == 401 and problem(answer)["type"].endswith("/unauthorized")
    with gw.client("ofk_wrong") as wrong:
        assert wrong.post("/v1/chat", json={"message": "x", "model": MODEL}).status_code == 401


def test_a_key_may_not_use_a_model_its_globs_exclude(tmp_path: Path) -> None:
    key, spec = make_key("narrow", models=("other*",))
    with sessions_gateway(tmp_path) as gw:
        gw.running.app.reconfigure(_with_key(gw, spec))
        with gw.client(key) as client:
            answer = client.post("/v1/chat", json={"message": "x", "model": MODEL})
    assert answer.status_code == 403 and problem(answer)["type"].endswith("/forbidden")


def _with_key(gw: SessionsGateway, spec: KeySpec) -> Any:
    config = gw.running.app.config
    return replace(config, keys=(*config.keys, spec))


def test_rate_limited_turns_store_nothing(tmp_path: Path) -> None:
    key, spec = make_key("slow", rpm=1)
    with sessions_gateway(tmp_path) as gw:
        gw.running.app.reconfigure(_with_key(gw, spec))
        assert gw.chat(key, "one").status == 200
        second = gw.chat(key, "two")
        with gw.client(key) as client:
            listed = client.get("/v1/sessions").json()["data"]
    assert second.status == 429 and second.last["type"].endswith("/rate-limited")
    assert second.headers["retry-after"]
    assert [s["title"] for s in listed] == ["one"]


def test_no_node_is_a_503_problem_and_the_message_is_kept(tmp_path: Path) -> None:
    with sessions_gateway(tmp_path) as gw:
        sid = gw.chat(gw.alice, "first").session_id
        gw.running.app.pool.drain("n1")
        answer = gw.chat(gw.alice, "while drained", session_id=sid)
        with gw.client(gw.alice) as client:
            stored = client.get(f"/v1/sessions/{sid}/messages").json()["data"]
    assert answer.status == 503 and answer.last["session_id"] == sid
    assert stored[-1]["role"] == "user" and stored[-1]["content"] == "while drained"


def test_an_upstream_cut_ends_with_an_error_event_and_keeps_the_partial_answer(
    tmp_path: Path,
) -> None:
    with sessions_gateway(tmp_path) as gw:
        gw.node.state.faults = Faults(cut_stream_after=4, paths=("/api/chat",))
        turn = gw.chat(gw.alice, "tell me a long story", options={"max_tokens": 50})
        with gw.client(gw.alice) as client:
            stored = client.get(f"/v1/sessions/{turn.session_id}/messages").json()["data"]
    assert turn.status == 200 and turn.tokens
    assert turn.last["type"] == "error" and turn.last["message_id"] == stored[-1]["id"]
    assert stored[-1]["complete"] is False and stored[-1]["error"].startswith("upstream:")
    assert stored[-1]["content"] == "".join(turn.tokens)


def test_a_client_that_leaves_mid_stream_leaves_the_answer_stored_incomplete(
    tmp_path: Path,
) -> None:
    with sessions_gateway(tmp_path, tps=20) as gw:
        body = {"message": "a slow answer please", "model": MODEL, "options": {"max_tokens": 200}}
        seen: list[str] = []
        with gw.client(gw.alice) as client:
            with client.stream("POST", "/v1/chat", json=body) as answer:
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:])["session_id"])
                    if len(seen) == 5:
                        break
            sid = seen[0]
            stored = _wait_incomplete(client, sid)
    assert stored["complete"] is False and stored["error"] == "client_disconnect"
    assert stored["content"] and len(stored["content"].split()) < 200


def _wait_incomplete(client: httpx.Client, sid: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def settled() -> bool:
        data = client.get(f"/v1/sessions/{sid}/messages").json()["data"]
        if len(data) == 2 and data[1]["error"] is not None:
            found.update(data[1])
            return True
        return False

    wait_for("the cut answer to be stored", settled)
    return found


def test_health_names_database_and_ollama(gw: SessionsGateway) -> None:
    with gw.client() as client:
        health = client.get("/health").json()
    assert health == {"status": "ok", "services": {"database": "ok", "ollama": "ok"}}


def test_concurrent_turns_in_one_session_are_all_stored(gw: SessionsGateway) -> None:
    sid = gw.chat(gw.alice, "start").session_id
    results: list[int] = []

    def turn(n: int) -> None:
        results.append(gw.chat(gw.alice, f"parallel {n}", session_id=sid).status)

    threads = [threading.Thread(target=turn, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with gw.client(gw.alice) as client:
        stored = client.get(f"/v1/sessions/{sid}/messages").json()["data"]
    assert results == [200] * 6
    assert len(stored) == 14 and all(m["complete"] for m in stored)


def test_a_stream_that_fails_before_its_first_word_is_a_problem(tmp_path: Path) -> None:
    with sessions_gateway(tmp_path) as gw:
        gw.node.state.faults = Faults(cut_stream_after=0, paths=("/api/chat",))
        turn = gw.chat(gw.alice, "nothing will come")
        with gw.client(gw.alice) as client:
            [session] = client.get("/v1/sessions").json()["data"]
            stored = client.get(f"/v1/sessions/{session['id']}/messages").json()["data"]
    assert turn.status == 502 and turn.headers["content-type"] == PROBLEM
    assert turn.last["type"].endswith("/answer-incomplete")
    assert turn.last["session_id"] == session["id"]
    assert [m["role"] for m in stored] == ["user"]  # no empty answer row


def test_a_node_answering_503_is_a_502_problem_naming_it(tmp_path: Path) -> None:
    with sessions_gateway(tmp_path) as gw:
        gw.node.state.faults = Faults(status=503, paths=("/api/chat",))
        turn = gw.chat(gw.alice, "the node is overloaded")
    assert turn.status == 502 and turn.last["session_id"]
    assert turn.last["detail"].startswith("no node answered: n1 (HTTP 503")


def test_a_full_node_is_a_503_with_retry_after(tmp_path: Path) -> None:
    with sessions_gateway(tmp_path, tps=20) as gw:
        config = gw.running.app.config
        one_slot = tuple(replace(n, max_parallel=1, queue=0) for n in config.nodes)
        gw.running.app.reconfigure(replace(config, nodes=one_slot))
        body = {"message": "a long one", "model": MODEL, "options": {"max_tokens": 200}}
        with gw.client(gw.alice) as client, client.stream("POST", "/v1/chat", json=body) as first:
            lines = first.iter_lines()  # kept: a dropped iterator would close the stream
            next(lines)  # the only slot is taken now
            turn = gw.chat(gw.alice, "no room")
    assert turn.status == 503 and turn.last["session_id"]
    assert int(turn.headers["retry-after"]) >= 1
