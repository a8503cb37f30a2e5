"""Build the status page's snapshot from what the monitor knows and what the store kept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ollama_fleet import __version__
from ollama_fleet.checks.model import CheckResult, Target
from ollama_fleet.checks.runner import plan_checks
from ollama_fleet.monitor.engine import Monitor
from ollama_fleet.monitor.model import CheckView, StatusSnapshot, TargetView
from ollama_fleet.monitor.status_facts import SIMULATOR_SUFFIX

BARS = 48  # half-hour bars over the last 24 h
BARS_SPAN_S = 24 * 3600.0
CHART_SPAN_S = 6 * 3600.0  # the charts show the last six hours
CHART_POINTS = 120  # at most this many points per line: a page, not a data dump


def _thin(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Every n-th point, so a chart stays light whatever the interval; the last one kept."""
    if len(points) <= CHART_POINTS:
        return tuple(points)
    step = len(points) / CHART_POINTS
    kept = [points[int(i * step)] for i in range(CHART_POINTS - 1)]
    return (*kept, points[-1])


def _detail(result: CheckResult | None, *path: str) -> Any:
    value: Any = result.details if result is not None else None
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _check_view(monitor: Monitor, target: Target, check: str, now: float) -> CheckView:
    result = monitor.latest.get((target.name, check))
    store = monitor.store
    return CheckView(
        check=check,
        status=None if result is None else result.status,
        summary="" if result is None else result.summary,
        failure_class=None if result is None else result.failure_class,
        at=None if result is None else monitor.last_at.get((target.name, check)),
        elapsed_ms=None if result is None else result.elapsed_ms,
        interval_s=monitor.config.intervals[check],
        uptime=store.uptime(target.name, check, now),
        bars=store.bars(target.name, check, now, BARS_SPAN_S, BARS),
    )


def _target_view(monitor: Monitor, target: Target, now: float) -> TargetView:
    checks = tuple(
        _check_view(monitor, target, check, now)
        for check in plan_checks(target, monitor.config.checks)
    )
    ran = [view.status for view in checks if view.status is not None]
    latest = monitor.latest
    connectivity = latest.get((target.name, "connectivity"))
    models = latest.get((target.name, "models"))
    tls = latest.get((target.name, "tls"))
    since = now - CHART_SPAN_S
    response = [
        (sample.at, sample.elapsed_ms)
        for sample in monitor.store.samples(target.name, "connectivity", since)
    ]
    first_token = [
        (sample.at, sample.first_token_ms)
        for sample in monitor.store.samples(target.name, "chat", since)
        if sample.first_token_ms is not None
    ]
    version = _detail(connectivity, "version")
    days = _detail(tls, "certificate", "days_left")
    present = _detail(models, "present")
    return TargetView(
        name=target.name,
        url=target.url,
        status=max(ran, key=lambda status: status.rank) if ran else None,
        checks=checks,
        groups=target.groups,
        version=version if isinstance(version, str) else None,
        cert_days_left=float(days) if isinstance(days, int | float) else None,
        models_required=tuple(model.name for model in target.required_models),
        models_present=tuple(str(name) for name in present) if isinstance(present, list) else (),
        models_loaded=monitor.loaded.get(target.name, ()),
        response_ms=_thin(response),
        first_token_ms=_thin(first_token),
    )


def build_snapshot(monitor: Monitor, *, now: float | None = None) -> StatusSnapshot:
    """The fleet as the status page, its JSON and its badges show it, now."""
    now = monitor.clock() if now is None else now
    targets = tuple(_target_view(monitor, target, now) for target in monitor.config.targets)
    return StatusSnapshot(
        generated_at=now,
        targets=targets,
        alerts=monitor.open_alerts(),
        refresh_s=monitor.config.refresh_s,
        monitor_version=__version__,
        bars_span_s=BARS_SPAN_S,
        simulated=tuple(
            view.name for view in targets if (view.version or "").endswith(SIMULATOR_SUFFIX)
        ),
    )
