"""The HTML report: well-formed HTML5, everything escaped, self-contained, ordered by severity."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from importlib import resources

from ollama_fleet.checks.model import CheckResult, CheckRun, RunContext, ok
from ollama_fleet.checks.reports.html import render_html

VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class StrictParser(HTMLParser):
    """Collects text and tags and records every structural error html.parser lets through."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype: str | None = None
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.ids: list[str] = []
        self._capture: list[str] | None = None
        self.captured: dict[str, list[str]] = {}

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.starts.append((tag, attributes))
        if attributes.get("id"):
            self.ids.append(str(attributes["id"]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.errors.append(f"self-closing non-void <{tag}/>")
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.errors.append(f"end tag for void element </{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(html)
    parser.close()
    return parser


def _text(parser: StrictParser) -> str:
    return re.sub(r"\s+", " ", "".join(parser.text))


def test_is_well_formed_html5(run: CheckRun, all_ok_run: CheckRun, empty_run: CheckRun) -> None:
    for r in (run, all_ok_run, empty_run):
        html = render_html(r)
        assert html.startswith("<!DOCTYPE html>\n")
        parser = _parse(html)
        assert parser.doctype == "DOCTYPE html"
        assert parser.errors == []
        assert parser.stack == []
        assert len(parser.ids) == len(set(parser.ids)), "duplicate ids"
        html_tag = [a for t, a in parser.starts if t == "html"]
        assert html_tag == [{"lang": "en"}]
        assert ("meta", {"charset": "utf-8"}) in parser.starts
        assert [t for t, _ in parser.starts].count("title") == 1


def test_every_target_and_check_is_shown(run: CheckRun) -> None:
    parser = _parse(render_html(run))
    text = _text(parser)
    for result in run.results:
        assert result.target in text
        assert result.check in text
        assert result.url in text
    articles = [a for t, a in parser.starts if t == "article"]
    assert len(articles) == len(run.results)
    assert sum(1 for a in articles if "st-fail" in (a.get("class") or "")) == 3
    assert sum(1 for a in articles if "st-warn" in (a.get("class") or "")) == 2


def _own_script() -> str:
    return (
        resources.files("ollama_fleet.checks.reports")
        .joinpath("templates", "hide_ok.js")
        .read_text(encoding="utf-8")
    )


def test_script_in_a_summary_is_only_ever_escaped(run: CheckRun) -> None:
    html = render_html(run)
    # the one script is the report's own filter, inline
    assert html.lower().count("<script") == 1
    assert f"<script>{_own_script()}</script>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&amp; “bröken” 模型" in html
    # The parser sees it as text, so a browser would show it, not run it.
    text = _text(_parse(html))
    assert "unexpected body <script>alert(1)</script> & “bröken” 模型" in text
    assert "<html><script>alert(1)</script></html>" in text  # details values too
    assert "\x1b" not in html


def test_self_contained(run: CheckRun) -> None:
    html = render_html(run)
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:|//|file:)""", html, re.I)
    assert "<link" not in html
    assert "@import" not in html
    assert "url(" not in html
    parser = _parse(html)
    hrefs = [a["href"] for t, a in parser.starts if t == "a" and a.get("href")]
    assert hrefs and all(str(h).startswith("#") for h in hrefs)
    assert {str(h)[1:] for h in hrefs} <= set(parser.ids)


def test_overall_status_and_counts(run: CheckRun, all_ok_run: CheckRun) -> None:
    parser = _parse(render_html(run))
    badge = [a for _, a in parser.starts if a.get("role") == "status"]
    assert len(badge) == 1
    assert badge[0]["aria-label"] == "overall status: FAIL"
    assert "pill-fail" in str(badge[0]["class"])
    text = _text(parser)
    assert "3 targets, 18 checks" in text
    assert "13 OK" in text and "2 Warnings" in text and "3 Failures" in text
    assert "2025-06-01 09:30:00 UTC" in text
    assert "2.84 s" in text

    ok_badge = [a for _, a in _parse(render_html(all_ok_run)).starts if a.get("role") == "status"]
    assert ok_badge[0]["aria-label"] == "overall status: OK"


def test_status_is_readable_without_colour(run: CheckRun) -> None:
    text = _text(_parse(render_html(run)))
    assert "✕FAIL" in text.replace(" ", "")
    assert "!WARN" in text.replace(" ", "")
    assert "✓OK" in text.replace(" ", "")


def test_failing_targets_and_checks_come_first(run: CheckRun) -> None:
    parser = _parse(render_html(run))
    sections = [a["id"] for t, a in parser.starts if t == "section" and a.get("id")]
    titles = re.findall(r'<h2 id="t\d+-title">([^<]+)</h2>', render_html(run))
    assert titles == ["gpu-us-2", "gpu-eu-1", "edge-lab"]
    assert len(sections) == 3
    checks = [a["class"] for t, a in parser.starts if t == "article"]
    first_target = checks[:6]
    assert first_target[:3] == ["check st-fail"] * 3
    assert first_target[3] == "check st-warn"
    assert first_target[4:] == ["check st-ok"] * 2


def test_hints_and_classes_are_shown(run: CheckRun) -> None:
    text = _text(_parse(render_html(run)))
    for result in run.results:
        if result.hint and result.failure_class:
            assert result.hint in text
            assert result.failure_class.value in text


def test_details_are_key_value_tables_not_json(run: CheckRun) -> None:
    html = render_html(run)
    parser = _parse(html)
    row_headers = {t for t in re.findall(r'<th scope="row">([^<]+)</th>', html)}
    assert {"protocol", "cipher", "days_left", "http_version", "first byte"} <= row_headers
    text = _text(parser)
    assert "12.4 ms" in text and "388.0 ms" in text
    assert "1.9 GiB" in text  # model sizes are humanised
    assert "&#34;connect_ms&#34;" not in html and '"connect_ms"' not in html
    assert "{&#34;" not in html
    details = [t for t, _ in parser.starts if t == "details"]
    assert len(details) == len(run.results)


def test_empty_run_says_so(empty_run: CheckRun) -> None:
    text = _text(_parse(render_html(empty_run)))
    assert "No checks were run." in text
    assert "0 targets, 0 checks" in text


def test_only_the_reports_own_script_may_run(run: CheckRun) -> None:
    parser = _parse(render_html(run))
    csp = [a["content"] for t, a in parser.starts if t == "meta" and a.get("http-equiv")]
    digest = base64.b64encode(hashlib.sha256(_own_script().encode()).digest()).decode()
    assert csp == [
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    ]


def _context(html: str) -> list[tuple[str, str]]:
    """The (label, markup) rows of the header's context list."""
    if '<dl class="context">' not in html:
        return []
    block = html.split('<dl class="context">', 1)[1].split("</dl>", 1)[0]
    return re.findall(r"<dt>([^<]+)</dt><dd>(.*?)</dd>", block)


def test_header_shows_where_the_run_came_from(run: CheckRun, all_ok_run: CheckRun) -> None:
    assert _context(render_html(run)) == [
        ("Command", "<code>ollama-fleet check inventories/production.yml -o report.html</code>"),
        ("Inventory", "inventories/production.yml"),
        ("Controller", "ci-runner-3"),
    ]
    # a run without context (a library caller) shows none of the three
    assert _context(render_html(all_ok_run)) == []
    assert '<dl class="context">' not in render_html(all_ok_run)


def test_command_is_escaped_and_only_given_parts_show() -> None:
    result = CheckResult(
        target="t", url="https://t", check="tls", findings=(ok("fine"),), elapsed_ms=1.0
    )
    run = CheckRun(
        results=(result,),
        started_at="2025-06-01T10:00:00Z",
        duration_ms=1.0,
        targets=("t",),
        context=RunContext(command="ollama-fleet check --url 'https://a?x=<b>&y=1'"),
    )
    assert _context(render_html(run)) == [
        ("Command", "<code>ollama-fleet check --url &#39;https://a?x=&lt;b&gt;&amp;y=1&#39;</code>")
    ]


def _groups_of(html: str) -> dict[str, list[str]]:
    """Host name -> the group chips next to it in its card."""
    found = re.findall(
        r'<h2 id="t\d+-title">([^<]+)</h2>\s*(?:<ul class="groups"[^>]*>(.*?)</ul>)?', html
    )
    return {name: re.findall(r"<li>([^<]+)</li>", chips) for name, chips in found}


def test_host_groups_and_the_group_summary(run: CheckRun) -> None:
    html = render_html(run)
    assert _groups_of(html) == {
        "gpu-us-2": ["gpu", "us"],
        "gpu-eu-1": ["gpu", "eu"],
        "edge-lab": [],
    }
    summary = html.split('id="groups-title"', 1)[1].split("</section>", 1)[0]
    rows = [
        (name, re.findall(r"pill-(ok|warn|fail)", row)[:1], re.findall(r'"num">(\d+)</td>', row))
        for name, row in re.findall(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', summary)
    ]
    # group, its worst host's status, then hosts, fail, warn, ok (by each host's worst status)
    assert rows == [
        ("eu", ["warn"], ["1", "0", "1", "0"]),
        ("gpu", ["fail"], ["2", "1", "1", "0"]),
        ("us", ["fail"], ["1", "1", "0", "0"]),
    ]


def test_no_group_summary_without_groups(all_ok_run: CheckRun) -> None:
    html = render_html(all_ok_run)
    assert 'id="groups-title"' not in html
    assert '<ul class="groups"' not in html


def test_hosts_of_one_status_are_ordered_by_name() -> None:
    names = ("gpu-10", "gpu-2", "Alpha")
    results = tuple(
        CheckResult(target=n, url=f"https://{n}", check="tls", findings=(ok("x"),), elapsed_ms=1)
        for n in names
    )
    run = CheckRun(
        results=results, started_at="2025-06-01T10:00:00Z", duration_ms=1.0, targets=names
    )
    titles = re.findall(r'<h2 id="t\d+-title">([^<]+)</h2>', render_html(run))
    assert titles == ["Alpha", "gpu-2", "gpu-10"]


def _bars(html: str) -> dict[str, list[tuple[str, str]]]:
    """Check anchor -> its timing bar's (phase, width) segments."""
    bars: dict[str, list[tuple[str, str]]] = {}
    for anchor, body in re.findall(r'<article [^>]*id="([^"]+)"[^>]*>(.*?)</article>', html, re.S):
        segments = re.findall(r'<span class="seg seg-([a-z-]+)" style="width: ([\d.]+)%"', body)
        if '<div class="tbar"' in body:
            bars[anchor] = segments
    return bars


def _anchor(html: str, target: str, check: str) -> str:
    """The anchor of `target`'s `check` article."""
    section = html.split(f'-title">{target}</h2>', 1)[1].split("</section>", 1)[0]
    for anchor, body in re.findall(
        r'<article [^>]*id="([^"]+)"[^>]*>(.*?)</article>', section, re.S
    ):
        if f'<div class="check-name">{check}</div>' in body:
            return str(anchor)
    raise AssertionError(f"no {check} check for {target}")


def test_timing_bar_per_check_with_timings(run: CheckRun) -> None:
    html = render_html(run)
    bars = _bars(html)
    # connectivity (connect 12.4, TLS 30.1, first byte at 80.2, total 95.4) on the widest
    # connectivity scale (95.4 ms): the wait for the first byte is 80.2 - 42.5 = 37.7 ms
    assert bars[_anchor(html, "edge-lab", "connectivity")] == [
        ("connect", "13.0"),
        ("tls", "31.55"),
        ("first-byte", "39.52"),
        ("rest", "15.93"),
    ]
    # chat bars share the widest chat (1210.5 ms); the older top-level first_token_ms counts
    assert bars[_anchor(html, "edge-lab", "chat")] == [("first-token", "34.7")]
    assert bars[_anchor(html, "gpu-us-2", "chat")][0] == ("connect", "1.16")
    # checks that measured no phase have no bar
    for target in ("gpu-us-2", "gpu-eu-1", "edge-lab"):
        for check in ("tls", "models", "auth", "exposure"):
            assert _anchor(html, target, check) not in bars
    assert len(bars) == 6
    text = _text(_parse(html))
    assert "connect 12.4 ms TLS 30.1 ms first byte 80.2 ms total 95.4 ms" in text
    assert "first token 420.0 ms" in text


def _exposure_rows(html: str) -> list[list[str]]:
    section = html.split('id="exposure-title"', 1)[1].split("</section>", 1)[0]
    rows = []
    for row in re.findall(r'<tr class="port">(.*?)</tr>', section, re.S):
        cells = [
            re.sub(r"<[^>]+>|\s+", " ", c).split()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        rows.append([" ".join(c) for c in cells])
    return rows


def test_exposure_summary_lists_every_port(run: CheckRun) -> None:
    rows = _exposure_rows(render_html(run))
    assert rows == [
        ["gpu-us-2", "22", "open", "✓ OK"],
        ["8443", "open", "✓ OK"],
        ["9090", "timeout no answer (filtered)", "✓ OK"],
        ["11434", "open", "✕ FAIL"],
        ["gpu-eu-1", "443", "open", "✓ OK"],
        ["11434", "refused closed: nothing listens", "✓ OK"],
        ["edge-lab", "443", "open", "✓ OK"],
        ["11434", "refused closed: nothing listens", "✓ OK"],
    ]


def test_filter_is_marked_up_but_off_without_script(run: CheckRun) -> None:
    parser = _parse(render_html(run))
    control = [a for t, a in parser.starts if a.get("id") == "filter"]
    assert control == [{"class": "filter", "id": "filter", "hidden": None}]
    box = [a for t, a in parser.starts if t == "input"]
    assert box == [{"type": "checkbox", "id": "hide-ok"}]
    # nothing is hidden in the markup itself: only the script hides
    assert [
        a
        for t, a in parser.starts
        if "hidden" in a and a.get("id") not in ("filter", "all-ok-note")
    ] == []
    statuses = [a["data-status"] for t, a in parser.starts if t == "article"]
    assert statuses.count("ok") == 13 and len(statuses) == 18
