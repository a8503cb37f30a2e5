"""The monitor's Prometheus metrics: finished checks, loaded models, alerts and its own health.

Every series is rendered at scrape time from plain state (one custom collector), so a target
dropped by a config reload loses all its series at once (`forget`). Each target series shows
its check's latest result: where that result did not measure a fact (a TLS handshake that
failed has no certificate), the series is absent rather than stale. Labels are bounded: the
target's name, check names, enum values, and model names capped at MAX_MODELS_PER_TARGET.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ollama_fleet import __version__
from ollama_fleet.checks.model import CheckResult, Status, Target
from ollama_fleet.monitor._families import Families, Histogram
from ollama_fleet.monitor.model import LoadedModel, Severity, measured
from ollama_fleet.values import canonical_model_name

# LLM calls take seconds to minutes (a cold model load, a long answer): buckets reach 5 min.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
TOKENS_PER_SECOND_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 250.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# model names come from the hosts: required ones first, then what a host lists, up to this many
MAX_MODELS_PER_TARGET = 100
MAX_VERSION_CHARS = 64  # a version string is the host's to choose; keep the label short
STATUSES = (Status.OK, Status.WARN, Status.FAIL)
SEVERITIES = (Severity.WARNING, Severity.CRITICAL)


@dataclass(slots=True)
class _CheckState:
    """One (target, check): its latest result and counts since the monitor started."""

    status: Status
    finished_at: float
    duration: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    runs: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    failures: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _TargetState:
    """What the latest results of one target said, as numbers and bounded names."""

    checks: dict[str, _CheckState] = field(default_factory=dict)
    first_token: Histogram = field(default_factory=lambda: Histogram(FIRST_TOKEN_BUCKETS))
    tokens: Histogram = field(default_factory=lambda: Histogram(TOKENS_PER_SECOND_BUCKETS))
    tokens_per_second: float | None = None
    cert_not_after: float | None = None
    required: tuple[str, ...] = ()
    present: tuple[str, ...] | None = None  # None: the latest models check listed nothing
    loaded: tuple[LoadedModel, ...] = ()
    version: str | None = None
    closed_ports: dict[str, bool] = field(default_factory=dict)  # port -> open (exposed)
    alerts: dict[str, Severity | None] = field(default_factory=dict)


class MonitorMetrics(Collector):
    """The monitor's metrics in a registry of their own (never prometheus_client's global one).

    Thread-safe: the scheduler records on its loop while a scrape may render in a worker.
    """

    def __init__(
        self,
        *,
        version: str = __version__,
        collectors: Iterable[Collector] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._version = version
        self._clock = clock
        self._lock = threading.Lock()
        self._targets: dict[str, _TargetState] = {}
        self._lag = Histogram(LAG_BUCKETS)
        self._queued = 0
        self._in_flight = 0
        self._deliveries: dict[tuple[str, str], int] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)
        for collector in collectors:
            self.registry.register(collector)

    # -- recording ------------------------------------------------------------------------------

    def observe(self, result: CheckResult, target: Target) -> None:
        """Record one finished check of `target`."""
        details: Mapping[str, Any] = result.details
        with self._lock:
            state = self._targets.setdefault(target.name, _TargetState())
            check = state.checks.get(result.check)
            if check is None:
                check = state.checks[result.check] = _CheckState(
                    status=result.status, finished_at=0.0
                )
            check.status, check.finished_at = result.status, self._clock()
            check.duration.observe(result.elapsed_ms / 1000)
            check.runs[result.status] += 1
            if result.status is not Status.OK and result.failure_class is not None:
                name = str(result.failure_class)
                check.failures[name] = check.failures.get(name, 0) + 1
            observer = _OBSERVERS.get(result.check)
            if observer is not None:
                observer(state, details, target)

    def set_loaded(self, target: str, models: Sequence[LoadedModel]) -> None:
        """What `target`'s /api/ps holds now (replaces what it held before)."""
        with self._lock:
            state = self._targets.setdefault(target, _TargetState())
            # one series per name: a duplicate sample would make Prometheus drop the scrape
            by_name = {model.name: model for model in models}
            state.loaded = tuple(by_name.values())[:MAX_MODELS_PER_TARGET]

    def set_alert(self, target: str, check: str, severity: Severity | None) -> None:
        """The alert of (target, check) fires at `severity` now, or not at all (None)."""
        with self._lock:
            self._targets.setdefault(target, _TargetState()).alerts[check] = severity

    def observe_lag(self, seconds: float) -> None:
        """How late a scheduled check started, in seconds."""
        with self._lock:
            self._lag.observe(max(0.0, seconds))

    def set_queue(self, *, queued: int, in_flight: int) -> None:
        with self._lock:
            self._queued, self._in_flight = queued, in_flight

    def count_delivery(self, receiver: str, ok: bool, *, result: str | None = None) -> None:
        """One attempt to send an alert to the receiver named `receiver` (its name, never URL):
        ok, error, or `result` ("dropped": given up, see docs/monitor.md)."""
        key = (receiver, result or ("ok" if ok else "error"))
        with self._lock:
            self._deliveries[key] = self._deliveries.get(key, 0) + 1

    def forget(
        self, targets_kept: Iterable[str], *, checks_kept: Iterable[tuple[str, str]] | None = None
    ) -> None:
        """Drop every series of the targets not in `targets_kept` (after a config reload),
        and, with `checks_kept`, of the (target, check) pairs no longer scheduled."""
        kept = set(targets_kept)
        pairs = None if checks_kept is None else set(checks_kept)
        with self._lock:
            for name in [name for name in self._targets if name not in kept]:
                del self._targets[name]
            if pairs is None:
                return
            for name, state in self._targets.items():
                for check in [check for check in state.checks if (name, check) not in pairs]:
                    del state.checks[check]
                for check in [check for check in state.alerts if (name, check) not in pairs]:
                    del state.alerts[check]

    # -- exposition -----------------------------------------------------------------------------

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type): OpenMetrics when `accept` asks for it, else the text format."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        with self._lock:
            families = Families()
            families.info("monitor", "The monitor's version.", []).add_metric(
                [], {"version": self._version}
            )
            for name, state in sorted(self._targets.items()):
                _target_series(families, name, state, now=now)
            self._own_series(families)
            return iter(families.done())

    def _own_series(self, families: Families) -> None:
        families.histogram(
            "monitor_scheduler_lag_seconds", "How late scheduled checks started.", []
        ).add(self._lag, [])
        families.gauge(
            "monitor_checks_queued", "Checks due and waiting for a slot.", []
        ).add_metric([], self._queued)
        families.gauge("monitor_checks_in_flight", "Checks running now.", []).add_metric(
            [], self._in_flight
        )
        deliveries = families.counter(
            "monitor_alert_deliveries",
            "Alert sends by receiver and result.",
            ["receiver", "result"],
        )
        for (receiver, result), count in sorted(self._deliveries.items()):
            deliveries.add_metric([receiver, result], count)


