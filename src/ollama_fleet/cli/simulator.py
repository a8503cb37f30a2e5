"""`ollama-fleet simulator`: serve the Ollama API simulator (a test double, not Ollama)."""

from __future__ import annotations

import click

from ollama_fleet.cli._common import CONTEXT


@click.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=11434,
    show_default=True,
    help="Port to listen on; 0 lets the OS pick a free one (the banner says which).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A model the simulator has (repeatable); default: a small built-in set.",
)
@click.option(
    "--tokens-per-second",
    type=click.FloatRange(0),
    default=200.0,
    show_default=True,
    help="Pace of streamed tokens; 0 streams as fast as possible.",
)
def simulator(host: str, port: int, models: tuple[str, ...], tokens_per_second: float) -> None:
    """Serve the Ollama API simulator: a TEST DOUBLE of Ollama's HTTP API, not Ollama.

    It answers /api/tags, /api/chat, /api/pull, /v1/chat/completions and the rest with
    made-up but well-formed data, for tests of clients, proxies and these checks. Faults
    (latency, error codes, broken streams) are set at runtime with PUT /_simulator/faults;
    see docs/simulator.md.

    The banner, printed once the port is bound, says where it listens; a port that is
    taken is a one-line error (exit status 2).
    """
    from ollama_fleet.simulator import SimulatorConfig, serve
    from ollama_fleet.simulator.config import model_from_name

    config = SimulatorConfig(tokens_per_second=tokens_per_second)
    if models:
        config = SimulatorConfig(
            tokens_per_second=tokens_per_second,
            models=tuple(model_from_name(name) for name in models),
        )
    serve(config, host=host, port=port)
