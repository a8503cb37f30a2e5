"""Load tests of Ollama endpoints: n chat requests, c in flight, latency and tokens/s.

The library behind `ollama-fleet loadtest` (docs/loadtest.md): `run_loadtest` drives the
requests, `summarize` does the maths, `render` writes text, JSON or HTML.
"""

from __future__ import annotations

from ollama_fleet.loadtest.model import (
    Api,
    LoadRun,
    LoadSettings,
    RequestOutcome,
    TokenSource,
)
from ollama_fleet.loadtest.reports import FORMATS, render, render_html, render_json, render_text
from ollama_fleet.loadtest.run import run_loadtest
from ollama_fleet.loadtest.stats import Distribution, ErrorGroup, LoadSummary, percentile, summarize

__all__ = [
    "FORMATS",
    "Api",
    "Distribution",
    "ErrorGroup",
    "LoadRun",
    "LoadSettings",
    "LoadSummary",
    "RequestOutcome",
    "TokenSource",
    "percentile",
    "render",
    "render_html",
    "render_json",
    "render_text",
    "run_loadtest",
    "summarize",
]
