"""Reports of a load test: text for terminals, a documented JSON document, one HTML page.

The JSON document (schema_version 1; docs/loadtest.md)::

    {"schema": "ollama-fleet-loadtest", "schema_version": 1, "tool_version": "0.1.0",
     "started_at": "2025-01-01T12:00:00Z", "wall_ms": 4210.0, "status": "ok",
     "target": {"url", "model", "api", "stream", "simulator", "server_version"},
     "settings": {"requests", "concurrency", "max_tokens", "timeout_s", "prompt"},
     "requests": {"total", "ok", "failed"},
     "latency_ms": {"count", "mean", "p50", "p95", "p99", "max"},
     "first_token_ms": {... the same ...},
     "tokens_per_s": {"per_request_p50", "per_request_mean", "total"},
     "tokens": {"total"}, "throughput_rps": 47.5,
     "errors": [{"class", "count", "example", "hint"}]}
"""

from __future__ import annotations

import html
import json
import math
import unicodedata
from typing import Any

from ollama_fleet import __version__
from ollama_fleet.errors import ConfigError
from ollama_fleet.loadtest.model import LoadRun
from ollama_fleet.loadtest.stats import Distribution, LoadSummary, summarize

__all__ = ["FORMATS", "SCHEMA_VERSION", "render", "render_html", "render_json", "render_text"]

FORMATS: tuple[str, ...] = ("text", "json", "html")
SCHEMA_VERSION = 1
SIMULATOR_LABEL = "SIMULATOR: these numbers come from the ollama-fleet test double, not Ollama"

