"""Delivers the outbox: each due notification to its receiver, with retries and back-off.

Receivers are sent to side by side, each one's notifications in order, so a slow or dead
receiver delays only itself. A notification a receiver refuses for good (a 4xx such as 401
or 404), or fails MAX_ATTEMPTS times, is dropped, so the ones behind it move on. Alertmanager
receivers also get the open alerts re-posted every ALERTMANAGER_RESEND_S, or Alertmanager
would let them expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import httpx

from ollama_fleet.monitor.alerts import Notification
from ollama_fleet.monitor.receivers import (
    ALERTMANAGER_RESEND_S,
    DeliveryError,
    hide_request_logs,
    send,
)
from ollama_fleet.monitor.settings import Receiver
from ollama_fleet.monitor.store import Delivery, Store

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 600.0
MAX_ATTEMPTS = 20  # about two and a half hours of tries at the default retry
TICK_S = 1.0
DROPPED = "dropped"


class OnResult(Protocol):
    """Told of each send by receiver name: ok or not, and result="dropped" on giving up."""

    def __call__(self, receiver: str, ok: bool, /, *, result: str | None = None) -> None: ...


OpenAlerts = Callable[[], Sequence[Notification]]


def backoff(attempts: int, retry_s: float) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling, capped at 10 min."""
    return float(min(MAX_BACKOFF_S, retry_s * 2 ** max(0, attempts - 1)))


class Dispatcher:
    """Sends what the store's outbox holds to the configured receivers."""

    def __init__(
        self,
        store: Store,
        receivers: Sequence[Receiver],
        client: httpx.AsyncClient,
        *,
        retry_s: float = 30.0,
        on_result: OnResult | None = None,
        open_alerts: OpenAlerts | None = None,
        monitor: str | None = None,
        resend_s: float = ALERTMANAGER_RESEND_S,
    ) -> None:
        self._store = store
        self._client = client
        self._retry_s = retry_s
        self._on_result = on_result
        self._open_alerts = open_alerts
        self._monitor = monitor
        self._resend_s = resend_s
        self._last_resend: float | None = None
        # one pass at a time: the shutdown flush may start one while the loop is inside
        # another, and both would send the same due deliveries
        self._running = asyncio.Lock()
        self.receivers = receivers

    @property
    def receivers(self) -> tuple[Receiver, ...]:
        return tuple(self._receivers.values())

    @receivers.setter
    def receivers(self, receivers: Sequence[Receiver]) -> None:
        """Replace the receivers (a reloaded config); queued deliveries keep their names."""
        hide_request_logs(receivers)
        self._receivers = {r.name: r for r in receivers}

    def set_receivers(self, receivers: Sequence[Receiver], *, retry_s: float | None = None) -> None:
        """A reloaded config's receivers and retry interval; what is queued stays queued."""
        self.receivers = receivers
        if retry_s is not None:
            self._retry_s = retry_s

    async def run_once(self, now: float) -> None:
        """Send every due delivery once, then re-post open alerts to Alertmanager if due.

        A call while another runs waits for it, then sends what is still due.
        """
        async with self._running:
            await self._run_once(now)

    async def _run_once(self, now: float) -> None:
        by_receiver: dict[str, list[Delivery]] = {}
        for delivery in self._store.due(now):
            by_receiver.setdefault(delivery.receiver, []).append(delivery)
        jobs = [self._deliver(name, queue, now) for name, queue in by_receiver.items()]
        if self._open_alerts is not None and (
            self._last_resend is None or now - self._last_resend >= self._resend_s
        ):
            self._last_resend = now
            managers = [r for r in self._receivers.values() if r.kind == "alertmanager"]
            alerts = tuple(self._open_alerts()) if managers else ()
            if alerts:
                jobs += [self._resend(r, alerts, now) for r in managers]
        await asyncio.gather(*jobs)

    async def run(self, stop: asyncio.Event, now: Callable[[], float] = time.time) -> None:
        """`run_once` about every second until `stop` is set."""
        while not stop.is_set():
            try:
                await self.run_once(now())
            except Exception:
                # a bug here must not end the delivery of every later alert
                log.exception("alert delivery failed unexpectedly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)

    async def _deliver(self, name: str, queue: list[Delivery], now: float) -> None:
        receiver = self._receivers.get(name)
        for delivery in queue:
            if receiver is None:
                log.warning(
                    "alert receiver %r is no longer configured: dropping its %s notification "
                    "for %s %s",
                    name,
                    delivery.notification.kind,
                    delivery.notification.target,
                    delivery.notification.check,
                )
                self._store.delivered(delivery.id)
                continue
            try:
                await send(
                    self._client, receiver, [delivery.notification], now=now, monitor=self._monitor
                )
            except DeliveryError as exc:
                attempts = delivery.attempts + 1
                if exc.permanent or attempts >= MAX_ATTEMPTS:
                    self._give_up(name, delivery, exc, attempts)
                    continue
                wait = backoff(attempts, self._retry_s)
                self._store.retry_later(delivery.id, now + wait, exc.error_class)
                log.warning(
                    "alert receiver %r failed (%s) on try %d: retrying in %.0f s",
                    name,
                    exc.error_class,
                    attempts,
                    wait,
                )
                self._report(name, ok=False)
                return  # the rest of this receiver's queue waits behind the failed one
            self._store.delivered(delivery.id)
            self._report(name, ok=True)

    async def _resend(self, receiver: Receiver, alerts: Sequence[Notification], now: float) -> None:
        try:
            await send(
                self._client,
                receiver,
                (),
                open_alerts_for_alertmanager=alerts,
                now=now,
                monitor=self._monitor,
            )
        except DeliveryError as exc:
            log.warning(
                "alert receiver %r failed (%s) re-posting %d open alerts",
                receiver.name,
                exc.error_class,
                len(alerts),
            )
            self._report(receiver.name, ok=False)
            return
        self._report(receiver.name, ok=True)

    def _give_up(self, name: str, delivery: Delivery, exc: DeliveryError, attempts: int) -> None:
        n = delivery.notification
        why = "refused it for good" if exc.permanent else f"failed {attempts} times"
        log.warning(
            "alert receiver %r %s (%s): dropping its %s notification for %s %s",
            name,
            why,
            exc.error_class,
            n.kind,
            n.target,
            n.check,
        )
        self._store.give_up(delivery.id)
        self._report(name, ok=False, result=DROPPED)

    def _report(self, name: str, *, ok: bool, result: str | None = None) -> None:
        if self._on_result is None:
            return
        if result is None:
            self._on_result(name, ok)
        else:
            self._on_result(name, ok, result=result)
