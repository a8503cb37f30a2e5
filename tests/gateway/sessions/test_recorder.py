"""An answer stored as it streams: one interval in, then at most every interval, one row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from ollama_fleet.gateway.sessions.recorder import AnswerRecorder
from ollama_fleet.gateway.sessions.store import open_store


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_flushes_are_bounded_and_the_row_is_updated_in_place(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 's.db'}")
        await store.open()
        session = await store.create_session(owner="a", title="t", model="m", now=datetime.now(UTC))
        clock = Clock()
        recorder = AnswerRecorder(store, session_id=session.id, interval_s=0.5, clock=clock)
        before = store.writes
        recorder.feed("one ")  # within the first interval: not written yet
        await recorder.idle()
        assert await store.messages(session.id) == ()
        clock.now += 0.5
        recorder.feed("two ")  # one interval in: the answer so far
        await recorder.idle()
        [first] = await store.messages(session.id)
        assert (first.content, first.complete) == ("one two ", False)
        clock.now += 0.1
        recorder.feed("three ")  # within the interval: not written
        await recorder.idle()
        assert (await store.messages(session.id))[0].content == "one two "
        clock.now += 0.5
        recorder.feed("four")  # the interval passed: the answer so far, the same row
        await recorder.idle()
        assert (await store.messages(session.id))[0].content == "one two three four"
        message_id = await recorder.finish(complete=True, tokens=4, error=None)
        [last] = await store.messages(session.id)
        assert last.id == message_id == first.id
        assert (last.content, last.complete, last.tokens) == ("one two three four", True, 4)
        assert store.writes - before == recorder.writes == 3
        await store.close()

    asyncio.run(main())


def test_an_answer_cut_before_its_first_flush_is_still_one_row(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 's.db'}")
        await store.open()
        session = await store.create_session(owner="a", title="t", model="m", now=datetime.now(UTC))
        recorder = AnswerRecorder(store, session_id=session.id, interval_s=60.0)
        recorder.feed("a")
        recorder.feed("b")  # the insert may still be running: finish waits for it
        message_id = await recorder.finish(complete=False, tokens=None, error="client_disconnect")
        [row] = await store.messages(session.id)
        assert row.id == message_id and row.content == "ab"
        assert (row.complete, row.error) == (False, "client_disconnect")
        await store.close()

    asyncio.run(main())


def test_a_failing_store_is_logged_once_and_never_raises(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 's.db'}")
        await store.open()
        session = await store.create_session(owner="a", title="t", model="m", now=datetime.now(UTC))
        await store.delete_session(session.id)  # the session went away mid-answer
        recorder = AnswerRecorder(store, session_id=session.id, interval_s=0.0)
        recorder.feed("lost")
        assert await recorder.finish(complete=True, tokens=1, error=None) is None
        assert recorder.failed
        await store.close()

    asyncio.run(main())
