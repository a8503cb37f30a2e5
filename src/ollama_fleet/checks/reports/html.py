"""Self-contained HTML report (one file, inline CSS, no external resources), via jinja2."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2

from ollama_fleet import __version__
from ollama_fleet.checks.model import (
    CHECK_NAMES,
    CheckResult,
    CheckRun,
    Finding,
    Status,
    overall_status,
)

from ._common import (
    Counts,
    by_target,
    check_rank,
    count,
    count_results,
    html_safe,
    plural,
    to_jsonable,
)

__all__ = ["render_html"]

TEMPLATE = "report.html.j2"

# --- details as a small tree the template renders as key/value tables -----------------------


@dataclass(frozen=True, slots=True)
class Bar:
    """One timing of a timings block: label, formatted value, bar length in percent."""

    label: str
    text: str
    percent: float


@dataclass(frozen=True, slots=True)
class Node:
    """A details value ready for display.

    kind is one of: text (a scalar), map (key/value table), chips (a list of short scalars),
    list (a list of anything), table (a list of flat records), bars (a timings block).
    """

    kind: str
    text: str = ""
    muted: bool = False
    items: tuple[tuple[str, Node], ...] = ()
    elements: tuple[Node, ...] = ()
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Node, ...], ...] = ()
    bars: tuple[Bar, ...] = ()


_NONE = Node(kind="text", text="—", muted=True)


def _bytes(n: float) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _number(value: int | float, key: str) -> str:
    if key.endswith("_ms"):
        return f"{value:,.1f} ms" if isinstance(value, float) else f"{value:,} ms"
    if key.endswith("_bytes") or key in ("size", "bytes"):
        return f"{_bytes(value)} ({value:,} B)" if abs(value) >= 1024 else f"{value:,} B"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def _scalar(value: Any, key: str) -> Node:
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return Node(kind="text", text="yes" if value else "no")
    if isinstance(value, int | float):
        return Node(kind="text", text=_number(value, key))
    return Node(kind="text", text=html_safe(str(value)))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _timings(value: Mapping[str, Any]) -> Node | None:
    """A mapping of *_ms numbers (connect_ms, tls_ms, ...) as a bar chart, else None."""
    if len(value) < 2 or not all(
        k.endswith("_ms") and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        return None
    longest = max((float(v) for v in value.values()), default=0.0)
    bars = tuple(
        Bar(
            label=html_safe(k.removesuffix("_ms").replace("_", " ")),
            text=_number(v, k),
            percent=round(100 * max(float(v), 0.0) / longest, 1) if longest > 0 else 0.0,
        )
        for k, v in value.items()
    )
    return Node(kind="bars", bars=bars)


def _node(value: Any, key: str = "") -> Node:
    if _is_scalar(value):
        return _scalar(value, key)
    if isinstance(value, Mapping):
        if not value:
            return _NONE
        return _timings(value) or Node(
            kind="map",
            items=tuple((html_safe(k), _node(v, k)) for k, v in value.items()),
        )
    if isinstance(value, Sequence):
        if not value:
            return Node(kind="text", text="none", muted=True)
        if all(_is_scalar(v) for v in value):
            return Node(kind="chips", elements=tuple(_scalar(v, key) for v in value))
        if all(isinstance(v, Mapping) and all(_is_scalar(x) for x in v.values()) for v in value):
            columns = tuple(dict.fromkeys(k for v in value for k in v))
            rows = tuple(tuple(_scalar(v.get(c), c) for c in columns) for v in value)
            return Node(kind="table", columns=tuple(html_safe(c) for c in columns), rows=rows)
        return Node(kind="list", elements=tuple(_node(v, key) for v in value))
    return Node(kind="text", text=html_safe(str(value)))


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FindingView:
    status: str
    klass: str | None
    message: str
    hint: str | None


@dataclass(frozen=True, slots=True)
class CheckView:
    anchor: str
    check: str
    status: str
    klass: str | None
    summary: str
    hint: str | None
    elapsed: str
    findings: tuple[FindingView, ...]
    details: Node | None


@dataclass(frozen=True, slots=True)
class TargetView:
    anchor: str
    name: str
    url: str
    status: str
    counts: Counts
    checks: tuple[CheckView, ...]
    by_check: Mapping[str, CheckView]


def _duration(ms: float) -> str:
    if not math.isfinite(ms) or ms < 0:
        return "—"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _when(started_at: str) -> str:
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return html_safe(started_at)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _finding(finding: Finding) -> FindingView:
    ok = finding.status is Status.OK
    return FindingView(
        status=finding.status.value,
        klass=finding.failure_class.value if finding.failure_class and not ok else None,
        message=html_safe(finding.message),
        hint=html_safe(finding.hint) if finding.hint and not ok else None,
    )


def _check(result: CheckResult, anchor: str) -> CheckView:
    ok = result.status is Status.OK
    # Worst findings first, stable, so the order inside one status stays the probe's.
    findings = sorted(result.findings, key=lambda f: -f.status.rank)
    details = to_jsonable(result.details)
    return CheckView(
        anchor=anchor,
        check=html_safe(result.check),
        status=result.status.value,
        klass=result.failure_class.value if result.failure_class and not ok else None,
        summary=html_safe(result.summary),
        hint=html_safe(result.hint) if result.hint and not ok else None,
        elapsed=_duration(result.elapsed_ms),
        findings=tuple(_finding(f) for f in findings),
        details=_node(details) if details else None,
    )


def _target(name: str, results: list[CheckResult], index: int) -> TargetView:
    ordered = sorted(results, key=lambda r: (-r.status.rank, check_rank(r.check)))
    anchor = f"t{index}"
    checks = tuple(_check(r, f"{anchor}-c{i}") for i, r in enumerate(ordered))
    return TargetView(
        anchor=anchor,
        name=html_safe(name),
        url=html_safe(results[0].url) if results else "",
        status=overall_status(results).value,
        counts=count_results(results, targets=1),
        checks=checks,
        # First result per check name wins, for the overview grid.
        by_check={c.check: c for c in reversed(checks)},
    )


def _targets(run: CheckRun) -> list[TargetView]:
    views = [_target(name, results, i) for i, (name, results) in enumerate(by_target(run).items())]
    # Targets with failures first, then warnings; the run's order within a status.
    return sorted(views, key=lambda t: -Status(t.status).rank)


def _columns(run: CheckRun) -> list[str]:
    present = dict.fromkeys(html_safe(r.check) for r in run.results)
    known = [c for c in CHECK_NAMES if c in present]
    return known + [c for c in present if c not in CHECK_NAMES]


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ollama_fleet.checks.reports", "templates"),
        # Always escape: the template's name ends in .j2, which select_autoescape misses.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(run: CheckRun) -> str:
    """Render a run as one self-contained HTML5 page; every value from a server is escaped."""
    counts = count(run)
    template = _environment().get_template(TEMPLATE)
    return template.render(
        status=run.status.value,
        started_at=html_safe(run.started_at),
        started_display=_when(run.started_at),
        duration=_duration(run.duration_ms),
        counts=counts,
        headline=f"{plural(counts.targets, 'target')}, {plural(counts.checks, 'check')}",
        targets=_targets(run),
        columns=_columns(run),
        tool_version=__version__,
    )
