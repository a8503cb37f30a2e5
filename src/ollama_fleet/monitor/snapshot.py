"""Build the status page's snapshot from what the monitor knows and what the store kept."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ollama_fleet import __version__
from ollama_fleet.checks.model import CheckResult, Status, Target
from ollama_fleet.checks.runner import plan_checks
from ollama_fleet.monitor.engine import Monitor
from ollama_fleet.monitor.model import (
    UPTIME_WINDOWS,
    CheckView,
    StatusSnapshot,
    TargetView,
    measured,
)
from ollama_fleet.monitor.status_facts import SIMULATOR_SUFFIX

BARS = 48  # half-hour bars over the last 24 h
BARS_SPAN_S = 24 * 3600.0
CHART_SPAN_S = 6 * 3600.0  # the charts show the last six hours
CHART_POINTS = 120  # at most this many points per line (the highest of each slice)


@dataclass(frozen=True, slots=True)
class _History:
    """What the store says of the whole fleet, read in a handful of statements."""

    uptime: Mapping[tuple[str, str], Mapping[str, float | None]]
    bars: Mapping[tuple[str, str], tuple[Status | None, ...]]
    response_ms: Mapping[str, list[tuple[float, float]]]
    first_token_ms: Mapping[str, list[tuple[float, float]]]

    @classmethod
    def read(cls, monitor: Monitor, now: float) -> _History:
        store, since = monitor.store, now - CHART_SPAN_S
        return cls(
            uptime=store.uptime_all(now),
            bars=store.bars_all(now, BARS_SPAN_S, BARS),
            response_ms=store.series_all(
                "connectivity", since, "elapsed_ms", until=now, max_points=CHART_POINTS
            ),
            first_token_ms=store.series_all(
                "chat", since, "first_token_ms", until=now, max_points=CHART_POINTS
            ),
        )


def _detail(result: CheckResult | None, *path: str) -> Any:
    value: Any = result.details if result is not None else None
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _check_view(monitor: Monitor, history: _History, target: Target, check: str) -> CheckView:
    key = (target.name, check)
    result = monitor.latest.get(key)
    return CheckView(
        check=check,
        status=None if result is None else result.status,
        summary="" if result is None else result.summary,
        failure_class=None if result is None else result.failure_class,
        at=None if result is None else monitor.last_at.get(key),
        elapsed_ms=None if result is None else result.elapsed_ms,
        interval_s=monitor.config.intervals[check],
        uptime=history.uptime.get(key) or dict.fromkeys(name for name, _ in UPTIME_WINDOWS),
        bars=history.bars.get(key) or (None,) * BARS,
    )


def _target_view(monitor: Monitor, history: _History, target: Target) -> TargetView:
    checks = tuple(
        _check_view(monitor, history, target, check)
        for check in plan_checks(target, monitor.config.checks)
    )
    ran = [view.status for view in checks if view.status is not None]
    latest = monitor.latest
    connectivity = latest.get((target.name, "connectivity"))
    models = latest.get((target.name, "models"))
    tls = latest.get((target.name, "tls"))
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
        cert_days_left=measured(days),
        models_required=tuple(model.name for model in target.required_models),
        models_present=tuple(str(name) for name in present) if isinstance(present, list) else (),
        models_loaded=monitor.loaded.get(target.name, ()),
        response_ms=tuple(history.response_ms.get(target.name, ())),
        first_token_ms=tuple(history.first_token_ms.get(target.name, ())),
    )


def build_snapshot(monitor: Monitor, *, now: float | None = None) -> StatusSnapshot:
    """The fleet as the status page, its JSON and its badges show it, now."""
    now = monitor.clock() if now is None else now
    history = _History.read(monitor, now)
    targets = tuple(_target_view(monitor, history, target) for target in monitor.config.targets)
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
