"""The monitor's HTTP side: /metrics, the status page, its JSON API and badges (read-only)."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.monitor.badges import status_badge, uptime_badge
from ollama_fleet.monitor.engine import Monitor
from ollama_fleet.monitor.model import StatusSnapshot
from ollama_fleet.monitor.page import render_page
from ollama_fleet.monitor.snapshot import build_snapshot
from ollama_fleet.monitor.status_json import status_document

SNAPSHOT_TTL_S = 1.0  # a page, its badges and a scrape of the API in one second share one build

# Nothing on these pages loads from anywhere: no scripts, no fonts, no images but inline SVG.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _Snapshots:
    """Build a snapshot at most once per SNAPSHOT_TTL_S."""

    def __init__(self, monitor: Monitor, clock: Callable[[], float] = time.monotonic) -> None:
        self.monitor = monitor
        self.clock = clock
        self._built: tuple[float, StatusSnapshot] | None = None

    def get(self) -> StatusSnapshot:
        now = self.clock()
        if self._built is None or now - self._built[0] > SNAPSHOT_TTL_S:
            self._built = (now, build_snapshot(self.monitor))
        return self._built[1]


def make_app(monitor: Monitor) -> Starlette:
    """The ASGI app over one running monitor."""
    snapshots = _Snapshots(monitor)

    async def page(request: Request) -> Response:
        html = render_page(snapshots.get(), title=monitor.config.title)
        return HTMLResponse(html, headers=SECURITY_HEADERS)

    async def metrics(request: Request) -> Response:
        body, content_type = monitor.metrics.exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    async def status(request: Request) -> Response:
        document = status_document(snapshots.get())
        return JSONResponse(document, headers={"Cache-Control": "no-store"})

    def svg(badge: str | None, what: str) -> Response:
        if badge is None:
            return JSONResponse({"error": f"no {what}"}, status_code=404)
        return Response(badge, media_type="image/svg+xml", headers=SECURITY_HEADERS)

    async def badge_status(request: Request) -> Response:
        target = request.path_params["target"]
        return svg(status_badge(snapshots.get(), target), f"target {target!r}")

    async def badge_uptime(request: Request) -> Response:
        target, window = request.path_params["target"], request.path_params["window"]
        return svg(uptime_badge(snapshots.get(), target, window), f"target {target!r} or window")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "targets": len(monitor.targets)})

    routes = [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/api/v1/status", status, methods=["GET", "HEAD"]),
        Route("/api/v1/badges/{target}/status.svg", badge_status, methods=["GET", "HEAD"]),
        Route("/api/v1/badges/{target}/uptime/{window}.svg", badge_uptime, methods=["GET", "HEAD"]),
        Route("/healthz", health, methods=["GET", "HEAD"]),
        # browsers ask for it when a badge is opened on its own: no icon, and no 404 either
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET"]),
    ]
    # the page of a large fleet is mostly repeated SVG: it compresses about 15 to 1
    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware, minimum_size=2048)])
