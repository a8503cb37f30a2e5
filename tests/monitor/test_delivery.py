"""The dispatcher over a real Store: retries with back-off, order, isolation, re-posts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_fleet.monitor.alerts import Notification
from ollama_fleet.monitor.delivery import MAX_ATTEMPTS, Dispatcher, backoff
from ollama_fleet.monitor.model import Severity
from ollama_fleet.monitor.receivers import iso
from ollama_fleet.monitor.settings import Receiver
from ollama_fleet.monitor.store import Store

NOW = 1_714_564_800.0
SECRET = "hooks.example.test/T0/B0/secret-5e1f"
HOOK = Receiver(name="hook", kind="webhook", url=f"https://{SECRET}/hook")
OTHER = Receiver(name="other", kind="webhook", url=f"https://{SECRET}/other")
AM = Receiver(name="am", kind="alertmanager", url="http://am.test")


def note(kind: str = "firing", *, target: str = "gpu-1", at: float = NOW) -> Notification:
    return Notification(
        id=f"{kind}-{target}-{at}", kind=kind, target=target, check="chat",
        url="https://gpu-1.example.test", severity=Severity.CRITICAL, summary="refused",
        reason="consecutive", since=NOW, at=at,
    )  # fmt: skip


class Receivers:
    """A transport that answers per URL from a script, and fails on any URL it was not told."""

    def __init__(self, answers: dict[str, list[int]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        assert url in self.answers and self.answers[url], f"unexpected request to {url}"
        self.seen.append((url, json.loads(request.content)))
        return httpx.Response(self.answers[url].pop(0))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path) as opened:
        yield opened


def run_once(
    store: Store,
    receivers: Sequence[Receiver],
    transport: Receivers,
    *times: float,
    results: list[tuple[object, ...]] | None = None,
    open_alerts: Callable[[], Sequence[Notification]] | None = None,
) -> None:
    def record(name: str, ok: bool, *, result: str | None = None) -> None:
        assert results is not None
        results.append((name, ok) if result is None else (name, ok, result))

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
            dispatcher = Dispatcher(
                store, receivers, client, retry_s=30.0, open_alerts=open_alerts, monitor="m",
                on_result=None if results is None else record,
            )  # fmt: skip
            for now in times:
                await dispatcher.run_once(now)

    asyncio.run(go())


def test_backoff_doubles_from_retry_s_and_stops_at_ten_minutes() -> None:
    assert [backoff(n, 30.0) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]


def test_a_due_notification_is_delivered_once(store: Store) -> None:
    store.enqueue(note(), ["hook"])
    transport = Receivers({HOOK.url: [200]})
    results: list[tuple[object, ...]] = []
    run_once(store, [HOOK], transport, NOW, NOW + 1, NOW + 3600, results=results)
    assert [body["kind"] for _, body in transport.seen] == ["firing"]
    assert store.pending_count() == 0
    assert results == [("hook", True)]


def test_a_failure_is_retried_with_back_off(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.enqueue(note(), ["hook"])
    transport = Receivers({HOOK.url: [500, 503, 200]})
    results: list[tuple[object, ...]] = []
    with caplog.at_level(logging.DEBUG):
        # tries at NOW (500), not before NOW+30, at NOW+30 (503), not before NOW+90, then 200
        run_once(store, [HOOK], transport, NOW, NOW + 29, NOW + 30, NOW + 89, NOW + 90,
                 results=results)  # fmt: skip
    assert len(transport.seen) == 3
    assert results == [("hook", False), ("hook", False), ("hook", True)]
    assert store.pending_count() == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "alert receiver 'hook' failed (http_500) on try 1: retrying in 30 s",
        "alert receiver 'hook' failed (http_503) on try 2: retrying in 60 s",
    ]
    assert SECRET not in caplog.text


def test_a_failed_receiver_does_not_hold_up_another(store: Store) -> None:
    store.enqueue(note(), ["hook", "other"])
    transport = Receivers({HOOK.url: [500], OTHER.url: [200]})
    run_once(store, [HOOK, OTHER], transport, NOW)
    assert sorted(url for url, _ in transport.seen) == [HOOK.url, OTHER.url]
    (left,) = store.due(NOW + 30)
    assert (left.receiver, left.attempts) == ("hook", 1)


def test_a_resolved_waits_for_its_firing(store: Store) -> None:
    store.enqueue(note("firing"), ["hook"])
    store.enqueue(note("resolved", at=NOW + 5), ["hook"])
    transport = Receivers({HOOK.url: [500, 200, 200]})
    # fails at +5, so nothing goes at +20; the firing at +35, the resolved on the next tick
    run_once(store, [HOOK], transport, NOW + 5, NOW + 20, NOW + 35, NOW + 36)
    assert [body["kind"] for _, body in transport.seen] == ["firing", "firing", "resolved"]


def test_a_receiver_gone_from_the_config_is_dropped(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.enqueue(note(), ["retired"])
    with caplog.at_level(logging.WARNING):
        run_once(store, [HOOK], Receivers({}), NOW)
    assert store.pending_count() == 0
    assert "alert receiver 'retired' is no longer configured" in caplog.text


def test_alertmanager_gets_the_open_alerts_again_every_minute(store: Store) -> None:
    transport = Receivers({"http://am.test/api/v2/alerts": [200, 200]})
    opened = [note(target="gpu-2")]
    # the webhook receiver must never see the re-posts (the transport would fail)
    run_once(store, [AM, HOOK], transport, NOW, NOW + 30, NOW + 59, NOW + 60,
             open_alerts=lambda: opened)  # fmt: skip
    assert len(transport.seen) == 2
    first, second = (body for _, body in transport.seen)
    assert [a["labels"]["target"] for a in first] == ["gpu-2"]
    assert second[0]["endsAt"] == iso(NOW + 60 + 240)


def test_no_open_alerts_no_repost(store: Store) -> None:
    run_once(store, [AM], Receivers({}), NOW, NOW + 60, open_alerts=lambda: ())


def test_a_failed_repost_is_reported(store: Store) -> None:
    results: list[tuple[object, ...]] = []
    transport = Receivers({"http://am.test/api/v2/alerts": [500]})
    run_once(store, [AM], transport, NOW, results=results, open_alerts=lambda: [note()])
    assert results == [("am", False)]
    assert store.pending_count() == 0  # a re-post is not queued: the next one comes anyway


def test_run_delivers_until_stopped(store: Store) -> None:
    store.enqueue(note(), ["hook"])
    transport = Receivers({HOOK.url: [200]})

    async def go() -> None:
        stop = asyncio.Event()
        async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
            dispatcher = Dispatcher(
                store, [HOOK], client, retry_s=30.0, on_result=lambda name, ok, **_: stop.set()
            )
            await asyncio.wait_for(dispatcher.run(stop, now=lambda: NOW), timeout=30)

    asyncio.run(go())
    assert len(transport.seen) == 1
    assert store.pending_count() == 0


def test_set_receivers_changes_retry_and_routes(store: Store) -> None:
    store.enqueue(note(), ["other"])
    transport = Receivers({OTHER.url: [500]})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
            dispatcher = Dispatcher(store, [HOOK], client, retry_s=30.0)
            dispatcher.set_receivers([HOOK, OTHER], retry_s=5.0)
            await dispatcher.run_once(NOW)

    asyncio.run(go())
    (left,) = store.due(NOW + 5)
    assert left.next_try == NOW + 5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_a_refusal_for_good_is_dropped_and_the_queue_moves_on(
    store: Store, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    store.enqueue(note("firing"), ["hook"])
    store.enqueue(note("resolved", at=NOW + 5), ["hook"])
    transport = Receivers({HOOK.url: [status, 200]})
    results: list[tuple[object, ...]] = []
    with caplog.at_level(logging.DEBUG):
        run_once(store, [HOOK], transport, NOW + 5, NOW + 6, results=results)
    # no retry of the refused firing; its resolved is not blocked behind it
    assert [body["kind"] for _, body in transport.seen] == ["firing", "resolved"]
    assert store.pending_count() == 0
    assert results == [("hook", False, "dropped"), ("hook", True)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"alert receiver 'hook' refused it for good (http_{status}): dropping its firing "
        "notification for gpu-1 chat"
    ]
    assert SECRET not in caplog.text


@pytest.mark.parametrize("status", [408, 429])
def test_a_refusal_that_may_pass_is_retried(store: Store, status: int) -> None:
    store.enqueue(note(), ["hook"])
    run_once(store, [HOOK], Receivers({HOOK.url: [status]}), NOW)
    (left,) = store.due(NOW + 30)
    assert left.attempts == 1


def test_a_delivery_is_dropped_after_max_attempts(store: Store) -> None:
    store.enqueue(note(), ["hook"])
    (delivery,) = store.due(NOW)
    for _ in range(MAX_ATTEMPTS - 2):
        store.retry_later(delivery.id, NOW, "http_503")
    results: list[tuple[object, ...]] = []
    run_once(store, [HOOK], Receivers({HOOK.url: [503, 503]}), NOW, NOW + 600, results=results)
    assert results == [("hook", False), ("hook", False, "dropped")]
    assert store.pending_count() == 0


def test_two_passes_at_once_post_a_delivery_once(store: Store) -> None:
    # the service's shutdown flush can start a pass while the loop's pass waits on a POST
    store.enqueue(note(), ["hook"])
    posts: list[str] = []

    async def go() -> None:
        answer = asyncio.Event()

        async def handle(request: httpx.Request) -> httpx.Response:
            posts.append(str(request.url))
            await answer.wait()
            return httpx.Response(200)

        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            dispatcher = Dispatcher(store, [HOOK], client, retry_s=30.0)
            first = asyncio.create_task(dispatcher.run_once(NOW))
            while not posts:
                await asyncio.sleep(0)
            second = asyncio.create_task(dispatcher.run_once(NOW))
            for _ in range(50):  # ample turns for an unguarded second pass to POST too
                await asyncio.sleep(0)
            answer.set()
            await asyncio.gather(first, second)

    asyncio.run(go())
    assert posts == [HOOK.url]
    assert store.pending_count() == 0
