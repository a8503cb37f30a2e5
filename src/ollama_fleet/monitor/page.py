"""The status page: one self-contained HTML document rendered from a StatusSnapshot.

No external resources and no script (the Content-Security-Policy forbids both); it reloads
itself every `refresh_s`. Top to bottom: the banner (all ok, or how many targets warn or
fail), the open alerts, a row of every target, then one card per target in the snapshot's
order: its checks with uptime over 1 h / 24 h / 7 d / 30 d and uptime bars, a chart of
response time and time to first token, the certificate and the models. Every value from
the snapshot goes through `markup`; status is always a word beside its colour.

Stable hooks for tests and people: `#banner`, `#alerts`, `#targets`, and `data-target`,
`data-check`, `data-status` (ok, warn, fail, pending) on every target and check.
"""

from __future__ import annotations

import hashlib
import re

from ollama_fleet import __version__

from .model import UPTIME_WINDOWS, CheckView, OpenAlert, StatusSnapshot, TargetView
from .page_format import clock, days_left, milliseconds, span, time_tag
from .page_models import models_block
from .page_style import STYLE
from .page_svg import chart_legend, latency_chart, uptime_bars
from .status_facts import (
    alert_order,
    count_targets,
    display_url,
    is_simulated,
    iso_utc,
    markup,
    overall_status,
    status_word,
    uptime_percent,
)

__all__ = ["render_page"]

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; script-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)
LABELS = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "pending": "PENDING"}
ICONS = {"ok": "✓", "warn": "!", "fail": "✕", "pending": "…"}
_ID_SAFE = re.compile(r"[^a-z0-9_-]+")


