"""The alert receivers: a JSON webhook, Slack incoming webhooks and Alertmanager's API.

Payload builders are pure; `send` is the one I/O edge. A receiver's URL and headers are
secrets: a failure names the receiver and the kind of failure, never where it was sent.
A target's URL goes out as the status page shows it: no user:password@, no query (keys).
"""

from __future__ import annotations

import errno
import logging
import platform
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from ollama_fleet.errors import FleetError
from ollama_fleet.monitor.alerts import Notification
from ollama_fleet.monitor.model import Severity
from ollama_fleet.monitor.settings import Receiver
from ollama_fleet.monitor.status_facts import display_url

WEBHOOK_VERSION = 1
ALERTNAME = "OllamaFleetCheckFailing"
# Alertmanager forgets a firing alert at its endsAt: the open ones are re-posted this often,
# each valid for four re-posts, as Prometheus does with its resend delay
ALERTMANAGER_RESEND_S = 60.0
ALERTMANAGER_RESOLVE_TIMEOUT_S = 4 * ALERTMANAGER_RESEND_S
ALERTMANAGER_PATH = "/api/v2/alerts"

SLACK_COLORS = {
    Severity.CRITICAL: "#d9302c",  # red
    Severity.WARNING: "#f2a20c",  # orange
}
SLACK_RESOLVED_COLOR = "#2eb67d"  # green
REQUEST_ERROR = "request_error"  # the request could not be made at all
# 4xx answers that may pass on a later try: timeout, too early, too many requests
RETRIED_4XX = frozenset({408, 425, 429})


class DeliveryError(FleetError):
    """A receiver did not take a notification. The message holds no URL and no header.

    `status` is the HTTP status where the receiver answered; `permanent` says a retry of
    the same request cannot succeed (a 4xx other than 408, 425 and 429).
    """

    def __init__(self, receiver: str, error_class: str, status: int | None = None) -> None:
        super().__init__(f"alert receiver {receiver!r} failed: {error_class}")
        self.receiver = receiver
        self.error_class = error_class
        self.status = status

    @property
    def permanent(self) -> bool:
        return (
            self.status is not None and 400 <= self.status < 500 and self.status not in RETRIED_4XX
        )


def iso(timestamp: float) -> str:
    """Unix seconds as ISO 8601 in UTC, to the millisecond (2024-05-01T12:00:00.000Z)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_payload(notification: Notification) -> dict[str, Any]:
    """The generic webhook's JSON body (schema version 1, docs/monitor.md)."""
    n = notification
    return {
        "version": WEBHOOK_VERSION,
        "kind": n.kind,
        "target": n.target,
        "check": n.check,
        "url": display_url(n.url),
        "severity": str(n.severity),
        "summary": n.summary,
        "reason": n.reason,
        "since": iso(n.since),
        "at": iso(n.at),
        "id": n.id,
    }