_GREEN, _RED, _BOLD, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[1m", "\x1b[0m"


def status_of(summary: LoadSummary) -> str:
    """ok (every request succeeded), fail (some failed) or unreachable (none connected)."""
    if summary.unreachable:
        return "unreachable"
    return "ok" if summary.failed == 0 else "fail"


def one_line(text: str) -> str:
    """Server text made safe for a terminal: one line, controls shown as escapes."""
    return "".join(
        " "
        if ch in "\t\n\r\x0b\x0c"
        else f"\\x{ord(ch):02x}"
        if unicodedata.category(ch) in ("Cc", "Cf")
        else ch
        for ch in text
    )


def _number(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}{unit}"


def _spread(d: Distribution, *, with_max: bool = True) -> str:
    if d.count == 0:
        return "-"
    parts = [f"p50 {_number(d.p50, ' ms')}", f"p95 {_number(d.p95, ' ms')}"]
    parts.append(f"p99 {_number(d.p99, ' ms')}")
    if with_max:
        parts.append(f"max {_number(d.max, ' ms')}")
    return "  ".join(parts)


def _what(run: LoadRun) -> str:
    s = run.settings
    streamed = "streamed" if s.stream else "not streamed"
    return f"{s.url}  model {s.model}  {s.api} API, {streamed}"


def render_text(run: LoadRun, *, color: bool = False) -> str:
    """The report for a terminal; `color` paints the counts (callers check use_color)."""
    summary = summarize(run)

    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    s = run.settings
    ok = paint(f"{summary.ok} ok", _GREEN if summary.ok else "")
    failed = paint(f"{summary.failed} failed", _RED if summary.failed else "")
    lines = [paint(f"ollama-fleet loadtest: {one_line(_what(run))}", _BOLD)]
    if run.simulator:
        lines.append(SIMULATOR_LABEL)
    if run.server_version:
        lines.append(f"server       version {one_line(run.server_version)}")
    tokens = summary.tokens_per_s
    ttft = _spread(summary.first_token_ms, with_max=False)
    lines += [
        f"requests     {summary.requests} sent: {ok}, {failed}  "
        f"(concurrency {s.concurrency}, {summary.wall_ms / 1000:.2f} s)",
        f"throughput   {_number(summary.throughput_rps, ' req/s', 2)}",
        f"latency      {_spread(summary.latency_ms)}",
        f"first token  {ttft if s.stream else '- (only streamed requests have one; --stream)'}",
        f"tokens/s     per request p50 {_number(tokens.p50)}, mean {_number(tokens.mean)}; "
        f"total {_number(summary.total_tokens_per_s)} ({summary.total_tokens:,} tokens)",
    ]
    for i, group in enumerate(summary.errors):
        head = "errors" if i == 0 else ""
        lines.append(
            f"{head:<12} {paint(group.failure_class.value, _RED)} x{group.count}: "
            f"{one_line(group.example)}"
        )
        lines.append(f"{'':<12}   hint: {one_line(group.hint)}")
    return "\n".join(lines) + "\n"


def _finite(value: float | None) -> float | None:
    return round(value, 3) if value is not None and math.isfinite(value) else None


def _distribution(d: Distribution) -> dict[str, Any]:
    return {
        "count": d.count,
        "mean": _finite(d.mean),
        "p50": _finite(d.p50),
        "p95": _finite(d.p95),
        "p99": _finite(d.p99),
        "max": _finite(d.max),
    }


def to_document(run: LoadRun) -> dict[str, Any]:
    """The JSON report as plain Python data (what render_json serialises)."""
    summary = summarize(run)
    s = run.settings
    return {
        "schema": "ollama-fleet-loadtest",
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "started_at": run.started_at,
        "wall_ms": _finite(run.wall_ms),
        "status": status_of(summary),
        "target": {
            "url": s.url,
            "model": s.model,
            "api": s.api.value,
            "stream": s.stream,
            "simulator": run.simulator,
            "server_version": run.server_version,
        },
        "settings": {
            "requests": s.requests,
            "concurrency": s.concurrency,
            "max_tokens": s.max_tokens,
            "timeout_s": s.timeout_s,
            "prompt": s.prompt,
        },
        "requests": {"total": summary.requests, "ok": summary.ok, "failed": summary.failed},
        "latency_ms": _distribution(summary.latency_ms),
        "first_token_ms": _distribution(summary.first_token_ms),
        "tokens_per_s": {
            "per_request_p50": _finite(summary.tokens_per_s.p50),
            "per_request_mean": _finite(summary.tokens_per_s.mean),
            "total": _finite(summary.total_tokens_per_s),
        },
        "tokens": {"total": summary.total_tokens},
        "throughput_rps": _finite(summary.throughput_rps),
        "errors": [
            {"class": g.failure_class.value, "count": g.count, "example": g.example, "hint": g.hint}
            for g in summary.errors
        ],
    }


def render_json(run: LoadRun) -> str:
    """The JSON document: sorted keys, 2-space indent, trailing newline."""
    text = json.dumps(to_document(run), indent=2, sort_keys=True, ensure_ascii=False)
    return text + "\n"


_CSS = """body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;
color:#1d2430}h1{font-size:1.4rem}table{border-collapse:collapse;margin:1rem 0;width:100%}
th,td{border-bottom:1px solid #d8dde6;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f5f9}.n{text-align:right;font-variant-numeric:tabular-nums}
.sim{background:#fff4d6;border:1px solid #e0b84a;padding:.5rem .8rem}
.ok{color:#17803d}.fail,.unreachable{color:#b42318}.hint{color:#5a6475;font-size:.9em}"""


def _escape(text: str) -> str:
    """Server text for HTML: markup escaped, controls (terminal escapes) made visible."""
    return html.escape(one_line(text))


def _row(label: str, *cells: str) -> str:
    tds = "".join(f'<td class="n">{_escape(c)}</td>' for c in cells)
    return f"<tr><th>{_escape(label)}</th>{tds}</tr>"


def render_html(run: LoadRun) -> str:
    """One self-contained page (inline CSS, no script, no external resources)."""
    summary = summarize(run)
    status = status_of(summary)
    e = _escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>ollama-fleet loadtest: {e(run.settings.model)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>Load test: <span class="{status}">{e(status)}</span></h1>',
        f"<p>{e(_what(run))}; {run.settings.requests} requests, concurrency "
        f"{run.settings.concurrency}, started {e(run.started_at)}</p>",
    ]
    if run.simulator:
        parts.append(f'<p class="sim">{e(SIMULATOR_LABEL)}</p>')
    d = summary.latency_ms
    t = summary.first_token_ms
    parts += [
        "<table><tr><th></th>"
        + "".join(f'<th class="n">{p}</th>' for p in ("p50", "p95", "p99", "max"))
        + "</tr>",
        _row("latency (ms)", *(_number(v) for v in (d.p50, d.p95, d.p99, d.max))),
        _row("first token (ms)", *(_number(v) for v in (t.p50, t.p95, t.p99, t.max))),
        "</table><table>",
        _row("requests", f"{summary.requests} sent, {summary.ok} ok, {summary.failed} failed"),
        _row("wall time", f"{summary.wall_ms / 1000:.2f} s"),
        _row("throughput", _number(summary.throughput_rps, " req/s", 2)),
        _row(
            "tokens/s per request",
            f"p50 {_number(summary.tokens_per_s.p50)}, mean {_number(summary.tokens_per_s.mean)}",
        ),
        _row(
            "tokens/s in total",
            f"{_number(summary.total_tokens_per_s)} ({summary.total_tokens:,} tokens)",
        ),
        "</table>",
    ]
    if summary.errors:
        parts.append("<h2>Errors</h2><table><tr><th>class</th><th>count</th><th>first</th></tr>")
        for g in summary.errors:
            parts.append(
                f'<tr><td class="fail">{e(g.failure_class.value)}</td><td class="n">{g.count}'
                f'</td><td>{e(g.example)}<div class="hint">{e(g.hint)}</div></td></tr>'
            )
        parts.append("</table>")
    parts.append(f'<p class="hint">ollama-fleet {e(__version__)}</p></body></html>')
    return "\n".join(parts) + "\n"


def render(run: LoadRun, fmt: str, *, color: bool = False) -> str:
    """The report in one of FORMATS; `color` only affects text. ConfigError for another."""
    if fmt == "text":
        return render_text(run, color=color)
    if fmt == "json":
        return render_json(run)
    if fmt == "html":
        return render_html(run)
    raise ConfigError(f"unknown load test report format {fmt!r}: one of {', '.join(FORMATS)}")
