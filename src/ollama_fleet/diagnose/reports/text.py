"""Plain-text diagnosis for the terminal: each finding with its cause and fix, a summary line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ollama_fleet.checks.reports._common import terminal_safe
from ollama_fleet.diagnose.findings import Diagnosis, Where, ordered
from ollama_fleet.diagnose.serialize import diagnosis_data, finding_data

__all__ = ["fix_place", "render_text", "summary_line"]


# Bidirectional overrides can make a line read differently from what it contains.
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
    host = terminal_safe(finding["host"])
    lines = [
        f"{finding['severity'].upper()} {host} {terminal_safe(finding['rule'])}: "
        f"{terminal_safe(finding['title'])}",
        f"  {terminal_safe(finding['cause'])}",
    ]
    fix = finding["fix"]
    if fix is not None:
        # a multi-line command keeps its lines, indented under the first
        first, *rest = [terminal_safe(line) for line in fix["command"].splitlines() or [""]]
        lines.append(f"  fix ({fix_place(fix, host)}): {first}")
        lines.extend(f"    {line}" for line in rest)
        if fix["note"]:
            lines.append(f"  note: {terminal_safe(fix['note'])}")
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
