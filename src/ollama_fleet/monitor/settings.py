"""The monitor's configuration as typed records, with every default in one place.

`ollama_fleet.monitor.config` reads monitor.yml (or an inventory) into these; everything
else receives them explicitly. Durations are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ollama_fleet.checks.model import CHECK_NAMES, Target
from ollama_fleet.checks.settings import ProbeSettings

DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_INTERVALS: Mapping[str, float] = MappingProxyType(
    {
        "connectivity": 30.0,
        "tls": 3600.0,
        "models": 60.0,
        "chat": 300.0,
        "auth": 300.0,
        "exposure": 300.0,
    }
)
DEFAULT_JITTER = 0.1  # each run starts up to 10 % of its interval late, spreading the load
DEFAULT_CONCURRENCY = 16
DEFAULT_SHUTDOWN_GRACE_S = 10.0
DEFAULT_RETENTION_S = 2 * 86400.0  # raw samples; hourly roll-ups keep uptime for 30 d+
DEFAULT_ROLLUP_RETENTION_S = 400 * 86400.0
DEFAULT_REFRESH_S = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertPolicy:
    """When a (target, check) alerts and how often it says so.

    Firing: `failure_threshold` results in a row that are not ok, or, with
    `min_success_rate`, fewer than that share of ok results among the last `window`.
    Resolved: `success_threshold` ok results in a row. A warn result alerts as a
    warning (when `warn` is on), a fail as critical.
    """

    failure_threshold: int = 3
    success_threshold: int = 2
    window: int = 20
    min_success_rate: float | None = None
    warn: bool = True
    send_on_resolved: bool = True
    reminder_s: float | None = 4 * 3600.0
    retry_s: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Receiver:
    """Where alerts go. `url` (and `headers`) are secrets: never logged or shown."""

    name: str
    kind: str  # "webhook" | "slack" | "alertmanager"
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 10.0


RECEIVER_KINDS: tuple[str, ...] = ("webhook", "slack", "alertmanager")


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorConfig:
    """One monitor process: what to watch, how often, where its state lives, whom to tell."""

    source: Path  # the file it was read from (monitor.yml or an inventory), for messages
    targets: tuple[Target, ...]
    listen_host: str = "127.0.0.1"
    listen_port: int = 9464
    state_dir: Path = Path("monitor-state")
    checks: tuple[str, ...] = CHECK_NAMES  # which checks run (each where it applies)
    intervals: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_INTERVALS))
    jitter: float = DEFAULT_JITTER
    concurrency: int = DEFAULT_CONCURRENCY
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    retention_s: float = DEFAULT_RETENTION_S
    rollup_retention_s: float = DEFAULT_ROLLUP_RETENTION_S
    alerts: AlertPolicy = field(default_factory=AlertPolicy)
    receivers: tuple[Receiver, ...] = ()
    gpu: str = "auto"  # "auto": NVML where it loads; "off"
    title: str = "Ollama fleet status"
    refresh_s: int = DEFAULT_REFRESH_S
