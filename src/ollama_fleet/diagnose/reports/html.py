"""Self-contained HTML diagnosis (one file, inline CSS, no script, nothing loaded), via jinja2.

Findings first, worst first, each with its cause, evidence and fix; then per host a folded
<details> with the inside facts (from serialize) and the outside checks.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

import jinja2
from markupsafe import Markup

from ollama_fleet import __version__
from ollama_fleet.checks.reports._common import duration
from ollama_fleet.diagnose.findings import Diagnosis, ordered
from ollama_fleet.diagnose.serialize import diagnosis_data, finding_data

from ._facts import SYSTEM, UNIT_COLUMNS, host_state, label, scalar
from .text import fix_place, summary_line

__all__ = ["render_html"]

TEMPLATE = "report.html.j2"
# C0/C1 controls except tab/newline/CR, which HTML treats as whitespace
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _when(started_at: str) -> str:
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return started_at
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _safe(value: object) -> object:
    """Control characters (terminal escapes) out of every string jinja prints.

    A macro's output is Markup already escaped: it stays Markup, or it would be escaped twice.
    """
    if not isinstance(value, str):
        return value
    cleaned = _CONTROL.sub("\ufffd", value)
    return Markup(cleaned) if isinstance(value, Markup) else cleaned


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("ollama_fleet.diagnose.reports", "templates"),
        # Always escape: the template's name ends in .j2, which select_autoescape misses.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_safe,
    )
    environment.filters["label"] = label
    environment.filters["scalar"] = scalar
    environment.globals["fix_place"] = fix_place
    environment.globals["host_state"] = host_state
    return environment


def render_html(diagnosis: Diagnosis) -> str:
    """One HTML5 page; every value is escaped, secret-looking ones masked by serialize."""
    data = diagnosis_data(diagnosis)
    findings = [finding_data(f) for f in ordered(diagnosis.findings)]
    worst = diagnosis.worst
    context = [(name.capitalize(), value) for name, value in data["context"].items() if value]
    template = _environment().get_template(TEMPLATE)
    return template.render(
        title=f"ollama-fleet diagnose: {len(findings)} finding(s)",
        summary_line=summary_line(data),
        worst=worst.value if worst is not None else "ok",
        summary=data["summary"],
        started_at=data["started_at"],
        started_display=_when(data["started_at"]),
        duration=duration(diagnosis.duration_ms),
        context=context,
        findings=findings,
        hosts=data["hosts"],
        system=SYSTEM,
        unit_columns=UNIT_COLUMNS,
        tool_version=__version__,
    )
