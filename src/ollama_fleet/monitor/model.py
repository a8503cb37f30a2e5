"""The monitor's shared records: samples of finished checks, loaded models, alerts, snapshots.

Plain frozen records only (no I/O, no heavy imports): the scheduler makes them, the store
keeps them, the alert machine, the metrics and the status page read them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ollama_fleet.checks.model import CheckResult, Status

# Uptime windows, shortest first: (name, seconds). The names are the status page's and the
# JSON API's keys.
UPTIME_WINDOWS: tuple[tuple[str, float], ...] = (
    ("1h", 3600.0),
    ("24h", 86400.0),
    ("7d", 7 * 86400.0),
    ("30d", 30 * 86400.0),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One finished check as the history keeps it: no messages, only bounded facts.

    `at` is when the check finished (Unix seconds). A warn counts as up for uptime; only
    fail is down.
    """

    target: str
    check: str
    at: float
    status: Status
    elapsed_ms: float
    failure_class: str | None = None
    first_token_ms: float | None = None
    tokens_per_s: float | None = None

    @property
    def up(self) -> bool:
        return self.status is not Status.FAIL

    @classmethod
    def from_result(cls, result: CheckResult, *, at: float) -> Sample:
        details: Mapping[str, Any] = result.details
        return cls(
            target=result.target,
            check=result.check,
            at=at,
            status=result.status,
            elapsed_ms=float(result.elapsed_ms),
            failure_class=None if result.failure_class is None else str(result.failure_class),
            first_token_ms=measured(details.get("first_token_ms")),
            tokens_per_s=measured(details.get("tokens_per_second")),
        )


def measured(value: Any) -> float | None:
    """A number a check put in its details, as a float; None for anything else (bools too)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModel:
    """One entry of Ollama's /api/ps: a model held in memory, and how much of it in VRAM."""

    name: str
    size_bytes: int
    vram_bytes: int
    expires_at: float | None = None  # Unix seconds; None when Ollama keeps it forever


class Severity(enum.StrEnum):
    """How bad an alert is: a warn result alerts as warning, a fail as critical."""

    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAlert:
    """An alert that is firing now, as the status page and the JSON API show it."""

    target: str
    check: str
    severity: Severity
    since: float  # Unix seconds: when it started firing
    summary: str  # the check's own one-line summary (never a URL with secrets, never a key)
    reason: str = "consecutive"  # "consecutive" failures or "success_rate" over the window


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckView:
    """One check of one target on the status page."""

    check: str
    status: Status | None  # None: not run yet
    summary: str = ""
    failure_class: str | None = None
    at: float | None = None  # when it last finished
    elapsed_ms: float | None = None
    interval_s: float = 0.0
    # {window name (UPTIME_WINDOWS): ratio 0..1, None where no sample fell in the window}
    uptime: Mapping[str, float | None] = field(default_factory=dict)
    # the last hours as buckets, oldest first: the worst status in each, None for no sample
    bars: tuple[Status | None, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetView:
    """One target on the status page: its checks, its charts and what Ollama holds."""

    name: str
    url: str
    status: Status | None  # the worst of its checks; None before any ran
    checks: tuple[CheckView, ...]
    groups: tuple[str, ...] = ()
    version: str | None = None
    cert_days_left: float | None = None
    models_required: tuple[str, ...] = ()
    models_present: tuple[str, ...] = ()
    models_loaded: tuple[LoadedModel, ...] = ()
    # chart series, oldest first: (Unix seconds, milliseconds)
    response_ms: tuple[tuple[float, float], ...] = ()
    first_token_ms: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusSnapshot:
    """Everything the status page, the JSON API and the badges show, at one moment."""

    generated_at: float
    targets: tuple[TargetView, ...]
    alerts: tuple[OpenAlert, ...] = ()
    refresh_s: int = 30
    monitor_version: str = ""
    # the span the uptime bars cover, in seconds, and how many bars
    bars_span_s: float = 24 * 3600.0
    simulated: tuple[str, ...] = ()  # targets known to be the Ollama API simulator
