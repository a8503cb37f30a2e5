"""Scale-out: two gateway processes on one PostgreSQL and one redis-server, behind a real Caddy.

Every part is real and on 127.0.0.1: Debian's PostgreSQL (a cluster in a temp dir), redis-server
and Caddy (round robin over both replicas, answers relayed unbuffered), the gateways as
`python -m ollama_fleet gateway` processes (so one can be SIGKILLed mid-stream), simulator
nodes in threads: `fast` answers at once, `slow` streams 20 tokens a second. Streams are read
with a real SSE client; which replica served a request is read from its access log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_fleet.gateway.settings import KeySpec
from ollama_fleet.simulator.generation import chat_prompt_tokens
from polling import wait_for
from redis_server import RedisServer, running_redis

from ..live import make_key, sim_node
from ..replicas_live import Front, Replica, bearer_client, caddy_front, replica_config, stream_chat
from ..sessions_live import Turn

pytestmark = pytest.mark.integration

FAST = "llama3.2:1b"
SLOW = "qwen2.5:0.5b"  # only on the slow node
PROBLEM = "application/problem+json"
PROBLEMS = "https://ollama-fleet.dev/problems/"
RPM = 3
KILL_AFTER_TOKENS = 20  # about 1 s of the slow node's answer: ten 100 ms flushes
# one key per test, so each counts only its own requests in the access logs
USERS = ("alice", "bob", "carol", "dave", "erin")


class Keys:
    """The replicas' keys: users by name, and two with a small rpm."""

    def __init__(self) -> None:
        made = {name: make_key(name) for name in USERS}
        made["limited"] = make_key("limited", rpm=RPM)
        made["once"] = make_key("once", rpm=1)
        self.key = {name: key for name, (key, _) in made.items()}
        self.specs: tuple[KeySpec, ...] = tuple(spec for _, spec in made.values())


@dataclass(frozen=True)
class Cluster:
    """Replicas a and b on one database and one Redis, Caddy in front of both."""

    a: Replica
    b: Replica
    front: Front
    nodes: dict[str, str]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def nodes() -> Iterator[dict[str, str]]:
    with sim_node((FAST,)) as fast, sim_node((SLOW,), tps=20) as slow:
        yield {"fast": fast.url, "slow": slow.url}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    pg_cluster: Callable[[], str],
    redis: RedisServer,
    nodes: dict[str, str],
    keys: Keys,
) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("replicas")
    config = replica_config(
        directory / "gateway.yml",
        nodes=nodes,
        keys=keys.specs,
        database_url=pg_cluster(),
        redis_url=redis.url,
    )
    with ExitStack() as stack:
        a = stack.enter_context(Replica(config, directory / "a.log")).ready()
        b = stack.enter_context(Replica(config, directory / "b.log")).ready()
        front = stack.enter_context(caddy_front(directory / "caddy", [a, b]))
        yield Cluster(a=a, b=b, front=front, nodes=nodes)


def body(message: str, *, model: str = FAST, max_tokens: int = 4, **fields: Any) -> dict[str, Any]:
    return {"message": message, "model": model, "options": {"max_tokens": max_tokens}, **fields}


def chats(replica: Replica, key: str) -> list[dict[str, Any]]:
    """The access log lines of this key's /v1/chat requests on this replica."""
    return replica.requests(key=key, path="/v1/chat")


def wait_logged(cluster: Cluster, key: str, count: int) -> None:
    # a line is written once its answer has ended, just after the client saw the end
    wait_for(
        f"{count} /v1/chat lines of {key} in the access logs",
        lambda: len(chats(cluster.a, key)) + len(chats(cluster.b, key)) == count,
    )


def assert_stored_once(stored: list[dict[str, Any]], sent: list[str], turns: list[Turn]) -> None:
    """Each turn's message and its whole answer, in order, each exactly once."""
    assert [m["role"] for m in stored] == ["user", "assistant"] * len(sent)
    assert [m["content"] for m in stored[::2]] == sent
    assert [m["content"] for m in stored[1::2]] == ["".join(t.tokens) for t in turns]
    assert [m["id"] for m in stored[1::2]] == [t.last["message_id"] for t in turns]
    assert all(m["complete"] for m in stored)


