"""The alert state machine of one (target, check): pure steps from results to notifications.

The machine knows nothing of time but what it is given (a sample's `at`, `now`), nothing of
storage but its JSON round trip, and nothing of receivers: the store persists its states and
notifications in one transaction, the dispatcher delivers them.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.model import OpenAlert, Sample, Severity
from ollama_fleet.monitor.settings import AlertPolicy

CONSECUTIVE = "consecutive"
SUCCESS_RATE = "success_rate"
REASONS: tuple[str, ...] = (CONSECUTIVE, SUCCESS_RATE)
KINDS: tuple[str, ...] = ("firing", "resolved", "reminder")

_SEVERITY_RANK = {Severity.WARNING: 1, Severity.CRITICAL: 2}


class Phase(enum.StrEnum):
    """Where an alert stands: all well, failing but under the threshold, or firing."""

    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertState:
    """What the machine remembers of one (target, check) between results."""

    phase: Phase = Phase.OK
    severity: Severity | None = None  # the worst seen since the failures began
    failures: int = 0  # consecutive results that were not ok
    successes: int = 0  # consecutive ok results while pending or firing
    recent: tuple[bool, ...] = ()  # ok flags of the last `policy.window` results, oldest first
    since: float | None = None  # when it started firing
    summary: str = ""  # the last failing result's summary
    reason: str = CONSECUTIVE
    last_notified_at: float | None = None  # the last firing or reminder notification

    @classmethod
    def initial(cls) -> AlertState:
        return cls()

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": str(self.phase),
            "severity": None if self.severity is None else str(self.severity),
            "failures": self.failures,
            "successes": self.successes,
            "recent": list(self.recent),
            "since": self.since,
            "summary": self.summary,
            "reason": self.reason,
            "last_notified_at": self.last_notified_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertState:
        severity = data.get("severity")
        return cls(
            phase=Phase(data["phase"]),
            severity=None if severity is None else Severity(severity),
            failures=int(data["failures"]),
            successes=int(data["successes"]),
            recent=tuple(bool(flag) for flag in data["recent"]),
            since=_optional_float(data.get("since")),
            summary=str(data.get("summary", "")),
            reason=str(data.get("reason", CONSECUTIVE)),
            last_notified_at=_optional_float(data.get("last_notified_at")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One message about one alert, as the outbox keeps it and the receivers send it.

    `url` is the target's public URL (not a secret). `since` is when the alert started
    firing, `at` when this notification was made. `escalated_from` is set on the firing
    notification of an escalation (warning -> critical), so Alertmanager can close the
    warning it was sent before.
    """

    id: str
    kind: str  # "firing" | "resolved" | "reminder"
    target: str
    check: str
    url: str
    severity: Severity
    summary: str
    reason: str
    since: float
    at: float
    escalated_from: Severity | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "check": self.check,
            "url": self.url,
            "severity": str(self.severity),
            "summary": self.summary,
            "reason": self.reason,
            "since": self.since,
            "at": self.at,
            "escalated_from": None if self.escalated_from is None else str(self.escalated_from),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        escalated_from = data.get("escalated_from")
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            target=str(data["target"]),
            check=str(data["check"]),
            url=str(data["url"]),
            severity=Severity(data["severity"]),
            summary=str(data["summary"]),
            reason=str(data["reason"]),
            since=float(data["since"]),
            at=float(data["at"]),
            escalated_from=None if escalated_from is None else Severity(escalated_from),
        )


def step(
    state: AlertState, *, sample: Sample, summary: str, url: str, policy: AlertPolicy
) -> tuple[AlertState, tuple[Notification, ...]]:
    """Feed one result to the machine: its next state and what to tell the receivers."""
    severity = _failure_severity(sample.status, policy)
    recent = (*state.recent, severity is None)[-max(1, policy.window) :]
    now = sample.at

    if severity is not None:
        failures = state.failures + 1
        if state.phase is Phase.FIRING:
            return _while_firing(state, severity, summary, recent, sample, url, failures)
        worst = _worse(state.severity, severity)
        reason = _fire_reason(failures, recent, policy)
        if reason is None:
            return (
                replace(
                    state,
                    phase=Phase.PENDING,
                    severity=worst,
                    failures=failures,
                    successes=0,
                    recent=recent,
                    summary=summary,
                ),
                (),
            )
        fired = AlertState(
            phase=Phase.FIRING,
            severity=worst,
            failures=failures,
            recent=recent,
            since=now,
            summary=summary,
            reason=reason,
            last_notified_at=now,
        )
        return fired, (
            notification(
                fired,
                "firing",
                target=sample.target,
                check=sample.check,
                url=url,
                at=now,
                summary=summary,
            ),
        )

    if state.phase is not Phase.FIRING:
        # one ok breaks a run of failures: nothing fired, so nothing to resolve
        return AlertState(recent=recent), ()
    successes = state.successes + 1
    if successes < max(1, policy.success_threshold) or not _rate_recovered(recent, policy):
        return replace(state, failures=0, successes=successes, recent=recent), ()
    notes: tuple[Notification, ...] = ()
    if policy.send_on_resolved:
        notes = (
            notification(
                state,
                "resolved",
                target=sample.target,
                check=sample.check,
                url=url,
                at=now,
                summary=summary,
            ),
        )
    return AlertState(recent=recent), notes


