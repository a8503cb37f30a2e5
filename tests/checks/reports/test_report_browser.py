"""The HTML report in a real headless chromium: the filter, timing bars, order, rendering.

One chromium serves the whole module; every page is a file:// URL (nothing else can load:
the report's CSP and the browser's flags both forbid it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import Browser, Page, chromium_binary
from ollama_fleet.checks.model import CheckRun
from ollama_fleet.checks.reports.html import FILTER_FRAGMENT, render_html

pytestmark = pytest.mark.integration

# What the page looks like to a user: what is displayed, in the order it is laid out.
VISIBLE = "(el) => el.getClientRects().length > 0"
SHOWN_CHECKS = f"""
Array.from(document.querySelectorAll("article.check"))
  .filter({VISIBLE})
  .map((el) => [el.closest("section.target").querySelector("h2").textContent,
                el.querySelector(".check-name").textContent,
                el.dataset.status])
"""
SHOWN_HOSTS = f"""
Array.from(document.querySelectorAll("section.target"))
  .filter({VISIBLE})
  .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
  .map((el) => el.querySelector("h2").textContent)
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, sample_runs: dict[str, CheckRun]) -> Path:
    folder = tmp_path_factory.mktemp("reports")
    for name, run in sample_runs.items():
        (folder / f"{name}.html").write_text(render_html(run), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with Browser.start(tmp_path_factory.mktemp("chromium")) as running:
        yield running


@pytest.fixture
def open_page(browser: Browser, reports: Path) -> Iterator[Any]:
    pages: list[Page] = []

    def open_(name: str, fragment: str = "", *, javascript: bool = True) -> Page:
        url = (reports / f"{name}.html").as_uri() + (f"#{fragment}" if fragment else "")
        page = browser.open(url, javascript=javascript)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def test_hide_ok_from_the_url_fragment(open_page: Any) -> None:
    page = open_page("mixed", FILTER_FRAGMENT)
    assert page.evaluate('document.getElementById("hide-ok").checked') is True
    assert page.evaluate(f'({VISIBLE})(document.getElementById("filter"))') is True
    # only the problems are left: ok checks gone, and edge-lab (all ok) gone entirely
    assert page.evaluate(SHOWN_CHECKS) == [
        ["gpu-us-2", "models", "fail"],
        ["gpu-us-2", "chat", "fail"],
        ["gpu-us-2", "exposure", "fail"],
        ["gpu-us-2", "auth", "warn"],
        ["gpu-eu-1", "tls", "warn"],
    ]
    assert page.evaluate(SHOWN_HOSTS) == ["gpu-us-2", "gpu-eu-1"]
    # the script hides with the hidden attribute: visible in the DOM, not only in the layout
    hidden = page.evaluate(
        'Array.from(document.querySelectorAll("article[hidden]")).map((el) => el.dataset.status)'
    )
    assert hidden == ["ok"] * 13
    overview = page.evaluate(
        'Array.from(document.querySelectorAll(".overview tbody tr"))'
        f".filter({VISIBLE}).map((el) => el.querySelector('a').textContent)"
    )
    assert overview == ["gpu-us-2", "gpu-eu-1"]
    assert page.evaluate('document.getElementById("filter-count").textContent') == (
        "1 ok host(s), 13 ok check(s) hidden"
    )


def test_everything_shows_until_the_box_is_ticked(open_page: Any) -> None:
    page = open_page("mixed")
    assert page.evaluate('document.getElementById("hide-ok").checked') is False
    assert len(page.evaluate(SHOWN_CHECKS)) == 18
    assert page.evaluate(SHOWN_HOSTS) == ["gpu-us-2", "gpu-eu-1", "edge-lab"]
    page.evaluate('document.getElementById("hide-ok").click()')
    assert len(page.evaluate(SHOWN_CHECKS)) == 5
    # the address now opens the filtered view, to share or reload
    assert page.evaluate("location.hash") == f"#{FILTER_FRAGMENT}"
    page.evaluate('document.getElementById("hide-ok").click()')
    assert len(page.evaluate(SHOWN_CHECKS)) == 18
    assert page.evaluate("location.hash") == ""


def test_following_a_link_keeps_the_filter(open_page: Any) -> None:
    page = open_page("mixed", FILTER_FRAGMENT)
    page.evaluate('document.querySelector(".overview tbody a").click()')
    assert page.evaluate("location.hash") == "#t0"
    assert page.evaluate('document.getElementById("hide-ok").checked') is True
    assert len(page.evaluate(SHOWN_CHECKS)) == 5


def test_without_javascript_everything_shows_and_no_dead_control(open_page: Any) -> None:
    page = open_page("mixed", FILTER_FRAGMENT, javascript=False)
    assert len(page.evaluate(SHOWN_CHECKS)) == 18
    assert page.evaluate(SHOWN_HOSTS) == ["gpu-us-2", "gpu-eu-1", "edge-lab"]
    # the checkbox would do nothing without the script, so it is not shown
    assert page.evaluate(f'({VISIBLE})(document.getElementById("filter"))') is False


def test_an_all_ok_run_filtered_says_so(open_page: Any) -> None:
    page = open_page("all_ok", FILTER_FRAGMENT)
    assert page.evaluate(SHOWN_HOSTS) == []
    note = page.evaluate(
        f'(() => {{ const n = document.getElementById("all-ok-note");'
        f" return ({VISIBLE})(n) ? n.textContent : null; }})()"
    )
    assert note == 'Every host is ok: untick "Hide ok" to see them.'


def _bars(page: Page) -> list[dict[str, Any]]:
    return list(
        page.evaluate(
            """
Array.from(document.querySelectorAll("article.check")).map((el) => {
  const bar = el.querySelector(".tbar");
  return {
    host: el.closest("section.target").querySelector("h2").textContent,
    check: el.querySelector(".check-name").textContent,
    width: bar ? bar.getBoundingClientRect().width : null,
    segments: bar ? Array.from(bar.children).map((s) => ({
      phase: s.className.replace("seg seg-", ""),
      px: s.getBoundingClientRect().width,
      ms: Number(s.dataset.ms),
    })) : [],
    legend: Array.from(el.querySelectorAll(".tlegend li")).map((li) => li.textContent.trim()),
  };
})
"""
        )
    )


def test_timing_bars_are_drawn_to_scale(open_page: Any) -> None:
    bars = {(b["host"], b["check"]): b for b in _bars(open_page("mixed"))}
    connectivity = bars[("edge-lab", "connectivity")]
    assert [s["phase"] for s in connectivity["segments"]] == [
        "connect",
        "tls",
        "first-byte",
        "rest",
    ]
    assert connectivity["legend"] == [
        "connect 12.4 ms",
        "TLS 30.1 ms",
        "first byte 80.2 ms",
        "total 95.4 ms",
    ]
    # the widest connectivity fills its track; each segment's drawn width is its share
    width = connectivity["width"]
    assert width > 200
    for segment in connectivity["segments"]:
        assert segment["px"] == pytest.approx(width * segment["ms"] / 95.4, abs=1.0)
    # chat bars share one scale (the slowest chat, 1210.5 ms): the fast one is shorter
    eu_chat = bars[("gpu-eu-1", "chat")]
    us_chat = bars[("gpu-us-2", "chat")]
    assert sum(s["px"] for s in eu_chat["segments"]) == pytest.approx(width, abs=1.0)
    assert sum(s["px"] for s in us_chat["segments"]) == pytest.approx(width * 388 / 1210.5, abs=1)
    assert bars[("edge-lab", "chat")]["legend"] == ["first token 420.0 ms"]
    # a check without timings draws no bar
    no_bar = sorted({c for (_, c), b in bars.items() if b["width"] is None})
    assert no_bar == ["auth", "exposure", "models", "tls"]


def test_exposure_summary_shows_every_port(open_page: Any) -> None:
    page = open_page("mixed")
    rows = page.evaluate(
        'Array.from(document.querySelectorAll(".exposure tr.port")).filter('
        + VISIBLE
        + ").map((tr) => Array.from(tr.cells).map((c) => c.textContent.trim()))"
    )
    assert [row[-3:] for row in rows][:4] == [
        ["22", "open", "✓OK"],
        ["8443", "open", "✓OK"],
        ["9090", "timeout no answer (filtered)", "✓OK"],
        ["11434", "open", "✕FAIL"],
    ]
    assert len(rows) == 8


def test_renders_with_nothing_loaded_from_outside(open_page: Any, tmp_path: Path) -> None:
    page = open_page("mixed")
    # no sub-resource at all (no font, image, style sheet), and no script but the report's
    assert page.evaluate('performance.getEntriesByType("resource").length') == 0
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("document.title").startswith("FAIL · ollama-fleet check report")
    png = page.screenshot(tmp_path / "report.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width == 1280
    # the whole page, longer than one screen: three host cards, the overview and the summaries
    assert height == page.evaluate("document.documentElement.scrollHeight") > 2000


def test_a_missing_chromium_fails_with_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"`apt-get install chromium`"):
        chromium_binary()
