"""The HTML report: well-formed HTML5, everything escaped, self-contained, ordered by severity."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ollama_fleet.checks.model import CheckRun
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


def test_script_in_a_summary_is_only_ever_escaped(run: CheckRun) -> None:
    html = render_html(run)
    assert "<script" not in html.lower()
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
