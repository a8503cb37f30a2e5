"""The Ollama API simulator: a labelled test double of Ollama's HTTP API, not Ollama itself.

It answers Ollama's native endpoints (/api/...) and the OpenAI-compatible ones (/v1/...)
with deterministic content, paced tokens and injectable faults (see `Faults` and the
control endpoints /_simulator/faults, /_simulator/pace and /_simulator/stats, which counts
requests, generations and tokens). Every response carries `X-Ollama-Simulator: 1`.
"""

from __future__ import annotations

from ollama_fleet.simulator.app import create_app
from ollama_fleet.simulator.config import Faults, SimModel, SimulatorConfig, model_from_name
from ollama_fleet.simulator.server import listen, serve, serve_socket

__all__ = [
    "Faults",
    "SimModel",
    "SimulatorConfig",
    "create_app",
    "listen",
    "model_from_name",
    "serve",
    "serve_socket",
]
