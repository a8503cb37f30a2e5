"""The status page's inline SVG: uptime bars and the response-time / first-token chart.

Both stretch to their box's width at any screen size. The chart keeps its text readable by
drawing the axes in pixels and only the lines in a stretched inner viewBox (strokes keep
their width through `vector-effect`). Colours come from the page's CSS classes, so light and
dark both work; every bar and line also says what it is in words (`<title>`, aria-label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from ollama_fleet.checks.model import Status

from .model import TargetView
from .page_format import clock, milliseconds, span
from .status_facts import markup, status_word

# chart geometry, in pixels: the plot band, then the time labels under it
CHART_HEIGHT = 168
PLOT_TOP = 16
PLOT_HEIGHT = 124
PLOT_WIDTH = 1000  # the inner viewBox's width: x positions are per mille of the width
MAX_POINTS = 500  # more than a wide screen has pixels for; longer series keep each slot's peak
BAR_PITCH = 4  # each bar is 3 units wide with a gap of 1
SERIES: tuple[tuple[str, str], ...] = (
    ("response", "response time"),
    ("first-token", "time to first token"),
)

Points = Sequence[tuple[float, float]]


def uptime_bars(bars: Sequence[Status | None], *, end: float, span_s: float) -> str:
    """One rect per bucket, oldest first, ending at `end`; grey ones had no sample."""
    if not bars:
        return ""
    width = span_s / len(bars)
    counts = {word: 0 for word in ("ok", "warn", "fail", "pending")}
    rects = []
    for index, status in enumerate(bars):
        word = status_word(status)
        counts[word] += 1
        start = end - span_s + index * width
        what = "no data" if status is None else status.value
        tip = f"{_moment(start)}–{_moment(start + width, with_date=False)} UTC: {what}"
        # lean on purpose: a fleet of hundreds of targets has tens of thousands of these
        rects.append(
            f'<rect data-status="{word}" x="{index * BAR_PITCH}" width="{BAR_PITCH - 1}"'
            f' height="24"><title>{markup(tip)}</title></rect>'
        )
    label = (
        f"last {span(span_s)}, {len(bars)} bars of {span(width)}: {counts['ok']} ok, "
        f"{counts['warn']} warn, {counts['fail']} fail, {counts['pending']} without data"
    )
    return (
        f'<svg class="uptime-bars" width="100%" height="24" role="img"'
        f' viewBox="0 0 {len(bars) * BAR_PITCH - 1} 24" preserveAspectRatio="none"'
        f' aria-label="{markup(label)}" data-bars="{len(bars)}">{"".join(rects)}</svg>'
    )


def _moment(at: float, *, with_date: bool = True) -> str:
    moment = datetime.fromtimestamp(at, tz=UTC)
    return moment.strftime("%m-%d %H:%M" if with_date else "%H:%M")


def latency_chart(target: TargetView) -> str:
    """A line chart of the target's response times and times to first token, in ms."""
    series = _series(target)
    every = [p for points in series.values() for p in points]
    if not every:
        return ""
    t0 = min(t for t, _ in every)
    t1 = max(t for t, _ in every)
    if t1 - t0 < 1:
        t0, t1 = t0 - 30, t1 + 30  # one moment: centre it instead of dividing by zero
    top, step = _axis(max(v for _, v in every))
    parts = [f"<title>{markup(_describe(series, target.name))}</title>"]
    for tick in range(round(top / step) + 1):
        value = tick * step
        y = PLOT_TOP + PLOT_HEIGHT - value / top * PLOT_HEIGHT
        parts.append(
            f'<line class="grid-line" x1="0" x2="100%" y1="{y:.1f}" y2="{y:.1f}"></line>'
            f'<text class="axis axis-y" x="2" y="{y - 3:.1f}">{_tick(value)} ms</text>'
        )
    lines = []
    for key, label in SERIES:
        if points := series[key]:
            coords = _coords(points, t0=t0, t1=t1, top=top)
            lines.append(
                f'<polyline class="line line-{key}" data-series="{key}" fill="none"'
                f' vector-effect="non-scaling-stroke" points="{coords}">'
                f"<title>{markup(_legend(label, points))}</title></polyline>"
            )
    parts.append(
        f'<svg class="plot" x="0" y="{PLOT_TOP}" width="100%" height="{PLOT_HEIGHT}"'
        f' viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}" preserveAspectRatio="none"'
        f' overflow="visible">{"".join(lines)}</svg>'
    )
    with_date = t1 - t0 >= 86400
    bottom = CHART_HEIGHT - 4
    parts.append(
        f'<text class="axis axis-x" x="0" y="{bottom}">{clock(t0, with_date=with_date)}</text>'
        f'<text class="axis axis-x" x="100%" y="{bottom}" text-anchor="end">'
        f"{clock(t1, with_date=with_date)}</text>"
    )
    return (
        f'<svg class="chart" width="100%" height="{CHART_HEIGHT}" role="img"'
        f' aria-label="{markup(_describe(series, target.name))}">{"".join(parts)}</svg>'
    )


def chart_legend(target: TargetView) -> list[tuple[str, str]]:
    """(series key, "response time: last 120 ms, max 450 ms") for each series with data."""
    series = _series(target)
    return [(key, _legend(label, series[key])) for key, label in SERIES if series[key]]


def _series(target: TargetView) -> dict[str, list[tuple[float, float]]]:
    """Each series' plottable points (a NaN or negative reading is a gap, not a dip)."""
    raw = {"response": target.response_ms, "first-token": target.first_token_ms}
    return {
        key: [(t, v) for t, v in points if math.isfinite(t) and math.isfinite(v) and v >= 0]
        for key, points in raw.items()
    }


def _axis(peak: float) -> tuple[float, float]:
    """A round top for the y axis and the step between its 2 to 5 grid lines."""
    if peak <= 0:
        return 1.0, 0.5
    raw = peak / 3
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(peak / step - 1e-9), step


def _tick(value: float) -> str:
    return f"{value:g}" if value < 10 else f"{value:.0f}"


def _coords(points: Points, *, t0: float, t1: float, top: float) -> str:
    xy = [
        ((t - t0) / (t1 - t0) * PLOT_WIDTH, PLOT_HEIGHT - v / top * PLOT_HEIGHT) for t, v in points
    ]
    if len(xy) > MAX_POINTS:
        slots: dict[int, tuple[float, float]] = {}
        for x, y in xy:
            slot = int(x / PLOT_WIDTH * (MAX_POINTS - 1))
            # the smallest y is the highest value: keep each slot's peak, spikes matter
            if slot not in slots or y < slots[slot][1]:
                slots[slot] = (x, y)
        xy = [slots[k] for k in sorted(slots)]
    if len(xy) == 1:
        ((x, y),) = xy
        xy = [(max(x - 4, 0), y), (min(x + 4, PLOT_WIDTH), y)]
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)


def _legend(label: str, points: Points) -> str:
    values = [v for _, v in points]
    return f"{label}: last {milliseconds(values[-1])}, max {milliseconds(max(values))}"


def _describe(series: dict[str, list[tuple[float, float]]], name: str) -> str:
    shown = [label for key, label in SERIES if series[key]]
    return f"{' and '.join(shown)} of {name}, in ms"
