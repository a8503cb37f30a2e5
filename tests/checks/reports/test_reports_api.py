"""The reports package: its public names and the format dispatcher."""

from __future__ import annotations

import pytest

from ollama_fleet.checks import reports
from ollama_fleet.checks.model import CheckRun
from ollama_fleet.errors import ConfigError


def test_public_api() -> None:
    assert reports.FORMATS == ("text", "json", "junit", "html", "csv")
    assert {
        "render",
        "render_text",
        "render_json",
        "render_junit",
        "render_html",
        "FORMATS",
    } <= set(reports.__all__)
    for name in reports.__all__:
        assert hasattr(reports, name)


def test_render_dispatches_to_each_reporter(run: CheckRun) -> None:
    assert reports.render(run, "text") == reports.render_text(run)
    assert reports.render(run, "text", color=True) == reports.render_text(run, color=True)
    assert reports.render(run, "json") == reports.render_json(run)
    assert reports.render(run, "junit") == reports.render_junit(run)
    assert reports.render(run, "html") == reports.render_html(run)
    # color only affects text
    assert reports.render(run, "json", color=True) == reports.render_json(run)


def test_unknown_format_is_a_config_error(run: CheckRun) -> None:
    with pytest.raises(ConfigError, match="unknown report format 'yaml'.*text, json, junit, html"):
        reports.render(run, "yaml")
