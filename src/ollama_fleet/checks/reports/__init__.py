"""Reporters for check runs: pure functions turning a CheckRun into text, JSON, JUnit, HTML, CSV."""

from __future__ import annotations

from collections.abc import Callable

from ollama_fleet.checks.model import CheckRun
from ollama_fleet.errors import ConfigError

from .csv import render_csv
from .html import render_html
from .json import load_schema, render_json
from .junit import render_junit
from .text import render_text, use_color

__all__ = [
    "FORMATS",
    "load_schema",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "render_junit",
    "render_text",
    "use_color",
]

FORMATS: tuple[str, ...] = ("text", "json", "junit", "html", "csv")

_RENDERERS: dict[str, Callable[[CheckRun], str]] = {
    "json": render_json,
    "junit": render_junit,
    "html": render_html,
    "csv": render_csv,
}


def render(run: CheckRun, fmt: str, *, color: bool = False) -> str:
    """Render a run in one of FORMATS; `color` only affects the text format.

    Raises ConfigError (a ValueError) for an unknown format.
    """
    if fmt == "text":
        return render_text(run, color=color)
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ConfigError(
            f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}"
        ) from None
    return renderer(run)
