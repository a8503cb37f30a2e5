"""The progress line: a bar on a terminal, a plain line every few seconds in a log."""

from __future__ import annotations

import io

from ollama_fleet.checks.model import FailureClass, fail
from ollama_fleet.loadtest.model import RequestOutcome
from ollama_fleet.loadtest.progress import PLAIN_EVERY_S, ProgressPrinter, bar_line, plain_line

OK = RequestOutcome(index=0, latency_ms=1.0)
FAILED = RequestOutcome(index=1, latency_ms=1.0, failure=fail(FailureClass.OVERLOAD, "503"))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_fills_with_the_requests_done() -> None:
    line = bar_line(done=10, total=20, failed=1, elapsed_s=2.0, color=False)
    assert line == "[" + "#" * 15 + "-" * 15 + "] 10/20  1 failed  5.0 req/s"


def test_colour_only_when_asked() -> None:
    assert "\x1b[" not in bar_line(done=1, total=2, failed=1, elapsed_s=1, color=False)
    assert "\x1b[31m" in bar_line(done=1, total=2, failed=1, elapsed_s=1, color=True)


def test_a_terminal_gets_the_bar_redrawn_and_cleared() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, total=2, terminal=True, color=False, clock=Clock())
    printer(OK)
    printer(FAILED)
    printer.finish()

    text = out.getvalue()
    assert text.count("\r") == 4  # two redraws, then the clearing
    assert "1/2  0 failed" in text and "2/2  1 failed" in text
    assert text.endswith("\r" + " " * 79 + "\r")
    assert "\n" not in text


def test_a_log_gets_a_plain_line_every_few_seconds_only() -> None:
    out, clock = io.StringIO(), Clock()
    printer = ProgressPrinter(out, total=3, terminal=False, color=True, clock=clock)
    printer(OK)  # at once: nothing yet
    clock.now += PLAIN_EVERY_S
    printer(FAILED)
    clock.now += 1
    printer(OK)  # one second later: still nothing
    printer.finish()

    assert out.getvalue() == plain_line(done=2, total=3, failed=1, elapsed_s=PLAIN_EVERY_S) + "\n"
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
