"""Alert delivery to real receivers on 127.0.0.1: a flaky webhook, Slack's shape, Alertmanager.

Alertmanager is Debian's `prometheus-alertmanager`, run as a plain process with a config this
test writes (clustering off, one route to a receiver that sends nothing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.monitor.alerts import Notification
from ollama_fleet.monitor.delivery import Dispatcher
from ollama_fleet.monitor.model import Severity
from ollama_fleet.monitor.receivers import ALERTNAME
from ollama_fleet.monitor.settings import Receiver
from ollama_fleet.monitor.store import Store
from ollama_fleet.testbed.servers import serve_in_thread

pytestmark = pytest.mark.integration

TOKEN = "xoxb-webhook-token-7d2c"


@dataclass
class Hook:
    """A receiver that answers each POST on /hooks/TOKEN with the next scripted status."""

    statuses: list[int]
    bodies: list[Any] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            if request.url.path != f"/hooks/{TOKEN}" or not self.statuses:
                self.unexpected.append(f"{request.method} {request.url.path}")
                return Response(status_code=418)
            self.bodies.append(await request.json())
            return JSONResponse({"ok": True}, status_code=self.statuses.pop(0))

        return Starlette(routes=[Route("/{path:path}", receive, methods=["POST", "GET"])])


def note(
    kind: str, *, at: float, since: float, severity: Severity = Severity.CRITICAL
) -> Notification:
    return Notification(
        id=f"{kind}-{at}", kind=kind, target="gpu-1", check="chat", severity=severity,
        url="https://gpu-1.example.test", summary="chat answered 503", reason="consecutive",
        since=since, at=at,
    )  # fmt: skip


def dispatch(store: Store, receiver: Receiver, *times: float) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            dispatcher = Dispatcher(store, [receiver], client, retry_s=30.0, monitor="mon-test")
            for now in times:
                await dispatcher.run_once(now)

    asyncio.run(go())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


def test_a_failing_webhook_gets_the_alert_on_the_next_try_exactly_once(
    store: Store, tmp_path: Path
) -> None:
    hook = Hook(statuses=[500, 200])
    with serve_in_thread(hook.app()) as port:
        receiver = Receiver(
            name="ops", kind="webhook", url=f"http://127.0.0.1:{port}/hooks/{TOKEN}"
        )
        now = 1_714_564_800.0
        store.enqueue(note("firing", at=now, since=now), ["ops"])
        dispatch(store, receiver, now, now + 10)
        assert len(hook.bodies) == 1 and store.pending_count() == 1  # refused, waiting
        store.close()
        # a restart between the tries: the outbox still owes it, and owes it once
        with Store.open(tmp_path / "state") as reopened:
            dispatch(reopened, receiver, now + 30, now + 60, now + 3600)
            assert reopened.pending_count() == 0
    assert hook.unexpected == []
    assert [b["kind"] for b in hook.bodies] == ["firing", "firing"]  # the 500, then the 200
    assert hook.bodies[0] == hook.bodies[1]
    assert hook.bodies[1]["id"] == f"firing-{now}"


def test_slack_receives_its_shape(store: Store) -> None:
    hook = Hook(statuses=[200, 200])
    with serve_in_thread(hook.app()) as port:
        receiver = Receiver(name="chat", kind="slack", url=f"http://127.0.0.1:{port}/hooks/{TOKEN}")
        now = time.time()
        store.enqueue(note("firing", at=now, since=now), ["chat"])
        store.enqueue(note("resolved", at=now + 1, since=now), ["chat"])
        dispatch(store, receiver, now + 1, now + 2)
    assert hook.unexpected == []
    firing, resolved = hook.bodies
    assert firing["text"] == "[FIRING] gpu-1 chat (critical): chat answered 503"
    assert resolved["text"].startswith("[RESOLVED] gpu-1 chat")
    assert [b["attachments"][0]["color"] for b in hook.bodies] == ["#d9302c", "#2eb67d"]
    fields = {f["title"]: f["value"] for f in firing["attachments"][0]["fields"]}
    assert fields["Target"] == "gpu-1" and fields["URL"] == "https://gpu-1.example.test"


def active_alerts(base: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/v2/alerts", params={"active": "true"}, trust_env=False)
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return [a for a in alerts if a["status"]["state"] == "active"]


def test_alertmanager_shows_the_alert_then_forgets_it_resolved(
    store: Store, alertmanager: str
) -> None:
    receiver = Receiver(name="am", kind="alertmanager", url=alertmanager)
    since = time.time() - 30  # the results came in a while ago, as they do
    store.enqueue(note("firing", at=since, since=since, severity=Severity.WARNING), ["am"])
    dispatch(store, receiver, time.time())
    (alert,) = active_alerts(alertmanager)
    assert alert["labels"] == {
        "alertname": ALERTNAME,
        "target": "gpu-1",
        "check": "chat",
        "severity": "warning",
        "monitor": "mon-test",
    }
    assert alert["annotations"]["summary"] == "chat answered 503"

    # an escalation replaces the warning with a critical: Alertmanager keys alerts by labels
    escalated = replace(note("firing", at=since + 1, since=since), escalated_from=Severity.WARNING)
    store.enqueue(escalated, ["am"])
    dispatch(store, receiver, time.time())
    assert [a["labels"]["severity"] for a in active_alerts(alertmanager)] == ["critical"]

    store.enqueue(note("resolved", at=time.time(), since=since), ["am"])
    dispatch(store, receiver, time.time())
    assert store.pending_count() == 0
    assert active_alerts(alertmanager) == []