# -- what each check adds to its target's state --------------------------------------------------


def _observe_chat(state: _TargetState, details: Mapping[str, Any], target: Target) -> None:
    first_token_ms = measured(details.get("first_token_ms"))
    if first_token_ms is not None:
        state.first_token.observe(first_token_ms / 1000)
    state.tokens_per_second = measured(details.get("tokens_per_second"))
    if state.tokens_per_second is not None:
        state.tokens.observe(state.tokens_per_second)


def _observe_tls(state: _TargetState, details: Mapping[str, Any], target: Target) -> None:
    certificate = details.get("certificate")
    not_after = certificate.get("not_after") if isinstance(certificate, Mapping) else None
    try:
        state.cert_not_after = dt.datetime.fromisoformat(str(not_after)).timestamp()
    except ValueError:
        state.cert_not_after = None


def _observe_models(state: _TargetState, details: Mapping[str, Any], target: Target) -> None:
    state.required = tuple(
        dict.fromkeys(canonical_model_name(m.name) for m in target.required_models)
    )
    present = details.get("present")
    state.present = (
        tuple(dict.fromkeys(str(name) for name in present))
        if isinstance(present, list | tuple)
        else None
    )


def _observe_connectivity(state: _TargetState, details: Mapping[str, Any], target: Target) -> None:
    version = details.get("version")
    state.version = str(version)[:MAX_VERSION_CHARS] if isinstance(version, str) else None


def _observe_exposure(state: _TargetState, details: Mapping[str, Any], target: Target) -> None:
    ports = details.get("ports")
    ports = ports if isinstance(ports, Mapping) else {}
    # "dns" says nothing about the port; an absent entry was not probed
    state.closed_ports = {
        str(port): ports[str(port)] == "open"
        for port in target.closed_ports
        if ports.get(str(port)) not in (None, "dns")
    }


_OBSERVERS: Mapping[str, Callable[[_TargetState, Mapping[str, Any], Target], None]] = {
    "chat": _observe_chat,
    "tls": _observe_tls,
    "models": _observe_models,
    "connectivity": _observe_connectivity,
    "exposure": _observe_exposure,
}


# -- rendering ----------------------------------------------------------------------------------


