"""Reporters for a diagnosis: pure functions turning a Diagnosis into HTML, Markdown, JSON, text."""

from __future__ import annotations

from collections.abc import Callable

from ollama_fleet.diagnose.findings import Diagnosis
from ollama_fleet.errors import ConfigError

from .html import render_html
from .json import load_schema, render_json
from .markdown import render_markdown
from .text import render_text

__all__ = [
    "FORMATS",
    "load_schema",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "render_text",
]

FORMATS: tuple[str, ...] = ("text", "html", "md", "json")

_RENDERERS: dict[str, Callable[[Diagnosis], str]] = {
    "html": render_html,
    "md": render_markdown,
    "json": render_json,
    "text": render_text,
}


def render(diagnosis: Diagnosis, fmt: str) -> str:
    """Render a diagnosis in one of FORMATS; ConfigError (a ValueError) for any other."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ConfigError(
            f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}"
        ) from None
    return renderer(diagnosis)
