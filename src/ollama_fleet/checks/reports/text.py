"""Plain-text report for terminals: a results table, the hints for problems, one summary line."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from typing import Protocol

from ollama_fleet.checks.model import CheckResult, CheckRun, Status
from ollama_fleet.checks.reports._common import terminal_safe as _clean

from ._common import by_severity, count, plural

__all__ = ["render_text", "use_color"]


class _Stream(Protocol):
    def isatty(self) -> bool: ...


def use_color(stream: _Stream, *, environ: Mapping[str, str] | None = None) -> bool:
    """Whether text for `stream` should be painted: a terminal, `NO_COLOR` unset, not dumb.

    `NO_COLOR` set to any non-empty value turns colour off (https://no-color.org), as does
    `TERM=dumb`; a pipe, a file or a closed stream never gets colour. `environ` defaults to
    os.environ.
    """
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


TOTAL_WIDTH = 120
_GAP = "  "
_MIN_SUMMARY = 24
_HEADERS = ("TARGET", "CHECK", "STATUS", "CLASS", "SUMMARY")

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_COLORS = {Status.OK: "\x1b[32m", Status.WARN: "\x1b[33m", Status.FAIL: "\x1b[31m"}


# Bidirectional overrides can make a line read differently from what it contains.
def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _width(text: str) -> int:
    """Columns the text takes in a terminal (wide CJK characters take two)."""
    return sum(_char_width(ch) for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


def _truncate(text: str, width: int) -> str:
    """Cut the text to `width` columns, marking a cut with an ellipsis."""
    if _width(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out).rstrip() + "…"


def _status_label(status: Status) -> str:
    return status.value.upper()


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color else text


def _row_cells(result: CheckResult) -> tuple[str, str, str, str, str]:
    klass = result.failure_class.value if result.failure_class is not None else "-"
    return (
        _clean(result.target),
        _clean(result.check),
        _status_label(result.status),
        klass,
        _clean(result.summary),
    )


def _table(results: tuple[CheckResult, ...], color: bool) -> list[str]:
    rows = [_row_cells(r) for r in results]
    widths = [max([_width(h)] + [_width(row[i]) for row in rows]) for i, h in enumerate(_HEADERS)]
    fixed = sum(widths[:4]) + len(_GAP) * 4
    summary_width = max(TOTAL_WIDTH - fixed, _MIN_SUMMARY)

    header = _GAP.join(_pad(h, w) for h, w in zip(_HEADERS[:4], widths, strict=False))
    lines = [_paint(f"{header}{_GAP}{_HEADERS[4]}", _BOLD, color)]
    for result, (target, check, status, klass, summary) in zip(results, rows, strict=True):
        cells = [
            _pad(target, widths[0]),
            _pad(check, widths[1]),
            # Pad before painting so the escape codes do not upset the alignment.
            _paint(_pad(status, widths[2]), _COLORS[result.status], color),
            _pad(klass, widths[3]),
            _truncate(summary, summary_width),
        ]
        lines.append(_GAP.join(cells).rstrip())
    return lines


def _problems(results: tuple[CheckResult, ...], color: bool) -> list[str]:
    lines: list[str] = []
    for result in results:
        if result.status is Status.OK:
            continue
        label = _paint(_status_label(result.status), _COLORS[result.status], color)
        lines.append(
            f"{label} {_clean(result.target)}/{_clean(result.check)}: {_clean(result.summary)}"
        )
        worst = result.worst
        for finding in result.findings:
            if finding is worst or finding.status is Status.OK:
                continue
            klass = f" [{finding.failure_class.value}]" if finding.failure_class else ""
            lines.append(f"    also {finding.status.value}{klass}: {_clean(finding.message)}")
        if result.hint:
            lines.append(f"    hint: {_clean(result.hint)}")
    return lines


def render_text(run: CheckRun, *, color: bool = False) -> str:
    """Render a run as a terminal table, then the problems with hints, then a summary line.

    Hosts come in order of how bad they are (fail, warn, ok; by name within one status).

    With `color`, statuses are painted with ANSI colours (green ok, yellow warn, red fail);
    without it the output holds no escape sequences at all.
    """
    lines: list[str] = []
    # hosts with a fail first, then warn, then ok; each host's checks in run order
    results = tuple(r for _, host_results in by_severity(run) for r in host_results)
    if results:
        lines.extend(_table(results, color))
    else:
        lines.append("no checks were run")

    problems = _problems(results, color)
    if problems:
        lines.append("")
        lines.extend(problems)

    c = count(run)
    lines.append("")
    lines.append(
        f"{plural(c.targets, 'target')}, {plural(c.checks, 'check')}: "
        f"{c.ok} ok, {c.warn} warn, {c.fail} fail in {run.duration_ms / 1000:.2f} s"
    )
    return "\n".join(lines) + "\n"
