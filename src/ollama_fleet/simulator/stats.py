"""What one simulator (test double) did: requests by path, generations, in-flight and tokens.

The counters are read and reset through /_simulator/stats, so tests of a client, proxy or
gateway can prove what reached the node: how many requests, how many at once, and whether a
generation ran to its end or stopped because its client went away.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class Generation:
    """One generation being produced: count each token, then end it once."""

    def __init__(self, stats: Stats, epoch: int) -> None:
        self._stats = stats
        self._epoch = epoch
        self._ended = False

    def token(self) -> None:
        """One more token produced."""
        self._stats.tokens_generated += 1

    def end(self, *, completed: bool) -> None:
        """The generation stopped: after its last token (`completed`) or before it."""
        if self._ended:
            return
        self._ended = True
        self._stats.generation_ended(self._epoch, completed=completed)


class Stats:
    """The counters; one event loop updates them, so no locking is needed."""

    def __init__(self) -> None:
        self._epoch = 0
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counters; requests being served stay in `in_flight` (and so in the peak).

        Generations started before the reset are not counted when they end, so `started`
        never falls below `completed + cancelled`; their later tokens are counted.
        """
        self._epoch += 1
        self.requests: Counter[str] = Counter()
        self.started = 0
        self.completed = 0
        self.cancelled = 0
        self.max_in_flight = self.in_flight
        self.tokens_generated = 0

    def request_started(self, path: str) -> None:
        """A request to `path` arrived (control requests are not counted)."""
        self.requests[path] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def request_finished(self) -> None:
        """A request's answer was handed to the server in full, or abandoned."""
        self.in_flight -= 1

    def begin_generation(self) -> Generation:
        """A generation starts producing tokens."""
        self.started += 1
        return Generation(self, self._epoch)

    def generation_ended(self, epoch: int, *, completed: bool) -> None:
        """Count the end of a generation begun in `epoch` (ignored if a reset came since)."""
        if epoch != self._epoch:
            return
        if completed:
            self.completed += 1
        else:
            self.cancelled += 1

    def as_json(self) -> dict[str, Any]:
        """The counters as /_simulator/stats answers them."""
        return {
            "requests": dict(sorted(self.requests.items())),
            "generations": {
                "started": self.started,
                "completed": self.completed,
                "cancelled": self.cancelled,
            },
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "tokens_generated": self.tokens_generated,
        }
