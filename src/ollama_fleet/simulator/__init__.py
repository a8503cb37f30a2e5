"""The Ollama API simulator: a labelled test double of Ollama's HTTP API, not Ollama itself.

It answers Ollama's native endpoints (/api/...) and the OpenAI-compatible ones (/v1/...)
with deterministic content, paced tokens and injectable faults (see `Faults` and the
control endpoint /_simulator/faults). Every response carries `X-Ollama-Simulator: 1`.
"""

from __future__ import annotations

import uvicorn

from ollama_fleet.simulator.app import create_app
from ollama_fleet.simulator.config import Faults, SimModel, SimulatorConfig, model_from_name

__all__ = ["Faults", "SimModel", "SimulatorConfig", "create_app", "model_from_name", "serve"]


def serve(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 11434
) -> None:
    """Run the simulator under uvicorn until interrupted (blocking)."""
    print(
        f"ollama-fleet simulator on http://{host}:{port} "
        "-- a test double of Ollama's API, not Ollama",
        flush=True,
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)
