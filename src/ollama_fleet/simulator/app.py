"""The ASGI app of the Ollama API simulator, a test double that says so in every answer."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ollama_fleet.simulator import (
    chat,
    control,
    models,
    openai_compat,
    openai_completions,
    openai_embeddings,
    write_endpoints,
)
from ollama_fleet.simulator.config import SimulatorConfig
from ollama_fleet.simulator.middleware import (
    FaultInjector,
    HostCheck,
    SimulatorHeader,
    StatsRecorder,
)
from ollama_fleet.simulator.state import SimulatorState

ROOT_TEXT = "Ollama is running (ollama-fleet simulator: a test double, not Ollama)"
VERSION = "0.12.0-simulator"


async def _root(request: Request) -> Response:
    return PlainTextResponse(ROOT_TEXT)


async def _version(request: Request) -> Response:
    return JSONResponse({"version": VERSION})


async def _not_found(request: Request, exc: Exception) -> Response:
    """Like Ollama's router: unknown paths and wrong methods get a plain 404."""
    if isinstance(exc, HTTPException) and exc.status_code not in (404, 405):
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
    return PlainTextResponse("404 page not found", status_code=404)


async def _server_error(request: Request, exc: Exception) -> Response:
    """The outermost error handler bypasses the middleware, so it labels its answer itself."""
    return JSONResponse(
        {"error": "internal server error (simulator)"},
        status_code=500,
        headers={"X-Ollama-Simulator": "1"},
    )


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    """A fresh simulator app with its own state (models, loaded models, faults, pace, stats)."""
    config = config if config is not None else SimulatorConfig()
    state = SimulatorState(config)
    routes: list[BaseRoute] = [
        Route("/", _root, methods=["GET"]),
        Route("/api/version", _version, methods=["GET"]),
        *models.routes(state),
        *write_endpoints.routes(state),
        *chat.routes(state),
        *openai_compat.routes(state),
        *openai_completions.routes(state),
        *openai_embeddings.routes(state),
        *control.routes(state),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SimulatorHeader),
            Middleware(StatsRecorder, state=state),
            Middleware(HostCheck, enabled=config.loopback_only_hosts),
            Middleware(FaultInjector, state=state),
        ],
        exception_handlers={404: _not_found, 405: _not_found, Exception: _server_error},
    )
    app.state.simulator = state
    return app
