"""Markdown diagnosis to paste into an issue tracker: summary table, findings, facts folded."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ollama_fleet.diagnose.findings import Diagnosis, ordered
from ollama_fleet.diagnose.serialize import diagnosis_data, finding_data

from ._facts import SYSTEM, UNIT_COLUMNS, host_state, label, scalar
from .text import fix_place, summary_line

__all__ = ["render_markdown"]

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# characters Markdown would read as markup
_MARKUP = re.compile(r"([\\`*_\[\]|#~])")


def text(value: str) -> str:
    """Inline text: one line, Markdown punctuation and pipes escaped, HTML as entities."""
    one_line = " ".join(_CONTROL.sub("\ufffd", value).split())
    return _MARKUP.sub(r"\\\1", html.escape(one_line, quote=False))


def code(value: str) -> str:
    """An inline code span that holds any text, pipes escaped so it can sit in a table cell."""
    one_line = " ".join(_CONTROL.sub("\ufffd", value).split())
    longest = max((len(run) for run in re.findall(r"`+", one_line)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") or not one_line else ""
    return f"{ticks}{pad}{one_line}{pad}{ticks}".replace("|", "\\|")


def fence(value: str, lang: str) -> list[str]:
    """A fenced block longer than any backtick run inside it."""
    body = _CONTROL.sub("\ufffd", value.replace("\r\n", "\n").replace("\t", "    "))
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return [f"{ticks}{lang}", *body.split("\n"), ticks]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(columns), _row(["---"] * len(columns)), *(_row(r) for r in rows), ""]


def _summary_table(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [
        [text(f["host"]), f"**{f['severity']}**", code(f["rule"]), text(f["title"])]
        for f in findings
    ]
    return _table(["Host", "Severity", "Rule", "Title"], rows)


def _finding(number: int, finding: Mapping[str, Any]) -> list[str]:
    lines = [
        f"### {number}. {finding['severity'].upper()} · {text(finding['host'])} · "
        f"{text(finding['rule'])}",
        "",
        f"**{text(finding['title'])}**",
        "",
        f"Cause: {text(finding['cause'])}",
        "",
    ]
    if finding["evidence"]:
        lines += ["Evidence:", "", *(f"- {code(e)}" for e in finding["evidence"]), ""]
    fix = finding["fix"]
    if fix is None:
        lines += ["No single command fixes this: see the cause.", ""]
    else:
        where = fix_place(fix, finding["host"])
        as_root = " (as root)" if where != "on the controller" else ""
        lines += [f"Fix, {text(where)}{as_root}:", "", *fence(fix["command"], "sh"), ""]
        if fix["note"]:
            lines += [f"Note: {text(fix['note'])}", ""]
    return lines


def _cell(value: Any) -> str:
    return code(value) if isinstance(value, str) and value else text(scalar(value))


def _records(title: str, records: Sequence[Mapping[str, Any]]) -> list[str]:
    if not records:
        return [f"**{text(title)}**: none", ""]
    columns = list(records[0])
    rows = [[_cell(r.get(c)) for c in columns] for r in records]
    return [f"**{text(title)}**", "", *_table([label(c) for c in columns], rows)]


def _group(title: str, values: Mapping[str, Any]) -> list[str]:
    lines = [f"**{text(title)}**", ""]
    tables: list[str] = []
    for key, value in values.items():
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            tables += _records(f"{title}: {label(key)}", value)
        else:
            lines.append(f"- {text(label(key))}: {text(scalar(value))}")
    return [*lines, "", *tables]


def _units(units: Sequence[Mapping[str, Any]]) -> list[str]:
    if not units:
        return ["**Units**: none read", ""]
    rows = [[_cell(u[c]) for c in UNIT_COLUMNS] for u in units]
    lines = ["**Units**", "", *_table([label(c) for c in UNIT_COLUMNS], rows)]
    for unit in units:
        environment = [f"{k}={v}" for k, v in unit["environment"].items()]
        if environment:
            lines += [f"{code(unit['name'])} environment:", "", *fence("\n".join(environment), "")]
            lines.append("")
        if unit["errors"]:
            lines += [f"{code(unit['name'])} errors:", "", *fence("\n".join(unit["errors"]), "")]
            lines.append("")
    return lines


def _facts(facts: Mapping[str, Any]) -> list[str]:
    lines = _group("System", {k: facts[k] for k in SYSTEM})
    lines += _units(facts["units"])
    for key, value in facts.items():
        if key in SYSTEM or key == "units":
            continue
        if value is None:
            lines += [f"**{text(label(key))}**: not read", ""]
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            lines += _records(label(key), value)
        elif isinstance(value, Mapping) and value:
            lines += _group(label(key), value)
        else:
            lines += [f"**{text(label(key))}**: {text(scalar(value))}", ""]
    return lines


def _checks(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    if not checks:
        return ["**Outside checks**: none", ""]
    rows = [[text(c["check"]), f"**{c['status']}**", text(c["summary"])] for c in checks]
    return ["**Outside checks**", "", *_table(["Check", "Status", "Summary"], rows)]


def _host(host: Mapping[str, Any]) -> list[str]:
    name = host["name"]
    lines = [f"### {text(name)}", "", text(host_state(host)), ""]
    if host["url"]:
        lines += [f"URL: {code(host['url'])}", ""]
    lines += [
        f"<details><summary>{html.escape(name)}: facts and outside checks</summary>",
        "",
        *(_facts(host["facts"]) if host["facts"] is not None else []),
        *_checks(host["checks"]),
        "</details>",
        "",
    ]
    return lines


def render_markdown(diagnosis: Diagnosis) -> str:
    """GitHub-flavoured Markdown; every value escaped, the facts inside <details>."""
    data = diagnosis_data(diagnosis)
    findings = [finding_data(f) for f in ordered(diagnosis.findings)]
    context = data["context"]
    lines = [
        f"# ollama-fleet diagnose: {len(findings)} finding(s)",
        "",
        f"{text(summary_line(data))} · started {text(data['started_at'])} · "
        f"{data['duration_ms'] / 1000:.2f} s",
        "",
    ]
    for key in ("command", "inventory", "controller"):
        if context[key]:
            lines += [f"- {key.capitalize()}: {code(context[key])}"]
    lines.append("")
    if findings:
        lines += _summary_table(findings)
        lines += ["## Findings", ""]
        for number, finding in enumerate(findings, start=1):
            lines += _finding(number, finding)
    lines += ["## Hosts", ""]
    for host in data["hosts"]:
        lines += _host(host)
    return "\n".join(lines).rstrip("\n") + "\n"