def slack_payload(notification: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: a text line and one coloured attachment."""
    n = notification
    resolved = n.kind == "resolved"
    state = {"firing": "FIRING", "resolved": "RESOLVED", "reminder": "STILL FIRING"}[n.kind]
    title = f"{n.target} {n.check}"
    fields = [
        {"title": "Target", "value": n.target, "short": True},
        {"title": "Check", "value": n.check, "short": True},
        {"title": "Severity", "value": str(n.severity), "short": True},
        {"title": "Since", "value": iso(n.since), "short": True},
        {"title": "URL", "value": display_url(n.url), "short": False},
    ]
    if n.reason != "consecutive":
        fields.append({"title": "Reason", "value": n.reason, "short": True})
    return {
        "text": f"[{state}] {title} ({n.severity}): {n.summary}",
        "attachments": [
            {
                "color": SLACK_RESOLVED_COLOR if resolved else SLACK_COLORS[n.severity],
                "title": f"[{state}] {title}",
                "text": n.summary,
                "fields": fields,
                "footer": "ollama-fleet monitor",
                "ts": int(n.at),
            }
        ],
    }


def alertmanager_alerts(
    notifications: Sequence[Notification],
    *,
    now: float,
    monitor: str,
    resolve_timeout_s: float = ALERTMANAGER_RESOLVE_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """The body of Alertmanager's POST /api/v2/alerts for these notifications.

    A firing (or reminder) alert ends `resolve_timeout_s` after `now` unless re-posted; a
    resolved one ends when it resolved. An escalation also ends the alert of the severity
    it escalated from, since Alertmanager tells alerts apart by their labels.
    """
    alerts: list[dict[str, Any]] = []
    for n in notifications:
        resolved = n.kind == "resolved"
        ends = n.at if resolved else now + resolve_timeout_s
        alerts.append(_alertmanager_alert(n, n.severity, monitor, ends))
        if n.escalated_from is not None and not resolved:
            alerts.append(_alertmanager_alert(n, n.escalated_from, monitor, n.at))
    return alerts


async def send(
    client: httpx.AsyncClient,
    receiver: Receiver,
    notifications: Sequence[Notification],
    *,
    open_alerts_for_alertmanager: Sequence[Notification] = (),
    now: float | None = None,
    monitor: str | None = None,
) -> None:
    """Deliver `notifications` to `receiver`; DeliveryError when it does not take them.

    Webhook and Slack receivers get one POST per notification; Alertmanager gets one POST
    with them all, plus `open_alerts_for_alertmanager` (the firing alerts it must keep
    seeing; other kinds ignore them).
    """
    if not notifications and not open_alerts_for_alertmanager:
        return
    if receiver.kind == "webhook":
        for n in notifications:
            await _post(client, receiver, receiver.url, webhook_payload(n))
    elif receiver.kind == "slack":
        for n in notifications:
            await _post(client, receiver, receiver.url, slack_payload(n))
    elif receiver.kind == "alertmanager":
        body = alertmanager_alerts(
            [*notifications, *open_alerts_for_alertmanager],
            now=time.time() if now is None else now,
            monitor=platform.node() if monitor is None else monitor,
        )
        await _post(client, receiver, post_url(receiver), body)
    else:
        raise DeliveryError(receiver.name, f"unsupported_kind {receiver.kind!r}")


def post_url(receiver: Receiver) -> str:
    """Where `receiver` is sent to (a secret)."""
    return alertmanager_url(receiver.url) if receiver.kind == "alertmanager" else receiver.url


class _HideReceiverRequests(logging.Filter):
    """Drops httpx's "HTTP Request: POST <url>" lines for receiver URLs, which are secrets."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) > 1 and str(args[1]) in self.urls)


_HIDE_REQUESTS = _HideReceiverRequests()


def hide_request_logs(receivers: Iterable[Receiver]) -> None:
    """Keep httpx's request log (INFO) from ever printing these receivers' URLs."""
    for receiver in receivers:
        try:
            _HIDE_REQUESTS.urls.add(str(httpx.URL(post_url(receiver))))
        except httpx.InvalidURL:
            continue  # httpx will not send to it either, so it never logs it
    httpx_log = logging.getLogger("httpx")
    if _HIDE_REQUESTS not in httpx_log.filters:
        httpx_log.addFilter(_HIDE_REQUESTS)


def alertmanager_url(base: str) -> str:
    """Alertmanager's alerts endpoint under `base` (which may already name it)."""
    base = base.rstrip("/")
    return base if base.endswith(ALERTMANAGER_PATH) else base + ALERTMANAGER_PATH


def _alertmanager_alert(
    n: Notification, severity: Severity, monitor: str, ends: float
) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": ALERTNAME,
            "target": n.target,
            "check": n.check,
            "severity": str(severity),
            "monitor": monitor,
        },
        "annotations": {"summary": n.summary, "reason": n.reason, "url": display_url(n.url)},
        "startsAt": iso(n.since),
        "endsAt": iso(max(ends, n.since)),
    }


async def _post(client: httpx.AsyncClient, receiver: Receiver, url: str, body: Any) -> None:
    try:
        response = await client.post(
            url, json=body, headers=dict(receiver.headers), timeout=receiver.timeout_s
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # from None: httpx's exceptions carry the request, and with it the URL
        raise DeliveryError(receiver.name, error_class(exc)) from None
    except Exception:
        # anything else building or sending the request (a header httpx cannot encode, a
        # body it cannot serialise) is still this receiver failing: it must be retried,
        # backed off and counted like any failure, not escape the dispatcher every second
        raise DeliveryError(receiver.name, REQUEST_ERROR) from None
    if not response.is_success:
        raise DeliveryError(receiver.name, f"http_{response.status_code}", response.status_code)


def error_class(exc: BaseException) -> str:
    """A bounded name for why a request failed (no message, no URL)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "invalid_url"
    if isinstance(exc, httpx.ConnectError):
        for cause in _causes(exc):
            if isinstance(cause, ConnectionRefusedError) or (
                isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
            ):
                return "refused"
            if isinstance(cause, socket.gaierror):
                return "dns"
            if isinstance(cause, ssl.SSLError):
                return "tls"
        return "connect_error"
    return "network_error"


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
