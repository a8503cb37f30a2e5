"""The monitor's core: run a scheduled check, then record, measure and judge its result.

`Monitor` holds what the process knows now (the config, the last result of every check, the
models each target holds, the alert states) and one HTTP client per target, reused from run
to run. Each finished check goes to the history, the metrics and the alert machine; a state
change and its notifications are committed together, so a restart neither repeats nor loses one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from ollama_fleet.checks.http import make_client
from ollama_fleet.checks.model import CheckResult, Target
from ollama_fleet.checks.probe import SharedGets
from ollama_fleet.checks.runner import plan_checks, run_one
from ollama_fleet.monitor.alerts import (
    AlertState,
    Notification,
    Phase,
    firing_notification,
    notification,
    open_alert,
    remind,
    step,
)
from ollama_fleet.monitor.metrics import MonitorMetrics
from ollama_fleet.monitor.model import LoadedModel, OpenAlert, Sample
from ollama_fleet.monitor.schedule import Job, Scheduler
from ollama_fleet.monitor.settings import MonitorConfig
from ollama_fleet.monitor.status_facts import display_url
from ollama_fleet.monitor.store import Store

log = logging.getLogger(__name__)

Key = tuple[str, str]

# The checks of one target that start within a few seconds of each other (connectivity and
# models both read /api/tags) share one answer, as within one `ollama-fleet check` run: a
# quarter fewer requests at the default intervals.
SHARE_WINDOW_S = 5.0
SHARE_SHARE_OF_INTERVAL = 0.4  # below 1 - the largest jitter (0.5), with room to spare


def jobs_for(config: MonitorConfig) -> list[Job]:
    """Every check that applies to every target, each on its interval."""
    return [
        Job(target.name, check, config.intervals[check])
        for target in config.targets
        for check in plan_checks(target, config.checks)
    ]


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _timestamp(value: Any) -> float | None:
    """Ollama's RFC 3339 expiry (nanoseconds and all) as Unix seconds; None for none."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None or moment.year < 1971:  # Go's zero time: kept loaded for ever
        return None
    return moment.timestamp()


def loaded_models(result: CheckResult) -> tuple[LoadedModel, ...]:
    """The models a models check saw in /api/ps (its details["loaded_models"])."""
    facts = result.details.get("loaded_models")
    if not isinstance(facts, list):
        return ()
    return tuple(
        LoadedModel(
            name=str(fact["name"]),
            size_bytes=int(fact.get("size") or 0),
            vram_bytes=int(fact.get("size_vram") or 0),
            expires_at=_timestamp(fact.get("expires_at")),
        )
        for fact in facts
        if isinstance(fact, dict) and isinstance(fact.get("name"), str)
    )