def problem(answer: httpx.Response) -> dict[str, Any]:
    assert answer.headers["content-type"] == PROBLEM, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_a_conversation_started_on_a_continues_on_b_with_its_history(
    cluster: Cluster, keys: Keys
) -> None:
    alice = keys.key["alice"]
    with cluster.a.client(alice) as to_a:
        first = stream_chat(to_a, body("Where is Lyon?"))
    with cluster.b.client(alice) as to_b:
        second = stream_chat(to_b, body("And Paris?", session_id=first.session_id))
    assert first.last["type"] == "done" and second.last["type"] == "done"
    assert second.session_id == first.session_id
    for replica in (cluster.a, cluster.b):
        stored = replica.messages(alice, first.session_id)
        assert_stored_once(stored, ["Where is Lyon?", "And Paris?"], [first, second])
    # what B sent to Ollama held turn 1: the node counted its prompt over all three messages
    wait_logged(cluster, "alice", 2)
    [on_b] = chats(cluster.b, "alice")
    history = [(m["role"], m["content"]) for m in stored[:3]]
    assert on_b["tokens_in"] == chat_prompt_tokens(history) > chat_prompt_tokens(history[2:])


def test_turns_through_caddy_alternate_over_both_replicas_and_are_stored_once(
    cluster: Cluster, keys: Keys
) -> None:
    sent = [f"turn {n} about GPUs" for n in range(4)]
    turns: list[Turn] = []
    with bearer_client(cluster.front.url, keys.key["carol"]) as client:
        for message in sent:
            session: dict[str, Any] = {"session_id": turns[0].session_id} if turns else {}
            turns.append(stream_chat(client, body(message, **session)))
    assert all(t.status == 200 and t.last["type"] == "done" for t in turns)
    assert {t.session_id for t in turns} == {turns[0].session_id}
    wait_logged(cluster, "carol", len(sent))
    assert chats(cluster.a, "carol") and chats(cluster.b, "carol"), "one replica served all"
    assert_stored_once(cluster.b.messages(keys.key["carol"], turns[0].session_id), sent, turns)


class _HangUp(Exception):
    """The client leaves mid-stream."""


def test_tokens_stream_through_caddy_before_the_answer_ends(cluster: Cluster, keys: Keys) -> None:
    # a Caddy that buffered would hand over the first token with the last, 10 s on: by then
    # the stored answer would be complete
    dave = keys.key["dave"]
    rows: list[dict[str, Any]] = []

    def read_the_store(turn: Turn) -> None:
        rows.extend(
            wait_for(
                "the answer's row",
                lambda: len(found := cluster.a.messages(dave, turn.session_id)) == 2 and found,
            )
        )
        raise _HangUp

    with bearer_client(cluster.front.url, dave) as client, pytest.raises(_HangUp):
        stream_chat(
            client, body("a long answer", model=SLOW, max_tokens=200), on_token=read_the_store
        )
    assert rows[1]["role"] == "assistant" and rows[1]["complete"] is False


def test_a_keys_rpm_holds_across_both_replicas(
    cluster: Cluster, keys: Keys, tmp_path: Path, pg_cluster: Callable[[], str]
) -> None:
    assert _spend(cluster.front, keys.key["limited"], RPM + 3) == [200] * RPM + [429] * 3
    wait_logged(cluster, "limited", RPM + 3)
    assert chats(cluster.a, "limited") and chats(cluster.b, "limited"), "one replica served all"
    # Without Redis each replica keeps buckets of its own: the same requests pass RPM on each
    config = replica_config(
        tmp_path / "no-redis.yml",
        nodes=cluster.nodes,
        keys=keys.specs,
        database_url=pg_cluster(),
    )
    with ExitStack() as stack:
        pair = [stack.enter_context(Replica(config, tmp_path / f"{n}.log")).ready() for n in "cd"]
        front = stack.enter_context(caddy_front(tmp_path / "caddy", pair))
        alone = _spend(front, keys.key["limited"], RPM + 3)
    assert alone.count(200) == 2 * RPM, alone


def _spend(front: Front, key: str, count: int) -> list[int]:
    """`count` turns through Caddy, one after the other: their statuses (429s checked)."""
    statuses = []
    with bearer_client(front.url, key) as client:
        for n in range(count):
            answer = client.post("/v1/chat", json=body(f"request {n}", stream=False))
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert problem(answer)["type"] == PROBLEMS + "rate-limited"
                assert int(answer.headers["retry-after"]) >= 1
    return statuses


def _received_until_killed(client: httpx.Client, replica: Replica, message: str) -> Turn:
    """A slow streamed turn on `replica`, SIGKILLed once KILL_AFTER_TOKENS tokens arrived."""

    def kill(turn: Turn) -> None:
        if len(turn.tokens) == KILL_AFTER_TOKENS:
            replica.kill()

    turn = stream_chat(client, body(message, model=SLOW, max_tokens=200), on_token=kill)
    assert turn.status == 200 and turn.last["type"] == "token", turn.last
    return turn