def _target_series(families: Families, name: str, state: _TargetState, *, now: float) -> None:
    tc = ["target", "check"]
    for check, cs in sorted(state.checks.items()):
        labels = [name, check]
        families.gauge(
            "check_success", "1 when the latest result is ok or warn, 0 when it failed.", tc
        ).add_metric(labels, int(cs.status is not Status.FAIL))
        status = families.gauge(
            "check_status", "The latest result, one-hot over ok, warn, fail.", [*tc, "status"]
        )
        runs = families.counter("check_runs", "Finished checks by status.", [*tc, "status"])
        for each in STATUSES:
            status.add_metric([*labels, each.value], int(cs.status is each))
            runs.add_metric([*labels, each.value], cs.runs[each])
        families.histogram("check_duration_seconds", "How long checks took.", tc).add(
            cs.duration, labels
        )
        families.gauge(
            "check_last_run_timestamp_seconds", "When the latest check finished (Unix time).", tc
        ).add_metric(labels, cs.finished_at)
        failures = families.counter(
            "check_failures", "Warn and fail results by failure class.", [*tc, "failure_class"]
        )
        for failure_class, count in sorted(cs.failures.items()):
            failures.add_metric([*labels, failure_class], count)
    _chat_series(families, name, state)
    _model_series(families, name, state)
    t = [name]
    if state.cert_not_after is not None:
        families.gauge(
            "tls_cert_expiry_timestamp_seconds",
            "When the certificate expires (Unix time).",
            ["target"],
        ).add_metric(t, state.cert_not_after)
        families.gauge(
            # seconds, not days: Prometheus's base unit (promtool's lint insists)
            "tls_cert_seconds_left",
            "Seconds until the certificate expires, at scrape time (negative: expired).",
            ["target"],
        ).add_metric(t, round(state.cert_not_after - now, 3))
    if state.version is not None:
        families.info(
            "ollama_version", "The Ollama version the target reports.", ["target"]
        ).add_metric([name], {"version": state.version})
    exposed = families.gauge(
        "exposure_port_open",
        "1 when a port that must be closed accepts connections.",
        ["target", "port"],
    )
    for port, is_open in sorted(state.closed_ports.items(), key=lambda item: int(item[0])):
        exposed.add_metric([name, port], int(is_open))
    firing = families.gauge(
        "alert_firing", "1 while the monitor's alert fires at this severity.", [*tc, "severity"]
    )
    for check, severity in sorted(state.alerts.items()):
        for level in SEVERITIES:
            firing.add_metric([name, check, level.value], int(severity is level))


def _chat_series(families: Families, name: str, state: _TargetState) -> None:
    families.histogram(
        "chat_first_token_seconds", "Time to the first streamed token.", ["target"]
    ).add(state.first_token, [name], skip_empty=True)
    families.histogram(
        "chat_stream_tokens_per_second", "Streamed chat rates (tokens/s).", ["target"]
    ).add(state.tokens, [name], skip_empty=True)
    if state.tokens_per_second is not None:
        families.gauge(
            "chat_tokens_per_second", "The latest streamed chat's rate (tokens/s).", ["target"]
        ).add_metric([name], state.tokens_per_second)


def _model_series(families: Families, name: str, state: _TargetState) -> None:
    if "models" in state.checks:
        families.gauge(
            "models_required", "How many models the inventory requires.", ["target"]
        ).add_metric([name], len(state.required))
    if state.present is not None:
        families.gauge(
            "models_present", "How many models the target lists.", ["target"]
        ).add_metric([name], len(state.present))
        present = families.gauge(
            "model_present",
            "1 when the model is on the target; required ones show 0 while missing.",
            ["target", "model", "required"],
        )
        listed = set(state.present)
        extra = sorted(listed.difference(state.required))
        for model in (*state.required, *extra)[:MAX_MODELS_PER_TARGET]:
            required = "true" if model in state.required else "false"
            present.add_metric([name, model, required], int(model in listed))
    tm = ["target", "model"]
    for loaded in state.loaded:
        labels = [name, loaded.name]
        families.gauge("model_loaded", "1 for each model /api/ps holds.", tm).add_metric(labels, 1)
        families.gauge("model_vram_bytes", "Bytes of the model in VRAM.", tm).add_metric(
            labels, loaded.vram_bytes
        )
        families.gauge("model_size_bytes", "Bytes the loaded model takes.", tm).add_metric(
            labels, loaded.size_bytes
        )
        if loaded.expires_at is not None:
            families.gauge(
                "model_expiry_timestamp_seconds", "When Ollama unloads the model (Unix time).", tm
            ).add_metric(labels, loaded.expires_at)
