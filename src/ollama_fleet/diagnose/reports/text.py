"""Plain-text diagnosis for the terminal: each finding with its cause and fix, a summary line."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from ollama_fleet.diagnose.findings import Diagnosis, Where, ordered
from ollama_fleet.diagnose.serialize import diagnosis_data, finding_data

__all__ = ["fix_place", "render_text", "summary_line"]

# Bidirectional overrides can make a line read differently from what it contains.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _clean(text: str) -> str:
    """One line of terminal-safe text: line breaks folded, escapes and controls made visible."""
    out: list[str] = []
    for ch in text:
        if ch in "\t\n\r\x0b\x0c":
            out.append(" ")
        elif unicodedata.category(ch) == "Cc":
            out.append(f"\\x{ord(ch):02x}")
        elif ch in _BIDI:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def fix_place(fix: Mapping[str, Any], host: str) -> str:
    """Where a fix runs, in words: "on lab" (as root there) or "on the controller"."""
    return f"on {host}" if fix["where"] == Where.HOST.value else "on the controller"


def summary_line(data: Mapping[str, Any]) -> str:
    """ "N finding(s): a critical, b warning, c info on H host(s)", from diagnosis_data."""
    summary = data["summary"]
    hosts = f"{summary['hosts']} host(s)"
    if not summary["findings"]:
        return f"no findings on {hosts}"
    return (
        f"{summary['findings']} finding(s): {summary['critical']} critical, "
        f"{summary['warning']} warning, {summary['info']} info on {hosts}"
    )


def _finding_lines(finding: Mapping[str, Any]) -> list[str]:
    host = _clean(finding["host"])
    lines = [
        f"{finding['severity'].upper()} {host} {_clean(finding['rule'])}: "
        f"{_clean(finding['title'])}",
        f"  {_clean(finding['cause'])}",
    ]
    fix = finding["fix"]
    if fix is not None:
        # a multi-line command keeps its lines, indented under the first
        first, *rest = [_clean(line) for line in fix["command"].splitlines() or [""]]
        lines.append(f"  fix ({fix_place(fix, host)}): {first}")
        lines.extend(f"    {line}" for line in rest)
        if fix["note"]:
            lines.append(f"  note: {_clean(fix['note'])}")
    return lines


def render_text(diagnosis: Diagnosis) -> str:
    """The findings worst first, then one summary line; no colour, no escape sequences."""
    lines: list[str] = []
    for finding in ordered(diagnosis.findings):
        lines.extend(_finding_lines(finding_data(finding)))
    if lines:
        lines.append("")
    lines.append(summary_line(diagnosis_data(diagnosis)))
    return "\n".join(lines) + "\n"