def _assert_partial(stored: dict[str, Any], turn: Turn) -> None:
    """The answer as of its last flush: incomplete, a prefix of what the client got, and
    more than the first token (written at once) alone."""
    received = "".join(turn.tokens)
    assert stored["role"] == "assistant" and stored["complete"] is False
    assert received.startswith(stored["content"])
    assert len(stored["content"]) > len(turn.tokens[0]), stored["content"]


def test_a_replica_killed_mid_stream_leaves_the_partial_answer_for_the_other(
    cluster: Cluster, keys: Keys, tmp_path: Path
) -> None:
    erin = keys.key["erin"]
    doomed_config = cluster.a.config  # the same database and Redis as a and b
    with (
        Replica(doomed_config, tmp_path / "doomed.log") as doomed,
        doomed.ready().client(erin) as client,
    ):
        turn = _received_until_killed(client, doomed, "tell me a long story")
    user, answer = cluster.b.messages(erin, turn.session_id)  # one answer row, not two
    assert (user["role"], user["content"]) == ("user", "tell me a long story")
    _assert_partial(answer, turn)
    with cluster.b.client(erin) as client:
        again = stream_chat(client, body("go on", model=SLOW, session_id=turn.session_id))
    assert again.last["type"] == "done"
    stored = cluster.a.messages(erin, turn.session_id)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[1] == answer and stored[3]["complete"] is True


def test_sqlite_survives_a_sigkill_mid_stream_and_a_restart_serves_the_session(
    nodes: dict[str, str], keys: Keys, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.sqlite3"
    alice = keys.key["alice"]
    config = replica_config(
        tmp_path / "gateway.yml", nodes=nodes, keys=keys.specs, database_url=f"sqlite:///{path}"
    )
    with Replica(config, tmp_path / "first.log") as first, first.ready().client(alice) as client:
        turn = _received_until_killed(client, first, "a story about SQLite")
    # read-only: closing this connection must not checkpoint what the kill left behind
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = db.execute(
            "SELECT role, content, complete FROM messages WHERE session_id = ? ORDER BY seq",
            (turn.session_id,),
        ).fetchall()
    assert [row[:2] for row in rows[:1]] == [("user", "a story about SQLite")]
    [(role, content, complete)] = rows[1:]  # one answer row
    _assert_partial({"role": role, "content": content, "complete": bool(complete)}, turn)
    with Replica(config, tmp_path / "second.log") as second:
        with second.ready().client(alice) as client:
            again = stream_chat(client, body("and then?", model=SLOW, session_id=turn.session_id))
        stored = second.messages(alice, turn.session_id)
    assert again.last["type"] == "done"
    roles = [(m["role"], m["complete"]) for m in stored]
    assert roles == [("user", True), ("assistant", False), ("user", True), ("assistant", True)]
    assert stored[1]["content"] == content and stored[3]["content"] == "".join(again.tokens)


def test_problems_across_replicas(cluster: Cluster, keys: Keys) -> None:
    alice, bob, once = keys.key["alice"], keys.key["bob"], keys.key["once"]
    with cluster.a.client(alice) as client:
        made = client.post("/v1/chat", json=body("mine", stream=False))
    sid = made.json()["session_id"]
    path = f"/v1/sessions/{sid}"
    with cluster.b.client(bob) as client:
        answers = [client.get(path + "/messages")]
    with bearer_client(cluster.front.url, bob) as client:  # each on the next replica
        answers += [
            client.patch(path, json={"title": "stolen"}),
            client.delete(path),
            client.post("/v1/chat", json=body("in", session_id=sid)),
        ]
    instances = [path + "/messages", path, path, "/v1/chat"]
    for answer, instance in zip(answers, instances, strict=True):
        assert answer.status_code == 404
        found = problem(answer)
        assert found == {
            "type": PROBLEMS + "session-not-found",
            "title": "Not Found",
            "status": 404,
            "detail": found["detail"],
            "instance": instance,
            "field": "session_id",
        }
        assert isinstance(found["detail"], str) and found["detail"]
    assert [m["content"] for m in cluster.b.messages(alice, sid)][0] == "mine"
    with cluster.a.client(once) as client:
        assert client.post("/v1/chat", json=body("one", stream=False)).status_code == 200
    with cluster.b.client(once) as client:
        refused = client.post("/v1/chat", json=body("two", stream=False))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    found = problem(refused)
    assert found == {
        "type": PROBLEMS + "rate-limited",
        "title": "Too Many Requests",
        "status": 429,
        "detail": found["detail"],
        "instance": "/v1/chat",
    }
    assert "rpm" in found["detail"] or "minute" in found["detail"], found["detail"]
