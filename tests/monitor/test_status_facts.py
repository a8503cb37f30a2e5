"""The judgements and formats the page, the JSON and the badges share."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ollama_fleet.monitor.page_format import ago, days_left, milliseconds, size, span
from ollama_fleet.monitor.status_facts import (
    display_url,
    markup,
    missing_models,
    overall_status,
    target_uptime,
    uptime_percent,
)

from .snapshots import EMPTY, FLEET, FRESH, GPU_US_2


@pytest.mark.parametrize(
    ("ratio", "text"),
    [
        (1.0, "100%"),
        (0.99999, "99.99%"),
        (0.9995, "99.95%"),
        (0.995, "99.5%"),
        (0.5, "50%"),
        (0.0, "0%"),
        (1.5, "100%"),
        (-1.0, "0%"),
        (float("nan"), "0%"),
    ],
)
def test_uptime_percent_rounds_down(ratio: float, text: str) -> None:
    assert uptime_percent(ratio) == text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://gpu.example.net", "https://gpu.example.net"),
        ("https://u:p@gpu.example.net:8443/x?key=k#f", "https://gpu.example.net:8443/x"),
        ("http://[::1]:11434/", "http://[::1]:11434/"),
        ("http://[bad", ""),
    ],
)
def test_display_url_drops_credentials_and_query(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_models_compare_the_way_ollama_names_them() -> None:
    target = replace(
        GPU_US_2,
        models_required=("Llama3.2", "library/qwen2.5:7b", "phi4"),
        models_present=("llama3.2:latest", "registry.ollama.ai/library/qwen2.5:7b"),
    )
    assert missing_models(target) == ("phi4",)


def test_the_worst_status_and_the_worst_uptime() -> None:
    assert overall_status(FLEET) is not None and overall_status(FLEET).value == "fail"  # type: ignore[union-attr]
    assert overall_status(FRESH) is None and overall_status(EMPTY) is None
    assert target_uptime(GPU_US_2, "24h") == 0.875  # the chat, the least available check
    assert target_uptime(FRESH.targets[0], "24h") is None


def test_markup_escapes_and_drops_unprintables() -> None:
    assert (
        markup('<a href="x">&\'\x1b\x00') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;\ufffd\ufffd"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.4, "0 s"), (45, "45 s"), (60, "1 min"), (7199, "1 h"), (3 * 86400, "3 d")],
)
def test_span(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_relative_times_and_numbers() -> None:
    assert ago(100.0, now=100.5) == "just now"
    assert ago(100.0, now=160.0) == "1 min ago"
    assert ago(400.0, now=160.0) == "in 4 min"  # a clock ahead of ours
    assert milliseconds(3.44) == "3.4 ms" and milliseconds(1500.2) == "1500 ms"
    assert milliseconds(float("nan")) == "–"
    assert size(512 * 1024**2) == "512 MiB" and size(int(1.25 * 1024**3)) == "1.2 GiB"
    assert size(900) == "900 B" and size(-5) == "0 B"
    assert days_left(0.2) == "0 days left" and days_left(-0.01) == "expired 1 day ago"
