"""The load test's progress line on stderr: a bar on a terminal, a plain line every few seconds.

The formatting is pure; `ProgressPrinter` is the thin edge that writes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from ollama_fleet.loadtest.model import RequestOutcome

__all__ = ["PLAIN_EVERY_S", "ProgressPrinter", "bar_line", "plain_line"]

PLAIN_EVERY_S = 5.0
BAR_WIDTH = 30
LINE_WIDTH = 79
_GREEN, _RED, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[0m"


def plain_line(*, done: int, total: int, failed: int, elapsed_s: float) -> str:
    """`loadtest: 120/200 done, 2 failed, 12.0 s` (for a log, not a terminal)."""
    return f"loadtest: {done}/{total} done, {failed} failed, {elapsed_s:.1f} s"


def bar_line(*, done: int, total: int, failed: int, elapsed_s: float, color: bool) -> str:
    """`[#########-----] 120/200  2 failed  9.8 req/s`; the failures red when `color`."""
    filled = BAR_WIDTH * done // total if total else BAR_WIDTH
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    rate = f"{done / elapsed_s:.1f} req/s" if elapsed_s > 0 else ""
    failures = f"{failed} failed"
    if color:
        bar = f"{_RED if failed else _GREEN}{bar}{_RESET}"
        failures = f"{_RED}{failures}{_RESET}" if failed else failures
    return f"[{bar}] {done}/{total}  {failures}  {rate}"


class ProgressPrinter:
    """Called after each request: redraws the bar (a terminal) or, every few seconds, a line."""

    def __init__(
        self,
        out: TextIO,
        *,
        total: int,
        terminal: bool,
        color: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.total = total
        self.terminal = terminal
        self.color = color
        self.clock = clock
        self.start = clock()
        self.last_plain = self.start
        self.done = 0
        self.failed = 0

    def __call__(self, outcome: RequestOutcome) -> None:
        self.done += 1
        self.failed += 0 if outcome.ok else 1
        now = self.clock()
        elapsed = now - self.start
        counts = {"done": self.done, "total": self.total, "failed": self.failed}
        if self.terminal:
            line = bar_line(**counts, elapsed_s=elapsed, color=self.color)
            self.out.write("\r" + line + " " * max(0, LINE_WIDTH - len(line)))
            self.out.flush()
        elif now - self.last_plain >= PLAIN_EVERY_S:
            self.last_plain = now
            self.out.write(plain_line(**counts, elapsed_s=elapsed) + "\n")
            self.out.flush()

    def finish(self) -> None:
        """Clear the bar, so the report starts on a clean line."""
        if self.terminal and self.done:
            self.out.write("\r" + " " * LINE_WIDTH + "\r")
            self.out.flush()