def remind(
    state: AlertState, *, now: float, url: str, target: str, check: str, policy: AlertPolicy
) -> tuple[AlertState, Notification | None]:
    """A reminder when an alert has fired for `policy.reminder_s` since it last said so."""
    if state.phase is not Phase.FIRING or policy.reminder_s is None or policy.reminder_s <= 0:
        return state, None
    last = state.last_notified_at if state.last_notified_at is not None else state.since
    if last is not None and now - last < policy.reminder_s:
        return state, None
    note = notification(state, "reminder", target=target, check=check, url=url, at=now)
    return replace(state, last_notified_at=now), note


def notification(
    state: AlertState,
    kind: str,
    *,
    target: str,
    check: str,
    url: str,
    at: float,
    summary: str | None = None,
) -> Notification:
    """A notification (firing, resolved, reminder) about the alert in `state`, which has
    fired (so it has a severity); `summary` defaults to the alert's own."""
    assert state.severity is not None  # only alerts that fired notify
    return Notification(
        id=uuid.uuid4().hex,
        kind=kind,
        target=target,
        check=check,
        url=url,
        severity=state.severity,
        summary=state.summary if summary is None else summary,
        reason=state.reason,
        since=state.since if state.since is not None else at,
        at=at,
    )


def open_alert(state: AlertState, *, target: str, check: str) -> OpenAlert | None:
    """The status page's record of a firing alert; None when it does not fire."""
    if state.phase is not Phase.FIRING or state.severity is None or state.since is None:
        return None
    return OpenAlert(
        target=target,
        check=check,
        severity=state.severity,
        since=state.since,
        summary=state.summary,
        reason=state.reason,
    )


def firing_notification(
    state: AlertState, *, target: str, check: str, url: str, now: float
) -> Notification | None:
    """A firing alert restated as a notification (Alertmanager's periodic re-post)."""
    if open_alert(state, target=target, check=check) is None:
        return None
    return notification(state, "firing", target=target, check=check, url=url, at=now)


def _while_firing(
    state: AlertState,
    severity: Severity,
    summary: str,
    recent: tuple[bool, ...],
    sample: Sample,
    url: str,
    failures: int,
) -> tuple[AlertState, tuple[Notification, ...]]:
    # the severity only rises while an alert fires: it is the incident's worst, so a
    # flapping warn/fail does not send a notification per flap
    worst = _worse(state.severity, severity)
    escalated = state.severity is not None and worst is not state.severity
    new = replace(
        state, severity=worst, failures=failures, successes=0, recent=recent, summary=summary
    )
    if not escalated:
        return new, ()
    new = replace(new, last_notified_at=sample.at)
    note = notification(
        new,
        "firing",
        target=sample.target,
        check=sample.check,
        url=url,
        at=sample.at,
        summary=summary,
    )
    return new, (replace(note, escalated_from=state.severity),)


def _failure_severity(status: Status, policy: AlertPolicy) -> Severity | None:
    if status is Status.FAIL:
        return Severity.CRITICAL
    if status is Status.WARN and policy.warn:
        return Severity.WARNING
    return None  # ok, or a warn that the policy does not alert on


def _fire_reason(failures: int, recent: tuple[bool, ...], policy: AlertPolicy) -> str | None:
    if failures >= max(1, policy.failure_threshold):
        return CONSECUTIVE
    rate = policy.min_success_rate
    if rate is not None and len(recent) >= policy.window and _ok_share(recent) < rate:
        return SUCCESS_RATE
    return None


def _rate_recovered(recent: tuple[bool, ...], policy: AlertPolicy) -> bool:
    # whatever fired the alert: resolving while the window is still below the rate would
    # only flap, the next failure firing it again for the rate
    if policy.min_success_rate is None:
        return True
    return _ok_share(recent) >= policy.min_success_rate


def _ok_share(recent: tuple[bool, ...]) -> float:
    return sum(recent) / len(recent) if recent else 1.0


def _worse(a: Severity | None, b: Severity) -> Severity:
    return b if a is None or _SEVERITY_RANK[b] > _SEVERITY_RANK[a] else a


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
