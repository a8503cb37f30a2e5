"""The status page's inline stylesheet: light and dark, one column on a phone, a grid when wide."""

from __future__ import annotations

STYLE = """
:root {
  --bg: #f5f6f8; --card: #ffffff; --text: #1f2328; --muted: #5d6672; --border: #dde1e6;
  --soft: #f0f2f5; --accent: #3b5bdb; --second: #b35c00; --nodata: #c9ced6;
  --ok: #1a7f37; --ok-bg: #e6f6ea; --warn: #8a5a00; --warn-bg: #fff5d6; --warn-bar: #d4a106;
  --fail: #c4212d; --fail-bg: #ffeceb; --ok-bar: #2da44e; --fail-bar: #d1242f;
  --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
    "Liberation Sans", sans-serif;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1216; --card: #171b21; --text: #e6e8eb; --muted: #9aa3ad; --border: #2b323b;
    --soft: #1e242b; --accent: #8da2fb; --second: #f0a35e; --nodata: #3a424c;
    --ok: #4ac26b; --ok-bg: #12261a; --warn: #e3b341; --warn-bg: #2a2210; --warn-bar: #c99a2e;
    --fail: #ff7b72; --fail-bg: #2d1416; --ok-bar: #3fb950; --fail-bar: #f85149;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.5 var(--sans); }
main { max-width: 1240px; margin: 0 auto; padding: 20px 16px 40px; }
h1, h2, h3, h4 { margin: 0; line-height: 1.25; }
h1 { font-size: 22px; font-weight: 650; }
h2 { font-size: 16px; margin: 28px 0 10px; }
h4 { font-size: 13px; color: var(--muted); font-weight: 600; margin: 14px 0 6px; }
a { color: var(--accent); }
code, .mono { font-family: var(--mono); font-size: 0.92em; }
.muted { color: var(--muted); }
.wrap { overflow-wrap: anywhere; }
.card {
  background: var(--card); border: 1px solid var(--border); border-radius: 10px;
  padding: 14px 16px; min-width: 0;
}
.page-meta { margin: 4px 0 0; color: var(--muted); font-size: 13px; }
.banner {
  margin: 14px 0 0; padding: 12px 16px; border-radius: 10px; font-size: 17px; font-weight: 650;
  border: 1px solid var(--border); border-left-width: 6px; background: var(--card);
}
.banner[data-status="ok"] { border-left-color: var(--ok); background: var(--ok-bg); }
.banner[data-status="warn"] { border-left-color: var(--warn); background: var(--warn-bg); }
.banner[data-status="fail"] { border-left-color: var(--fail); background: var(--fail-bg); }
.pill {
  display: inline-flex; align-items: center; gap: 4px; padding: 1px 9px 1px 7px;
  border-radius: 999px; border: 1px solid currentColor; font-size: 12px; font-weight: 700;
  letter-spacing: 0.03em; white-space: nowrap; color: var(--muted);
}
.pill-ok { color: var(--ok); background: var(--ok-bg); }
.pill-warn { color: var(--warn); background: var(--warn-bg); }
.pill-fail { color: var(--fail); background: var(--fail-bg); }
.alert-list, .overview, .model-list, .loaded-list { list-style: none; margin: 0; padding: 0; }
.alert-list { display: grid; gap: 8px; }
.alert { border-left: 6px solid var(--warn); }
.alert[data-severity="critical"] { border-left-color: var(--fail); }
.alert-head { display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: baseline; }
.alert-summary { margin: 4px 0 0; }
.none { margin: 0; color: var(--muted); }
.overview { display: flex; flex-wrap: wrap; gap: 6px; }
.overview a {
  display: inline-flex; gap: 6px; align-items: center; padding: 3px 10px; max-width: 100%;
  border: 1px solid var(--border); border-radius: 999px; background: var(--card);
  color: var(--text); text-decoration: none; overflow-wrap: anywhere;
}
.targets { display: grid; gap: 14px; grid-template-columns: minmax(0, 1fr); }
@media (min-width: 1000px) { .targets { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.target { border-top: 4px solid var(--border); }
.target[data-status="ok"] { border-top-color: var(--ok); }
.target[data-status="warn"] { border-top-color: var(--warn); }
.target[data-status="fail"] { border-top-color: var(--fail); }
.target-head { display: flex; flex-wrap: wrap; gap: 6px 10px; align-items: center; }
.target-name { font-size: 17px; overflow-wrap: anywhere; }
.simulator {
  font-size: 12px; font-weight: 700; padding: 1px 8px; border-radius: 6px;
  border: 1px dashed var(--second); color: var(--second);
}
.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 12px;
  margin: 10px 0 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
.checks { display: grid; gap: 8px; margin-top: 12px; }
.check { border: 1px solid var(--border); border-radius: 8px; padding: 8px 10px; min-width: 0; }
.check-head { display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: center; }
.check-name { font-weight: 650; }
.last-run { color: var(--muted); font-size: 12px; margin-left: auto; }
.summary { margin: 4px 0 0; overflow-wrap: anywhere; }
.uptime { display: flex; flex-wrap: wrap; gap: 2px 14px; margin: 6px 0 4px; font-size: 12px; }
.uptime div { display: flex; gap: 4px; }
.uptime dt { color: var(--muted); }
.uptime dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; }
.uptime-bars { display: block; }
.uptime-bars [data-status="ok"] { fill: var(--ok-bar); }
.uptime-bars [data-status="warn"] { fill: var(--warn-bar); }
.uptime-bars [data-status="fail"] { fill: var(--fail-bar); }
.uptime-bars [data-status="pending"] { fill: var(--nodata); }
.bars-axis { display: flex; justify-content: space-between; color: var(--muted); font-size: 11px; }
.chart { display: block; overflow: visible; }
.grid-line { stroke: var(--border); stroke-width: 1; }
.axis { fill: var(--muted); font-size: 11px; font-family: var(--sans); }
.line { stroke-width: 2; stroke-linejoin: round; }
.line-response { stroke: var(--accent); }
.line-first-token { stroke: var(--second); stroke-dasharray: 6 4; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 16px; margin: 4px 0 0; padding: 0;
  list-style: none; font-size: 12px; }
.swatch { display: inline-block; width: 18px; height: 0; margin-right: 6px;
  vertical-align: middle; border-top: 2px solid var(--accent); }
.swatch-first-token { border-top: 2px dashed var(--second); }
.model-list { display: flex; flex-wrap: wrap; gap: 4px 14px; }
.model { overflow-wrap: anywhere; }
.model[data-present="false"] { color: var(--fail); font-weight: 650; }
.loaded-list li { overflow-wrap: anywhere; }
.on-cpu { color: var(--warn); font-weight: 650; }
.cert-ok { color: var(--ok); } .cert-warn { color: var(--warn); } .cert-fail { color: var(--fail); }
footer { margin-top: 28px; color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
@media (max-width: 480px) { main { padding: 12px 10px 28px; } .card { padding: 12px; } }
"""