class Monitor:
    """What the monitor knows and the job it runs; the service drives it."""

    def __init__(
        self,
        config: MonitorConfig,
        *,
        store: Store,
        metrics: MonitorMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.started_at = clock()
        self.latest: dict[Key, CheckResult] = {}
        self.last_at: dict[Key, float] = {}  # when each latest result came (Unix seconds)
        self.loaded: dict[str, tuple[LoadedModel, ...]] = {}
        self.states: dict[Key, AlertState] = dict(store.alert_states())
        self.targets: dict[str, Target] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._shared: dict[str, SharedGets] = {}
        self._share_window: dict[str, float] = {}  # per target, from its jobs (apply)
        self._retired: dict[httpx.AsyncClient, asyncio.Task[None]] = {}
        self.config = config
        self.scheduler = Scheduler(
            self.execute, concurrency=config.concurrency, jitter=config.jitter
        )
        self.apply(config)

    # -- configuration ---------------------------------------------------------------------

    def apply(self, config: MonitorConfig) -> None:
        """Take a (new) config: keep the history, the alert states and unchanged clients.

        A (target, check) that is no longer scheduled (its target or check removed, or the
        check no longer applies) ends: a firing alert of it is resolved as removed, and its
        state, results and series go, so nothing about it fires or shows for ever.
        """
        old_targets, old_config = self.targets, self.config
        self.config = config
        self.targets = {target.name: target for target in config.targets}
        probe_changed = old_config.probe != config.probe  # timeouts live in the clients
        for name, client in list(self._clients.items()):
            if probe_changed or old_targets.get(name) != self.targets.get(name):
                del self._clients[name]
                self._retire(client)
        jobs = jobs_for(config)
        scheduled = {job.key for job in jobs}
        self._end_unscheduled(scheduled, old_targets)
        for key in [key for key in self.latest if key not in scheduled]:
            del self.latest[key]
            self.last_at.pop(key, None)
        for name in [name for name in self.loaded if name not in self.targets]:
            del self.loaded[name]
        self._shared.clear()  # answers of the old config's targets and timeouts
        self._share_window = {}
        for job in jobs:
            window = min(SHARE_WINDOW_S, SHARE_SHARE_OF_INTERVAL * job.interval_s)
            self._share_window[job.target] = min(window, self._share_window.get(job.target, window))
        self.metrics.forget(self.targets, checks_kept=scheduled)
        for (target, check), state in self.states.items():
            if state.phase is Phase.FIRING:
                self.metrics.set_alert(target, check, state.severity)
        self.scheduler.reconfigure(concurrency=config.concurrency, jitter=config.jitter)
        self.scheduler.set_jobs(jobs)

    def _end_unscheduled(self, scheduled: set[Key], old_targets: Mapping[str, Target]) -> None:
        now = self.clock()
        for (name, check), state in list(self.states.items()):
            if (name, check) in scheduled:
                continue
            notes: tuple[Notification, ...] = ()
            if (
                state.phase is Phase.FIRING
                and state.severity is not None
                and self.config.alerts.send_on_resolved
            ):
                target = old_targets.get(name) or self.targets.get(name)
                notes = (
                    notification(
                        state,
                        "resolved",
                        target=name,
                        check=check,
                        url="" if target is None else display_url(target.url),
                        at=now,
                        summary="no longer monitored: removed from the configuration",
                    ),
                )
                log.info("alert resolved: %s on %s is no longer monitored", check, name)
            self.store.commit_step(name, check, AlertState.initial(), notes, self.receivers)
            del self.states[(name, check)]
        self.store.forget(scheduled)

    def _retire(self, client: httpx.AsyncClient) -> None:
        """Close a replaced client once the checks that may still use it are over."""

        async def close_later() -> None:
            await asyncio.sleep(self.config.probe.check_timeout_s + 1)
            await client.aclose()

        task = asyncio.get_running_loop().create_task(close_later())
        self._retired[client] = task
        task.add_done_callback(lambda _: self._retired.pop(client, None))

    def _shared_gets(self, name: str) -> SharedGets:
        """The GETs of /api/version and /api/tags the checks of `name` may share: those that
        started within the share window (never as old as the target's shortest interval, so
        a check never sees its own previous answer)."""
        window = self._share_window.get(name, 0.0)
        gets = self._shared.setdefault(name, {})
        now = time.monotonic()
        for path in [path for path, get in gets.items() if now - get.started >= window]:
            del gets[path]
        return gets

    def client(self, target: Target) -> httpx.AsyncClient:
        client = self._clients.get(target.name)
        if client is None:
            client = self._clients[target.name] = make_client(target, self.config.probe)
        return client

    # -- one scheduled check ---------------------------------------------------------------

    async def execute(self, job: Job) -> None:
        target = self.targets.get(job.target)
        if target is None:  # removed by a reload while it waited for a slot
            return
        result = await run_one(
            target,
            job.check,
            settings=self.config.probe,
            client=self.client(target),
            shared=self._shared_gets(target.name),
        )
        if self.targets.get(job.target) == target:
            self.record(target, result, at=self.clock())

    def record(self, target: Target, result: CheckResult, *, at: float) -> None:
        """Keep, measure and judge one finished check."""
        key = (target.name, result.check)
        self.latest[key] = result
        self.last_at[key] = at
        if result.check == "models":
            self.loaded[target.name] = loaded_models(result)
            self.metrics.set_loaded(target.name, self.loaded[target.name])
        self.metrics.observe(result, target)
        sample = Sample.from_result(result, at=at)
        state, notifications = step(
            self.states.get(key) or AlertState.initial(),
            sample=sample,
            summary=result.summary,
            url=display_url(target.url),
            policy=self.config.alerts,
        )
        self.store.commit_step(
            target.name, result.check, state, notifications, self.receivers, samples=(sample,)
        )
        self.states[key] = state
        self.metrics.set_alert(
            target.name, result.check, state.severity if state.phase is Phase.FIRING else None
        )
        for note in notifications:
            log.info(
                "alert %s: %s on %s (%s): %s",
                note.kind,
                note.check,
                note.target,
                note.severity,
                note.summary,
            )

    @property
    def receivers(self) -> tuple[str, ...]:
        return tuple(receiver.name for receiver in self.config.receivers)

    # -- periodic chores -------------------------------------------------------------------

    def send_reminders(self) -> int:
        """Queue a reminder for every alert firing longer than the reminder interval."""
        now, sent = self.clock(), 0
        for (name, check), state in list(self.states.items()):
            target = self.targets.get(name)
            if target is None or state.phase is not Phase.FIRING:
                continue
            new, note = remind(
                state,
                now=now,
                url=display_url(target.url),
                target=name,
                check=check,
                policy=self.config.alerts,
            )
            if note is not None:
                self.store.commit_step(name, check, new, (note,), self.receivers)
                sent += 1
            self.states[(name, check)] = new
        return sent

    def open_alerts(self) -> tuple[OpenAlert, ...]:
        """The alerts firing now, of the targets configured now, oldest first."""
        alerts = [
            alert
            for (name, check), state in self.states.items()
            if name in self.targets
            and (alert := open_alert(state, target=name, check=check)) is not None
        ]
        return tuple(sorted(alerts, key=lambda alert: (alert.since, alert.target, alert.check)))

    def firing_notifications(self) -> tuple[Notification, ...]:
        """The open alerts restated, for receivers that want them re-posted (Alertmanager)."""
        now = self.clock()
        notes = [
            firing_notification(
                self.states[(alert.target, alert.check)],
                target=alert.target,
                check=alert.check,
                url=display_url(self.targets[alert.target].url),
                now=now,
            )
            for alert in self.open_alerts()
        ]
        return tuple(note for note in notes if note is not None)

    async def close(self) -> None:
        retired = dict(self._retired)
        for task in retired.values():
            task.cancel()
        await asyncio.gather(*retired.values(), return_exceptions=True)
        clients: Iterable[httpx.AsyncClient] = [*self._clients.values(), *retired]
        self._clients.clear()
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)
