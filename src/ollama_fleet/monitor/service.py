"""The monitor process: the scheduler, the HTTP server and the chores in one asyncio loop.

SIGTERM and SIGINT stop it: no new checks, the running ones get `shutdown_grace` to finish,
due alerts one last try, then the store is closed and the process exits 0. SIGHUP re-reads the
config: a good one replaces the old (history and alert states are kept), a bad one is refused
with one logged line and the old one keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

import httpx
import uvicorn

from ollama_fleet.errors import FleetError
from ollama_fleet.listen import bind, listen_url
from ollama_fleet.monitor.app import make_app
from ollama_fleet.monitor.delivery import Dispatcher
from ollama_fleet.monitor.engine import Monitor
from ollama_fleet.monitor.gpu import GpuCollector
from ollama_fleet.monitor.metrics import MonitorMetrics
from ollama_fleet.monitor.settings import MonitorConfig
from ollama_fleet.monitor.store import Store

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 1.0
REMINDERS_EVERY_S = 30.0
PRUNE_EVERY_S = 3600.0
FLUSH_BOUND_S = 5.0  # the last delivery attempt at shutdown


Reload = Callable[[], MonitorConfig]


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the monitor handles its own signals
        pass


class MonitorService:
    """One running monitor; `run()` returns the exit status."""

    def __init__(self, config: MonitorConfig, *, reload: Reload) -> None:
        self.config = config
        self.reload_config = reload
        self.stopping = asyncio.Event()
        self._reloads: set[asyncio.Task[None]] = set()

    async def run(self, *, ready: Callable[[str], None] | None = None) -> int:
        config = self.config
        sock = bind(config.listen_host, config.listen_port, source=str(config.source), backlog=128)
        store = Store.open(config.state_dir)
        gpu = GpuCollector.start(config.gpu)
        metrics = MonitorMetrics(collectors=[gpu])
        client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        monitor = Monitor(config, store=store, metrics=metrics)
        dispatcher = Dispatcher(
            store,
            config.receivers,
            client,
            retry_s=config.alerts.retry_s,
            on_result=metrics.count_delivery,
            open_alerts=monitor.firing_notifications,
        )
        self.monitor, self.dispatcher = monitor, dispatcher
        server = _Server(
            uvicorn.Config(make_app(monitor), log_level="warning", access_log=False, lifespan="off")
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        tasks = [
            asyncio.create_task(monitor.scheduler.run(), name="scheduler"),
            asyncio.create_task(server.serve(sockets=[sock]), name="http"),
            asyncio.create_task(dispatcher.run(self.stopping), name="delivery"),
            asyncio.create_task(self._chores(monitor), name="chores"),
        ]
        url = listen_url(sock, path="/")
        log.info(
            "monitor: %d targets, %d checks scheduled; status page and /metrics on %s; state in %s",
            len(config.targets),
            len(monitor.scheduler.jobs),
            url,
            config.state_dir,
        )
        if ready is not None:
            ready(url)
        try:
            stopped = asyncio.create_task(self.stopping.wait())
            await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            stopped.cancel()
        finally:
            await self._shut_down(monitor, dispatcher, server, tasks)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            await monitor.close()
            await client.aclose()
            store.close()
            gpu.close()
            sock.close()
        log.info("monitor: stopped")
        return 0

    async def _shut_down(
        self,
        monitor: Monitor,
        dispatcher: Dispatcher,
        server: uvicorn.Server,
        tasks: list[asyncio.Task[None]],
    ) -> None:
        log.info("monitor: stopping (in-flight checks get %g s)", self.config.shutdown_grace_s)
        self.stopping.set()
        monitor.scheduler.stop()
        cancelled = await monitor.scheduler.drain(self.config.shutdown_grace_s)
        if cancelled:
            log.info("monitor: %d checks cancelled at shutdown", cancelled)
        # the delivery loop ends its current round first (stopping is set), so the last
        # round below never sends what that one is still sending
        delivery = next(task for task in tasks if task.get_name() == "delivery")
        await asyncio.wait([delivery], timeout=FLUSH_BOUND_S)
        if delivery.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(dispatcher.run_once(time.time()), FLUSH_BOUND_S)
        server.should_exit = True
        for task in self._reloads:
            task.cancel()
        done, pending = await asyncio.wait(tasks, timeout=FLUSH_BOUND_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, *self._reloads, return_exceptions=True)

    def request_reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload(self) -> None:
        try:
            config = await asyncio.to_thread(self.reload_config)
        except FleetError as exc:
            log.error("monitor: new config refused, the old one keeps running: %s", exc)
            return
        except Exception as exc:  # a reload must never take the monitor down
            log.error(
                "monitor: new config refused, the old one keeps running: %s",
                type(exc).__name__,
            )
            return
        old = self.config
        if (config.listen_host, config.listen_port) != (old.listen_host, old.listen_port):
            log.warning("monitor: listen changed; it takes effect on restart")
        if config.state_dir != old.state_dir:
            log.warning("monitor: state_dir changed; it takes effect on restart")
        self.config = config
        self.monitor.apply(config)
        self.dispatcher.set_receivers(config.receivers, retry_s=config.alerts.retry_s)
        log.info(
            "monitor: config reloaded: %d targets, %d checks scheduled",
            len(config.targets),
            len(self.monitor.scheduler.jobs),
        )

    async def _chores(self, monitor: Monitor) -> None:
        """The monitor's own health metrics, alert reminders and the history's retention."""
        last_reminders = last_prune = 0.0
        while True:
            stats = monitor.scheduler.stats
            for lag in stats.drain_lags():
                monitor.metrics.observe_lag(lag)
            monitor.metrics.set_queue(queued=stats.queued, in_flight=stats.in_flight)
            now = time.monotonic()
            try:
                if now - last_reminders >= REMINDERS_EVERY_S:
                    last_reminders = now
                    monitor.send_reminders()
                if now - last_prune >= PRUNE_EVERY_S:
                    last_prune = now
                    config = monitor.config
                    removed = monitor.store.prune(
                        time.time(), config.retention_s, config.rollup_retention_s
                    )
                    if removed:
                        log.info("monitor: %d old history rows removed", removed)
            except Exception:
                log.exception("monitor: a periodic chore failed")
            await asyncio.sleep(HEALTH_EVERY_S)


def quiet_http_logs() -> None:
    """httpx logs every request with its URL at INFO: receiver URLs are secrets."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_monitor(config: MonitorConfig, *, reload: Reload) -> int:
    """Run the monitor until SIGTERM/SIGINT; the exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    quiet_http_logs()
    return asyncio.run(MonitorService(config, reload=reload).run())
