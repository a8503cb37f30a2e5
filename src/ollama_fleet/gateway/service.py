"""The gateway process: uvicorn on a socket bound first, SIGHUP reloads, SIGTERM stops gracefully.

SIGHUP re-reads the config file: a good one is applied at once (nodes, keys, limits; streams in
flight go on), a bad one is refused with one logged line and the old one keeps running. A
changed `listen` takes effect on restart (never with --listen, which wins). SIGTERM and
SIGINT stop taking connections; requests in flight get SHUTDOWN_GRACE_S to finish, then the
process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn
import uvloop

from ollama_fleet.errors import FleetError
from ollama_fleet.gateway.app import GatewayApp, create_app
from ollama_fleet.gateway.config import load_config
from ollama_fleet.gateway.settings import GatewayConfig
from ollama_fleet.listen import bind, listen_url

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 30.0  # streams in flight at SIGTERM; systemd's TimeoutStopSec is above it


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the service handles its own signals
        yield


class GatewayService:
    """One running gateway; `run()` returns the exit status."""

    def __init__(
        self, config: GatewayConfig, *, config_path: Path, listen: tuple[str, int] | None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.listen_given = listen is not None  # --listen wins over the file, reloads too
        self.listen = listen if listen is not None else config.listen
        self.app: GatewayApp = create_app(config)
        self._reloads: set[asyncio.Task[bool]] = set()

    async def run(self) -> int:
        sock = bind(*self.listen, source=self.config.source)
        try:  # before anything answers: a database newer than this code stops the start
            await self.app.database.start()
        except FleetError:
            sock.close()
            raise
        server = _Server(
            uvicorn.Config(
                self.app,
                lifespan="on",
                access_log=False,
                log_level="warning",
                timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
                http="httptools",  # C parser: about a third less CPU per request than h11
            )
        )
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if not server.should_exit:
                log.info("gateway: stopping (requests in flight get %g s)", SHUTDOWN_GRACE_S)
            server.should_exit = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        try:
            while not server.started and not serving.done():
                await asyncio.sleep(0.01)
            if server.started:
                log.info(
                    "gateway: listening on %s: %d nodes, %d keys",
                    listen_url(sock),
                    len(self.config.nodes),
                    len(self.config.keys),
                )
            await serving
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            for task in self._reloads:
                task.cancel()
            await asyncio.gather(*self._reloads, return_exceptions=True)
            sock.close()
        log.info("gateway: stopped")
        return 0

    def request_reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> bool:
        """Read the config file again and apply it; False (logged) when it is refused."""
        try:
            config = await asyncio.to_thread(load_config, self.config_path)
        except FleetError as exc:
            log.error("gateway: new config refused, the old one keeps running: %s", exc)
            return False
        except Exception as exc:  # a reload must never take the gateway down
            log.error(
                "gateway: new config refused, the old one keeps running: %s", type(exc).__name__
            )
            return False
        if config.listen != self.config.listen and not self.listen_given:
            log.warning("gateway: listen changed; it takes effect on restart")
        self.config = config
        self.app.reconfigure(config)
        log.info("gateway: config reloaded: %d nodes, %d keys", len(config.nodes), len(config.keys))
        return True


def run_gateway(config_path: Path, *, listen: tuple[str, int] | None = None) -> int:
    """Run the gateway on `config_path` until SIGTERM/SIGINT; the exit status.

    ConfigError (a bad file, a port that cannot be had) is raised before anything listens.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # the pool warns at every reconnect while PostgreSQL is away; the gateway logs it once
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    config = load_config(config_path)
    # uvloop: the relay is event-loop bound (a wake-up per chunk per stream); see
    # docs/performance.md, "Gateway"
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(GatewayService(config, config_path=config_path, listen=listen).run())
