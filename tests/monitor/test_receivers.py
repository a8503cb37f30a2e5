"""Receiver payloads (pure) and `send` through httpx's transport seam: shapes and secrecy."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Callable

import httpx
import pytest

from ollama_fleet.monitor.alerts import Notification
from ollama_fleet.monitor.model import Severity
from ollama_fleet.monitor.receivers import (
    ALERTNAME,
    DeliveryError,
    alertmanager_alerts,
    alertmanager_url,
    hide_request_logs,
    iso,
    send,
    slack_payload,
    webhook_payload,
)
from ollama_fleet.monitor.settings import Receiver
from ollama_fleet.testbed.servers import free_port

SINCE = 1_714_564_800.0  # 2024-05-01T12:00:00Z
AT = SINCE + 90.5
SECRET = "T000/B000/xoxb-secret-token-5f3a"
SECRET_HEADER = "Bearer header-secret-9c1e"

Handler = Callable[[httpx.Request], httpx.Response]


def note(
    kind: str = "firing", severity: Severity = Severity.CRITICAL, **changes: object
) -> Notification:
    fields: dict[str, object] = dict(
        id="0123abcd", kind=kind, target="gpu-1", check="chat", url="https://gpu-1.example.test",
        severity=severity, summary="chat answered 503", reason="consecutive", since=SINCE, at=AT,
    )  # fmt: skip
    fields.update(changes)
    return Notification(**fields)  # type: ignore[arg-type]


def receiver(kind: str, url: str = f"https://hooks.example.test/{SECRET}") -> Receiver:
    return Receiver(
        name=f"ops-{kind}", kind=kind, url=url, headers={"Authorization": SECRET_HEADER}
    )


def deliver(handler: Handler, to: Receiver, notes: list[Notification], **kwargs: object) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await send(client, to, notes, **kwargs)  # type: ignore[arg-type]

    asyncio.run(go())


def recorder(expected_url: str, status: int = 200) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert (request.method, str(request.url)) == ("POST", expected_url), "unexpected request"
        seen.append(request)
        return httpx.Response(status, text="ok")

    return handle, seen


def test_iso_is_utc_with_milliseconds() -> None:
    assert iso(SINCE) == "2024-05-01T12:00:00.000Z"
    assert iso(AT) == "2024-05-01T12:01:30.500Z"


def test_webhook_payload_is_the_documented_schema() -> None:
    assert webhook_payload(note()) == {
        "version": 1,
        "kind": "firing",
        "target": "gpu-1",
        "check": "chat",
        "url": "https://gpu-1.example.test",
        "severity": "critical",
        "summary": "chat answered 503",
        "reason": "consecutive",
        "since": "2024-05-01T12:00:00.000Z",
        "at": "2024-05-01T12:01:30.500Z",
        "id": "0123abcd",
    }


@pytest.mark.parametrize(
    ("kind", "severity", "color", "word"),
    [
        ("firing", Severity.CRITICAL, "#d9302c", "FIRING"),
        ("firing", Severity.WARNING, "#f2a20c", "FIRING"),
        ("reminder", Severity.CRITICAL, "#d9302c", "STILL FIRING"),
        ("resolved", Severity.CRITICAL, "#2eb67d", "RESOLVED"),
    ],
)
def test_slack_payload(kind: str, severity: Severity, color: str, word: str) -> None:
    payload = slack_payload(note(kind, severity))
    assert payload["text"] == f"[{word}] gpu-1 chat ({severity}): chat answered 503"
    (attachment,) = payload["attachments"]
    assert attachment["color"] == color
    assert attachment["title"] == f"[{word}] gpu-1 chat"
    assert {f["title"]: f["value"] for f in attachment["fields"]} == {
        "Target": "gpu-1",
        "Check": "chat",
        "Severity": str(severity),
        "Since": "2024-05-01T12:00:00.000Z",
        "URL": "https://gpu-1.example.test",
    }
    assert attachment["ts"] == int(AT)


def test_alertmanager_firing_ends_after_the_resolve_timeout() -> None:
    (alert,) = alertmanager_alerts([note()], now=AT + 10, monitor="mon-1")
    assert alert == {
        "labels": {
            "alertname": ALERTNAME,
            "target": "gpu-1",
            "check": "chat",
            "severity": "critical",
            "monitor": "mon-1",
        },
        "annotations": {
            "summary": "chat answered 503",
            "reason": "consecutive",
            "url": "https://gpu-1.example.test",
        },
        "startsAt": "2024-05-01T12:00:00.000Z",
        "endsAt": iso(AT + 10 + 240),
    }


def test_alertmanager_resolved_ends_when_it_resolved() -> None:
    (alert,) = alertmanager_alerts([note("resolved")], now=AT + 500, monitor="m")
    assert alert["endsAt"] == iso(AT)


def test_alertmanager_escalation_ends_the_warning() -> None:
    escalated = note(escalated_from=Severity.WARNING)
    critical, warning = alertmanager_alerts([escalated], now=AT, monitor="m")
    assert (critical["labels"]["severity"], critical["endsAt"]) == ("critical", iso(AT + 240))
    assert (warning["labels"]["severity"], warning["endsAt"]) == ("warning", iso(AT))


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093/api/v2/alerts"),
        ("http://am.test/prefix/", "http://am.test/prefix/api/v2/alerts"),
        ("http://am.test/api/v2/alerts", "http://am.test/api/v2/alerts"),
    ],
)
def test_alertmanager_url(base: str, url: str) -> None:
    assert alertmanager_url(base) == url


def test_webhook_posts_each_notification_with_the_headers() -> None:
    to = receiver("webhook")
    handle, seen = recorder(to.url)
    deliver(handle, to, [note(), note("resolved")])
    assert [json.loads(r.content)["kind"] for r in seen] == ["firing", "resolved"]
    assert {r.headers["authorization"] for r in seen} == {SECRET_HEADER}
    assert {r.headers["content-type"] for r in seen} == {"application/json"}


def test_alertmanager_gets_one_post_with_the_open_alerts() -> None:
    to = receiver("alertmanager", "http://am.test")
    handle, seen = recorder("http://am.test/api/v2/alerts")
    other = note(target="gpu-2")
    deliver(
        handle, to, [note("resolved")], open_alerts_for_alertmanager=[other], now=AT, monitor="m"
    )
    (request,) = seen
    body = json.loads(request.content)
    assert [(a["labels"]["target"], a["endsAt"]) for a in body] == [
        ("gpu-1", iso(AT)),
        ("gpu-2", iso(AT + 240)),
    ]


def test_webhook_ignores_open_alerts_meant_for_alertmanager() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.method}")

    deliver(refuse, receiver("webhook"), [], open_alerts_for_alertmanager=[note()])


@pytest.mark.parametrize(
    ("raise_or_status", "error_class"),
    [
        (503, "http_503"),
        (404, "http_404"),
        (httpx.ReadTimeout, "timeout"),
        (httpx.ConnectTimeout, "timeout"),
        (httpx.RemoteProtocolError, "network_error"),
    ],
)
@pytest.mark.parametrize("kind", ["webhook", "slack", "alertmanager"])
def test_failures_name_the_receiver_and_class_never_the_secrets(
    kind: str, raise_or_status: int | type[httpx.TransportError], error_class: str
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(raise_or_status, int):
            return httpx.Response(raise_or_status, text=f"no: {request.url}")
        # an error whose own message holds the URL, as some of httpx's do
        raise raise_or_status(f"failed on {request.url}", request=request)

    with pytest.raises(DeliveryError) as caught:
        deliver(handle, receiver(kind), [note()])
    message = str(caught.value)
    assert message == f"alert receiver 'ops-{kind}' failed: {error_class}"
    assert caught.value.error_class == error_class
    # neither the message nor the traceback a log would print (chained httpx errors carry the
    # request) holds the URL or the header
    printed = "".join(traceback.format_exception(caught.value))
    assert "hooks.example.test" not in printed
    assert SECRET not in printed and SECRET_HEADER not in printed


def test_a_closed_port_is_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/{SECRET}"

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            await send(client, receiver("webhook", url), [note()])

    with pytest.raises(DeliveryError, match=r"'ops-webhook' failed: refused$") as caught:
        asyncio.run(go())
    assert SECRET not in str(caught.value)


def test_an_unknown_kind_is_a_delivery_error() -> None:
    with pytest.raises(DeliveryError, match="unsupported_kind 'pager'"):
        deliver(recorder("")[0], receiver("pager"), [note()])


def test_httpx_request_log_never_shows_a_receiver_url(caplog: pytest.LogCaptureFixture) -> None:
    to = receiver("slack", f"https://hooks.example.test/{SECRET}/logged")
    hide_request_logs([to])
    handle, _ = recorder(to.url)
    with caplog.at_level(logging.DEBUG):
        deliver(handle, to, [note()])

        async def elsewhere() -> None:  # other requests keep their log line
            transport = httpx.MockTransport(lambda _: httpx.Response(200))
            async with httpx.AsyncClient(transport=transport) as client:
                await client.get("https://gpu-1.example.test/api/version")

        asyncio.run(elsewhere())
    assert SECRET not in caplog.text
    assert "https://gpu-1.example.test/api/version" in caplog.text


@pytest.mark.parametrize("kind", ["webhook", "slack", "alertmanager"])
def test_a_header_httpx_cannot_encode_is_a_delivery_error(kind: str) -> None:
    # a config written before header values were checked, or a Receiver made in code
    to = Receiver(name="ops", kind=kind, url=f"https://hooks.example.test/{SECRET}",
                  headers={"Authorization": "Bearer \u201cheader-secret-9c1e\u201d"})  # fmt: skip
    with pytest.raises(DeliveryError) as caught:
        deliver(recorder("")[0], to, [note()])
    assert caught.value.error_class == "request_error"
    assert caught.value.status is None and not caught.value.permanent
    printed = "".join(traceback.format_exception(caught.value))
    assert "header-secret" not in printed and SECRET not in printed


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (403, True), (404, True), (410, True), (408, False),
     (429, False), (500, False), (503, False)],
)  # fmt: skip
def test_a_4xx_but_408_and_429_is_permanent(status: int, permanent: bool) -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(recorder(receiver("webhook").url, status)[0], receiver("webhook"), [note()])
    assert (caught.value.error_class, caught.value.status) == (f"http_{status}", status)
    assert caught.value.permanent is permanent


SECRET_TARGET = "https://admin:pw-secret-1a@gpu-1.example.test:8443/ollama?key=key-secret-2b"


def test_payloads_carry_the_target_url_without_credentials_or_query() -> None:
    n = note(url=SECRET_TARGET)
    shown = "https://gpu-1.example.test:8443/ollama"
    assert webhook_payload(n)["url"] == shown
    assert {"title": "URL", "value": shown, "short": False} in slack_payload(n)["attachments"][0][
        "fields"
    ]
    (alert,) = alertmanager_alerts([n], now=AT, monitor="mon-1")
    assert alert["annotations"]["url"] == shown
    for body in (webhook_payload(n), slack_payload(n), alert):
        text = json.dumps(body)
        assert "pw-secret" not in text and "key-secret" not in text and "admin" not in text
