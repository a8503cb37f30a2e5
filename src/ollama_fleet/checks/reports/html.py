"""Self-contained HTML report (one file, inline CSS and script, no external resources), via jinja2.

What it shows: where the run came from (command, inventory, controller), an overview grid,
the host groups, the exposure summary (every port of every host), then one card per host,
the worst host first, each check with a timing bar (connect, TLS, first byte, first token).
A "hide ok" filter (inline script; the page opens with it on at `#hide-ok`) hides the ok
checks and the hosts whose checks are all ok; without script everything shows.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import jinja2
from markupsafe import Markup

from ollama_fleet import __version__
from ollama_fleet.checks.model import (
    CHECK_NAMES,
    CheckResult,
    CheckRun,
    Finding,
    Status,
    overall_status,
)
from ollama_fleet.checks.reports._common import duration

from ._common import (
    Counts,
    by_severity,
    check_rank,
    count,
    count_results,
    html_safe,
    name_key,
    plural,
    to_jsonable,
)
from ._details import Node, details_node
from ._exposure import PortView, exposure_ports
from ._timing import TimingBar, scales, timing_bar, timings_of

__all__ = ["FILTER_FRAGMENT", "render_html"]

TEMPLATE = "report.html.j2"
SCRIPT = "hide_ok.js"
# the URL fragment that opens the report with "hide ok" on
FILTER_FRAGMENT = "hide-ok"


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
    timing: TimingBar | None


@dataclass(frozen=True, slots=True)
class TargetView:
    anchor: str
    name: str
    url: str
    groups: tuple[str, ...]
    status: str
    counts: Counts
    checks: tuple[CheckView, ...]
    by_check: Mapping[str, CheckView]
    ports: tuple[PortView, ...]  # the exposure check's ports, () without one
    exposure_status: str  # the exposure check's status, for the filter; "" without one


@dataclass(frozen=True, slots=True)
class GroupView:
    """One inventory group: how many of its hosts ended fail, warn and ok."""

    name: str
    hosts: int
    fail: int
    warn: int
    ok: int

    @property
    def status(self) -> str:
        return "fail" if self.fail else "warn" if self.warn else "ok"


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


def _check(result: CheckResult, anchor: str, widest: Mapping[str, float]) -> CheckView:
    ok = result.status is Status.OK
    # Worst findings first, stable, so the order inside one status stays the probe's.
    findings = sorted(result.findings, key=lambda f: -f.status.rank)
    details = to_jsonable(result.details)
    timings = timings_of(result.details)
    return CheckView(
        anchor=anchor,
        check=html_safe(result.check),
        status=result.status.value,
        klass=result.failure_class.value if result.failure_class and not ok else None,
        summary=html_safe(result.summary),
        hint=html_safe(result.hint) if result.hint and not ok else None,
        elapsed=duration(result.elapsed_ms),
        findings=tuple(_finding(f) for f in findings),
        details=details_node(details) if details else None,
        timing=(timing_bar(timings, scale_ms=widest.get(result.check, 0.0)) if timings else None),
    )


def _target(
    name: str,
    results: list[CheckResult],
    index: int,
    groups: tuple[str, ...],
    widest: Mapping[str, float],
) -> TargetView:
    ordered = sorted(results, key=lambda r: (-r.status.rank, check_rank(r.check)))
    anchor = f"t{index}"
    checks = tuple(_check(r, f"{anchor}-c{i}", widest) for i, r in enumerate(ordered))
    exposure = next((r for r in results if r.check == "exposure"), None)
    return TargetView(
        anchor=anchor,
        name=html_safe(name),
        url=html_safe(results[0].url) if results else "",
        groups=tuple(html_safe(g) for g in groups),
        status=overall_status(results).value,
        counts=count_results(results, targets=1),
        checks=checks,
        # First result per check name wins, for the overview grid.
        by_check={c.check: c for c in reversed(checks)},
        ports=exposure_ports(exposure) if exposure is not None else (),
        exposure_status=exposure.status.value if exposure is not None else "",
    )


def _targets(run: CheckRun) -> list[TargetView]:
    """Hosts with a fail first, then warn, then ok; by name within one status."""
    widest = scales((r.check, t) for r in run.results if (t := timings_of(r.details)) is not None)
    return [
        _target(name, results, i, tuple(run.target_groups.get(name, ())), widest)
        for i, (name, results) in enumerate(by_severity(run))
    ]


def _groups(targets: list[TargetView]) -> list[GroupView]:
    members: dict[str, list[str]] = {}
    for target in targets:
        for group in target.groups:
            members.setdefault(group, []).append(target.status)
    return [
        GroupView(
            name=name,
            hosts=len(statuses),
            fail=statuses.count("fail"),
            warn=statuses.count("warn"),
            ok=statuses.count("ok"),
        )
        for name, statuses in sorted(members.items(), key=lambda item: name_key(item[0]))
    ]


def _columns(run: CheckRun) -> list[str]:
    present = dict.fromkeys(html_safe(r.check) for r in run.results)
    known = [c for c in CHECK_NAMES if c in present]
    return known + [c for c in present if c not in CHECK_NAMES]


def _context(run: CheckRun) -> list[tuple[str, str]]:
    """The run's origin as (label, value) rows, leaving out what the caller did not know."""
    rows = [
        ("Command", run.context.command),
        ("Inventory", run.context.inventory),
        ("Controller", run.context.controller),
    ]
    return [(label, html_safe(value)) for label, value in rows if value]


@functools.cache
def _script() -> tuple[Markup, str]:
    """The filter script and its CSP hash: only this script may run in the page."""
    text = (
        resources.files("ollama_fleet.checks.reports")
        .joinpath("templates", SCRIPT)
        .read_text(encoding="utf-8")
    )
    if "</" in text:
        raise AssertionError(f"{SCRIPT} must not contain '</': it is inlined in a <script>")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    # Markup: the package's own script, never data from a server.
    return Markup(text), f"sha256-{digest}"


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
    """Render a run as one self-contained HTML5 page; every value from a server is escaped.

    The command shown comes from `run.context` as given: the caller redacts secrets first.
    """
    counts = count(run)
    targets = _targets(run)
    script, script_hash = _script()
    template = _environment().get_template(TEMPLATE)
    return template.render(
        status=run.status.value,
        started_at=html_safe(run.started_at),
        started_display=_when(run.started_at),
        duration=duration(run.duration_ms),
        context=_context(run),
        counts=counts,
        headline=f"{plural(counts.targets, 'target')}, {plural(counts.checks, 'check')}",
        targets=targets,
        groups=_groups(targets),
        exposed=[t for t in targets if t.ports],
        columns=_columns(run),
        tool_version=__version__,
        script=script,
        script_hash=script_hash,
        filter_fragment=FILTER_FRAGMENT,
    )
