"""An answer written to the store while it streams: one row, flushed at most every interval.

The answer so far is written one `interval_s` after the recorder starts and then at most every
`interval_s` (the row exists from the first write on), one write at a time and never awaited
by the stream (an answer shorter than the interval is one write, at the end);
`finish` writes the last state (complete or not, with why) and returns the message's id. A
gateway killed in between leaves the row as of its last flush: incomplete, never lost, never a
second row. A store that fails is logged once; the stream goes on (and `failed` tells the
caller the answer is not stored).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ollama_fleet.gateway.sessions.store import Store, new_id

log = logging.getLogger(__name__)


class AnswerRecorder:
    """The assistant's answer in one session, as far as it has come."""

    def __init__(
        self,
        store: Store,
        *,
        session_id: str,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.interval_s = interval_s
        self.clock = clock
        self.message_id: str | None = None  # once the row is known to exist
        self._id = new_id()  # every insert uses it: one retried after a lost reply is no new row
        self.created_at: datetime | None = None
        self.writes = 0
        self.failed = False
        self._parts: list[str] = []
        self._last = clock()  # the first write one interval in: a short answer is one write
        self._task: asyncio.Task[None] | None = None

    @property
    def content(self) -> str:
        return "".join(self._parts)

    def feed(self, text: str) -> None:
        """More of the answer; a write starts if none runs and the interval has passed."""
        self._parts.append(text)
        if self._task is not None and not self._task.done():
            return
        now = self.clock()
        if now - self._last < self.interval_s:
            return
        self._last = now
        self._task = asyncio.create_task(self._write(complete=False, tokens=None, error=None))

    async def idle(self) -> None:
        """Until the write in flight, if any, is done."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def finish(self, *, complete: bool, tokens: int | None, error: str | None) -> str | None:
        """Write the final state (after any write in flight); the message id (None: the store
        failed before the row was made)."""
        await self.idle()
        if self.message_id is None and not self._parts and not complete:
            return None  # not a word came: nothing to keep (the caller answers a problem)
        await asyncio.shield(self._write(complete=complete, tokens=tokens, error=error))
        return self.message_id

    async def _write(self, *, complete: bool, tokens: int | None, error: str | None) -> None:
        content = self.content
        now = datetime.now(UTC)
        try:
            if self.message_id is None:
                message = await self.store.add_message(
                    session_id=self.session_id,
                    role="assistant",
                    content=content,
                    complete=complete,
                    now=now,
                    tokens=tokens,
                    message_id=self._id,
                )
                self.message_id, self.created_at = message.id, message.created_at
                self.writes += 1
                if error is None:  # the row says all there is to say
                    return
            await self.store.update_message(
                self.message_id, content=content, complete=complete, tokens=tokens, error=error,
                now=now,
            )  # fmt: skip
            self.writes += 1
        except Exception as exc:  # a flush must never break the stream; logged once
            if not self.failed:
                self.failed = True
                log.error("gateway: an answer in session %s not stored: %s", self.session_id, exc)
