"""Shields-style flat SVG badges of a target's status and uptime, for READMEs and wikis.

`status_badge` says ok / warn / fail / pending; `uptime_badge` the uptime over one of the
windows (1h, 24h, 7d, 30d) of the target's least available check. Both give None for a
target or window the snapshot does not have, which the route answers with a 404.
"""

from __future__ import annotations

from ollama_fleet.checks.model import Status

from .model import StatusSnapshot
from .status_facts import (
    WINDOW_NAMES,
    find_target,
    markup,
    status_word,
    target_uptime,
    uptime_percent,
)

__all__ = ["status_badge", "uptime_badge"]

LABEL_COLOUR = "#555"
GREY = "#9f9f9f"
STATUS_COLOURS = {
    Status.OK.value: "#4c1",
    Status.WARN.value: "#dfb317",
    Status.FAIL.value: "#e05d44",
}
# (lowest uptime, colour), best first: shields' own steps
UPTIME_COLOURS = ((0.999, "#4c1"), (0.99, "#97ca00"), (0.95, "#dfb317"), (0.9, "#fe7d37"))
UPTIME_LOW = "#e05d44"
MAX_LABEL = 40  # a badge is a glance, not a page: longer names end in an ellipsis
PADDING = 6  # on each side of each half's text

# Verdana 11 px advance widths, rounded: narrow, wide and the rest; near enough that the
# text never spills out of its half.
_NARROW = set("fijlrtI!|.,:;'()[] ")
_WIDE = set("mwMW%@")
_UPPER_OR_ROUND = set("ABCDEGHKNOQRSUVXYZ0123456789abdeghnopqu")


def status_badge(snapshot: StatusSnapshot, target: str) -> str | None:
    """`<target> | ok` in green, warn yellow, fail red, pending grey; None: no such target."""
    view = find_target(snapshot, target)
    if view is None:
        return None
    word = status_word(view.status)
    return _badge(view.name, word, STATUS_COLOURS.get(word, GREY))


def uptime_badge(snapshot: StatusSnapshot, target: str, window: str) -> str | None:
    """`uptime 24h | 99.95%`, coloured by how high; None: no such target or window."""
    view = find_target(snapshot, target)
    if view is None or window not in WINDOW_NAMES:
        return None
    ratio = target_uptime(view, window)
    if ratio is None:
        return _badge(f"uptime {window}", "no data", GREY)
    colour = next((c for low, c in UPTIME_COLOURS if ratio >= low), UPTIME_LOW)
    return _badge(f"uptime {window}", uptime_percent(ratio), colour)


def text_width(text: str) -> int:
    """The width of `text` in Verdana 11 px, estimated per character."""
    total = 0.0
    for char in text:
        if char in _NARROW:
            total += 3.6
        elif char in _WIDE:
            total += 10.5
        elif char in _UPPER_OR_ROUND:
            total += 7.4
        else:
            total += 6.6
    return round(total)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _badge(label: str, value: str, colour: str) -> str:
    label, value = _shorten(label), _shorten(value)
    left = text_width(label) + 2 * PADDING
    right = text_width(value) + 2 * PADDING
    width = left + right
    title = markup(f"{label}: {value}")
    safe_label, safe_value = markup(label), markup(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img"'
        f' aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb"'
        ' stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif"'
        ' text-rendering="geometricPrecision" font-size="11">'
        f'<text x="{left / 2:.1f}" y="15" fill="#010101" fill-opacity=".3">{safe_label}</text>'
        f'<text x="{left / 2:.1f}" y="14">{safe_label}</text>'
        f'<text x="{left + right / 2:.1f}" y="15" fill="#010101" fill-opacity=".3">'
        f"{safe_value}</text>"
        f'<text x="{left + right / 2:.1f}" y="14">{safe_value}</text></g></svg>'
    )
