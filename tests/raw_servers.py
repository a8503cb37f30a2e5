"""Raw TCP servers on 127.0.0.1 for the checks' tests: each a handler on one asyncio loop.

For what no HTTP server would do on purpose: never answer, send garbage, hang up, stream
forever. The loop runs in a thread; on exit every server closes and every handler still
running is cancelled and awaited, so none is destroyed pending when the loop closes (pytest
would report that in whichever test comes next).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextmanager
def raw_servers(handlers: Mapping[str, Handler]) -> Iterator[dict[str, int]]:
    """Serve each handler on a port of its own; yields {name: port}."""
    loop = asyncio.new_event_loop()
    ports: dict[str, int] = {}

    async def start() -> list[asyncio.Server]:
        servers = []
        for name, handler in handlers.items():
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            ports[name] = server.sockets[0].getsockname()[1]
            servers.append(server)
        return servers

    servers = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield ports
    finally:

        async def shut_down() -> None:
            for server in servers:
                server.close()
            running = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut_down(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