def render_page(snapshot: StatusSnapshot, *, title: str, base_path: str = "") -> str:
    """The whole page; `base_path` prefixes its links when it is served below a path."""
    base = base_path.rstrip("/")
    worst = status_word(overall_status(snapshot))
    refresh = (
        f'<meta http-equiv="refresh" content="{int(snapshot.refresh_s)}">\n'
        if snapshot.refresh_s > 0
        else ""
    )
    body = "\n".join(
        (
            _head(snapshot, title=title, worst=worst),
            _alerts(snapshot),
            _targets(snapshot),
            _footer(snapshot, base=base),
        )
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{refresh}"
        f'<meta name="generator" content="ollama-fleet {markup(__version__)}">\n'
        f"<title>{LABELS[worst]} · {markup(title)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _pill(word: str) -> str:
    return (
        f'<span class="pill pill-{word}" data-status="{word}">'
        f'<span aria-hidden="true">{ICONS[word]}</span>{LABELS[word]}</span>'
    )


def target_id(name: str) -> str:
    """The target card's element id: `target-<name>` where the name is id-safe."""
    slug = _ID_SAFE.sub("-", name.lower()).strip("-") or "target"
    if slug == name:
        return f"target-{slug}"
    return f"target-{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _banner_text(snapshot: StatusSnapshot) -> str:
    counts = count_targets(snapshot)
    if counts.targets == 0:
        return "No targets to watch yet"
    if counts.pending == counts.targets:
        return f"{counts.targets} target{'s' if counts.targets != 1 else ''}, not checked yet"
    if counts.ok == counts.targets:
        return "1 target, ok" if counts.targets == 1 else f"All {counts.targets} targets ok"
    parts = [
        f"{n} {word}"
        for n, word in ((counts.fail, "fail"), (counts.warn, "warn"), (counts.ok, "ok"))
        if n
    ]
    if counts.pending:
        parts.append(f"{counts.pending} not checked yet")
    return " · ".join(parts)


def _head(snapshot: StatusSnapshot, *, title: str, worst: str) -> str:
    version = f" · monitor {markup(snapshot.monitor_version)}" if snapshot.monitor_version else ""
    refresh = f" · refreshes every {span(snapshot.refresh_s)}" if snapshot.refresh_s > 0 else ""
    return (
        f'<header class="page-head">\n<h1>{markup(title)}</h1>\n'
        f'<p class="page-meta">Updated <time datetime="{iso_utc(snapshot.generated_at)}">'
        f"{clock(snapshot.generated_at)}</time>{refresh}{version}</p>\n"
        f'<p class="banner" id="banner" role="status" data-status="{worst}">'
        f'<span aria-hidden="true">{ICONS[worst]}</span> {markup(_banner_text(snapshot))}</p>\n'
        "</header>"
    )


def _firing(alert: OpenAlert, *, now: float) -> str:
    return (
        f'<time datetime="{iso_utc(alert.since)}" title="since {clock(alert.since)}">'
        f"{span(max(now - alert.since, 0.0))}</time>"
    )


def _alerts(snapshot: StatusSnapshot) -> str:
    now = snapshot.generated_at
    items = []
    for alert in sorted(snapshot.alerts, key=alert_order):
        word = "fail" if alert.severity.value == "critical" else "warn"
        reason = " · success rate too low" if alert.reason == "success_rate" else ""
        items.append(
            f'<li class="alert card" data-target="{markup(alert.target)}"'
            f' data-check="{markup(alert.check)}" data-severity="{markup(alert.severity.value)}">'
            f'<div class="alert-head">{_pill(word)} <span class="severity">'
            f"{markup(alert.severity.value)}</span>"
            f' <a class="alert-target wrap" href="#{target_id(alert.target)}">'
            f"{markup(alert.target)}</a>"
            f' <span class="alert-check">{markup(alert.check)}</span>'
            f' <span class="since muted">firing for {_firing(alert, now=now)}'
            f"{reason}</span></div>"
            f'<p class="alert-summary wrap">{markup(alert.summary)}</p></li>'
        )
    inner = (
        f'<ol class="alert-list">{"".join(items)}</ol>'
        if items
        else '<p class="none">No open alerts.</p>'
    )
    return (
        f'<section id="alerts" aria-labelledby="alerts-title" data-count="{len(items)}">'
        f'<h2 id="alerts-title">Open alerts ({len(items)})</h2>{inner}</section>'
    )


def _targets(snapshot: StatusSnapshot) -> str:
    if not snapshot.targets:
        return (
            '<section id="targets" aria-labelledby="targets-title">'
            '<h2 id="targets-title">Targets (0)</h2>'
            '<p class="none">No targets are configured: add some to monitor.yml.</p></section>'
        )
    overview = "".join(
        f'<li><a href="#{target_id(t.name)}" data-target="{markup(t.name)}">'
        f"{_pill(status_word(t.status))} {markup(t.name)}</a></li>"
        for t in snapshot.targets
    )
    cards = "\n".join(_target(snapshot, t) for t in snapshot.targets)
    return (
        f'<section id="targets" aria-labelledby="targets-title">'
        f'<h2 id="targets-title">Targets ({len(snapshot.targets)})</h2>'
        f'<ul class="overview" aria-label="all targets">{overview}</ul>'
        f'<div class="targets">\n{cards}\n</div></section>'
    )


def _target(snapshot: StatusSnapshot, target: TargetView) -> str:
    word = status_word(target.status)
    simulated = is_simulated(snapshot, target)
    badge = (
        '<span class="simulator" title="not a real Ollama: the test double of its API">'
        "Ollama API simulator</span>"
        if simulated
        else ""
    )
    facts = [("URL", f'<span class="mono">{markup(display_url(target.url))}</span>')]
    if target.version:
        facts.append(("Version", f"Ollama {markup(target.version)}"))
    if target.groups:
        facts.append(("Groups", markup(", ".join(target.groups))))
    if target.cert_days_left is not None:
        facts.append(("Certificate", _certificate(target, target.cert_days_left)))
    rows = "".join(f"<dt>{key}</dt><dd>{value}</dd>" for key, value in facts)
    checks = "".join(_check(snapshot, target, check) for check in target.checks)
    if not checks:
        checks = '<p class="none">No checks apply to this target.</p>'
    return (
        f'<section class="target card" id="{target_id(target.name)}"'
        f' data-target="{markup(target.name)}" data-status="{word}"'
        f' data-simulated="{"true" if simulated else "false"}">'
        f'<div class="target-head"><h3 class="target-name">{markup(target.name)}</h3>'
        f' <span class="target-status">{_pill(word)}</span> {badge}</div>'
        f'<dl class="facts">{rows}</dl>'
        f'<div class="checks">{checks}</div>'
        f"{_chart(target)}{models_block(target, now=snapshot.generated_at)}</section>"
    )


def _certificate(target: TargetView, days: float) -> str:
    tls = next((c for c in target.checks if c.check == "tls" and c.status is not None), None)
    klass = f' class="cert-{tls.status.value}"' if tls is not None and tls.status else ""
    return f'<span{klass} data-days="{days:.1f}">{markup(days_left(days))}</span>'


def _check(snapshot: StatusSnapshot, target: TargetView, check: CheckView) -> str:
    now = snapshot.generated_at
    word = status_word(check.status)
    if check.at is None:
        last = "not run yet"
    else:
        took = f" · took {milliseconds(check.elapsed_ms)}" if check.elapsed_ms is not None else ""
        last = f"{time_tag(check.at, now=now)}{took}"
    every = f" · every {span(check.interval_s)}" if check.interval_s > 0 else ""
    summary = check.summary or ("waiting for the first run" if check.status is None else "")
    uptime = "".join(
        f'<div data-window="{name}"><dt>{name}</dt><dd>{_ratio(check.uptime.get(name))}</dd></div>'
        for name, _ in UPTIME_WINDOWS
    )
    bars = uptime_bars(check.bars, end=now, span_s=snapshot.bars_span_s)
    axis = (
        f'<div class="bars-axis" aria-hidden="true"><span>{span(snapshot.bars_span_s)} ago</span>'
        "<span>now</span></div>"
        if bars
        else ""
    )
    return (
        f'<article class="check" data-target="{markup(target.name)}"'
        f' data-check="{markup(check.check)}" data-status="{word}">'
        f'<div class="check-head"><span class="check-name">{markup(check.check)}</span>'
        f" {_pill(word)}"
        f' <span class="last-run">{last}{every}</span></div>'
        f'<p class="summary">{markup(summary)}</p>'
        f'<dl class="uptime" aria-label="uptime">{uptime}</dl>{bars}{axis}</article>'
    )


def _ratio(ratio: float | None) -> str:
    return '<span class="muted">no data</span>' if ratio is None else uptime_percent(ratio)


def _chart(target: TargetView) -> str:
    chart = latency_chart(target)
    if not chart:
        return '<h4>Response time</h4><p class="none chart-empty">No response times yet.</p>'
    legend = "".join(
        f'<li data-series="{key}"><span class="swatch swatch-{key}" aria-hidden="true"></span>'
        f"{markup(text)}</li>"
        for key, text in chart_legend(target)
    )
    return (
        '<div class="chart-block"><h4>Response time and time to first token (ms)</h4>'
        f'{chart}<ul class="legend">{legend}</ul></div>'
    )


def _footer(snapshot: StatusSnapshot, *, base: str) -> str:
    api = f"{base}/api/v1/status"
    return (
        f'<footer>Also as JSON: <a href="{markup(api)}">{markup(api)}</a> · badges at '
        f"<code>{markup(base)}/api/v1/badges/TARGET/status.svg</code> and "
        f"<code>{markup(base)}/api/v1/badges/TARGET/uptime/24h.svg</code> · "
        f"{len(snapshot.targets)} target{'s' if len(snapshot.targets) != 1 else ''}</footer>"
    )
