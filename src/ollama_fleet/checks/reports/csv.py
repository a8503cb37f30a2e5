"""CSV report: one row per result, for spreadsheets and for the old monitors' CSV habit.

RFC 4180 (the csv module's quoting, CRLF line ends), a header row first. A cell that a
spreadsheet would read as a formula (starting with = + - @, or a tab or CR before one) gets
a leading `'`: a server's message must never run in the reader's spreadsheet. Timings are
ms (see docs/checks.md, Timings); an empty cell is a step that did not happen.
"""

from __future__ import annotations

import csv
import io
import math

from ollama_fleet.checks.model import CheckResult, CheckRun, Status

from ._timing import timings_of

__all__ = ["COLUMNS", "defuse", "render_csv"]

COLUMNS: tuple[str, ...] = (
    "target",
    "url",
    "check",
    "status",
    "failure_class",
    "summary",
    "hint",
    "elapsed_ms",
    "connect_ms",
    "tls_ms",
    "first_byte_ms",
    "first_token_ms",
    "total_ms",
    "started_at",
)

# what makes a spreadsheet evaluate a cell (OWASP's CSV injection list)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse(cell: str) -> str:
    """`cell`, with a leading `'` when a spreadsheet would take it for a formula."""
    return f"'{cell}" if cell.startswith(_FORMULA_START) else cell


def _ms(value: float | None) -> str:
    if value is None or not math.isfinite(value) or value < 0:
        return ""
    return f"{value:.2f}"


def _row(result: CheckResult, started_at: str) -> list[str]:
    ok = result.status is Status.OK
    timings = timings_of(result.details)
    klass = None if ok else result.failure_class
    return [
        result.target,
        result.url,
        result.check,
        result.status.value,
        klass.value if klass is not None else "",
        result.summary,
        "" if ok or result.hint is None else result.hint,
        _ms(result.elapsed_ms),
        _ms(timings.connect_ms if timings else None),
        _ms(timings.tls_ms if timings else None),
        _ms(timings.first_byte_ms if timings else None),
        _ms(timings.first_token_ms if timings else None),
        _ms(timings.total_ms if timings else None),
        started_at,
    ]


def render_csv(run: CheckRun) -> str:
    """The run as CSV: the COLUMNS header, then one row per result in run order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for result in run.results:
        writer.writerow([defuse(cell) for cell in _row(result, run.started_at)])
    return out.getvalue()
