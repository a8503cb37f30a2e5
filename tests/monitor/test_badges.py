"""The SVG badges: valid XML, the right words and colours, escaped, None for what is not there."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from ollama_fleet.monitor.badges import (
    GREY,
    LABEL_COLOUR,
    STATUS_COLOURS,
    status_badge,
    text_width,
    uptime_badge,
)

from .snapshots import EDGE_LAB, FLEET, FRESH, HOSTILE, SCRIPT

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str | None) -> ET.Element:
    assert svg is not None
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def words(root: ET.Element) -> list[str]:
    """The badge's visible texts: each is drawn twice (shadow, then text), keep one of each."""
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert texts[0::2] == texts[1::2], "every text has its shadow"
    return texts[1::2]


def value_colour(root: ET.Element) -> str:
    rects = [r for r in root.iter(f"{SVG}rect") if r.get("x") is not None]
    (value,) = rects
    return value.get("fill") or ""


@pytest.mark.parametrize(
    ("target", "word"), [("gpu-eu-1", "warn"), ("gpu-us-2", "fail"), ("edge-lab", "ok")]
)
def test_status_badge_says_the_targets_status(target: str, word: str) -> None:
    root = parse(status_badge(FLEET, target))
    assert words(root) == [target, word]
    assert value_colour(root) == STATUS_COLOURS[word]
    assert root.get("aria-label") == f"{target}: {word}"
    assert root.find(f"{SVG}title") is not None
    assert root.find(f"{SVG}title").text == f"{target}: {word}"  # type: ignore[union-attr]


def test_a_target_not_checked_yet_is_pending_and_grey() -> None:
    root = parse(status_badge(FRESH, "gpu-eu-1"))
    assert words(root) == ["gpu-eu-1", "pending"]
    assert value_colour(root) == GREY


@pytest.mark.parametrize(
    ("target", "window", "value", "colour"),
    [
        # the least available check counts: the chat's 87.5 %, not an average
        ("gpu-us-2", "24h", "87.5%", "#e05d44"),
        ("gpu-us-2", "7d", "97%", "#dfb317"),
        ("gpu-us-2", "30d", "99%", "#97ca00"),
        ("gpu-eu-1", "30d", "99.95%", "#4c1"),
        # a check without data in the window does not count as down
        ("edge-lab", "7d", "100%", "#4c1"),
    ],
)
def test_uptime_badge(target: str, window: str, value: str, colour: str) -> None:
    root = parse(uptime_badge(FLEET, target, window))
    assert words(root) == [f"uptime {window}", value]
    assert value_colour(root) == colour


def test_uptime_without_data_says_so() -> None:
    root = parse(uptime_badge(FRESH, "gpu-us-2", "1h"))
    assert words(root) == ["uptime 1h", "no data"]
    assert value_colour(root) == GREY


@pytest.mark.parametrize("target", ["nope", "GPU-EU-1", ""])
def test_an_unknown_target_has_no_badge(target: str) -> None:
    assert status_badge(FLEET, target) is None
    assert uptime_badge(FLEET, target, "24h") is None


@pytest.mark.parametrize("window", ["2h", "24H", "", "../24h"])
def test_an_unknown_window_has_no_badge(window: str) -> None:
    assert uptime_badge(FLEET, "gpu-eu-1", window) is None


def test_names_are_escaped_and_unprintables_dropped() -> None:
    svg = status_badge(HOSTILE, SCRIPT)
    assert svg is not None and "<script>" not in svg
    assert words(parse(svg)) == [SCRIPT, "warn"]
    # characters XML cannot carry at all would make the whole badge unreadable
    odd = replace(EDGE_LAB, name="lab\x00\x1b[1m&\"'")
    root = parse(status_badge(replace(FLEET, targets=(odd,)), odd.name))
    assert words(root)[0] == "lab\ufffd\ufffd[1m&\"'"


def test_widths_fit_the_text() -> None:
    short = parse(status_badge(FLEET, "edge-lab"))
    long_name = replace(EDGE_LAB, name="a-much-longer-target-name-than-usual")
    long = parse(status_badge(replace(FLEET, targets=(long_name,)), long_name.name))
    assert int(long.get("width") or 0) > int(short.get("width") or 0)
    (label,) = (r for r in long.iter(f"{SVG}rect") if r.get("fill") == LABEL_COLOUR)
    (value,) = (r for r in long.iter(f"{SVG}rect") if r.get("x") is not None)
    assert int(label.get("width") or 0) >= text_width(long_name.name)
    assert int(label.get("width") or 0) + int(value.get("width") or 0) == int(
        long.get("width") or 0
    )
    assert text_width("WWW") > text_width("iii")


def test_a_very_long_name_is_shortened() -> None:
    huge = replace(EDGE_LAB, name="x" * 200)
    root = parse(status_badge(replace(FLEET, targets=(huge,)), huge.name))
    assert words(root)[0] == "x" * 39 + "…"
