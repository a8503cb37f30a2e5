"""The status page in a real headless chromium, served over HTTP from 127.0.0.1.

One chromium and one uvicorn for the module. The page is asserted through the DOM as laid
out: statuses, alerts, the chart's lines and the uptime bars, no console errors, no request
beyond the server, nothing wider than a phone, dark mode, a hostile snapshot inert.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from browser import Browser, Page
from ollama_fleet.monitor.badges import status_badge
from ollama_fleet.monitor.model import LoadedModel
from ollama_fleet.monitor.page import render_page
from ollama_fleet.testbed.servers import serve_in_thread

from .snapshots import BARS, EDGE_LAB, FLEET, GPU_EU_1, HOSTILE, SCRIPT

pytestmark = pytest.mark.integration

WATCH = ("Network", "Log", "Runtime", "Page")
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
# the tests read the page for longer than a 30 s refresh would leave it alone
STILL = replace(FLEET, refresh_s=600)
# words longer than a phone is wide, everywhere a snapshot can put them
LONG_WORD = "x" * 90
LONG = replace(
    EDGE_LAB,
    name=f"edge-{LONG_WORD}",
    url=f"https://{LONG_WORD}.example.net/{LONG_WORD}",
    version=f"0.5.7-{LONG_WORD}",
    groups=(LONG_WORD,),
    checks=(replace(EDGE_LAB.checks[0], summary=f"HTTP 200 from {LONG_WORD}"),),
    models_required=(f"{LONG_WORD}:latest",),
    models_present=(f"{LONG_WORD}:latest",),
    models_loaded=(LoadedModel(name=LONG_WORD, size_bytes=1, vram_bytes=1),),
)
PAGES = {
    "/": STILL,
    "/long": replace(STILL, targets=(*STILL.targets, LONG)),
    "/hostile": replace(HOSTILE, refresh_s=600),
    "/refreshing": replace(FLEET, refresh_s=1),
}


def _app() -> Starlette:
    async def page(request: Request) -> Response:
        snapshot = PAGES[request.url.path]
        return HTMLResponse(render_page(snapshot, title="Fleet <status>"))

    async def badge(request: Request) -> Response:
        svg = status_badge(STILL, request.path_params["target"])
        if svg is None:
            return Response(status_code=404)
        return Response(svg, media_type="image/svg+xml")

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [Route(path, page) for path in PAGES]
    routes.append(Route("/api/v1/badges/{target}/status.svg", badge))
    routes.append(Route("/favicon.ico", no_icon))
    return Starlette(routes=routes)


@dataclass(frozen=True)
class Site:
    browser: Browser
    base: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with (
        serve_in_thread(_app()) as port,
        Browser.start(tmp_path_factory.mktemp("chromium"), allow_loopback=True) as browser,
    ):
        yield Site(browser, f"http://127.0.0.1:{port}")


@pytest.fixture
def open_page(site: Site) -> Iterator[Any]:
    pages: list[Page] = []

    def open_(path: str) -> Page:
        page = site.browser.open(site.base + path, watch=WATCH)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def _problems(page: Page) -> list[str]:
    """Console errors, uncaught exceptions and browser log errors (CSP, failed loads)."""
    found = [
        f"console.{e['params']['type']}"
        for e in page.events("Runtime.consoleAPICalled")
        if e["params"]["type"] in ("error", "assert", "warning")
    ]
    found += [str(e["params"]) for e in page.events("Runtime.exceptionThrown")]
    found += [
        f"{e['params']['entry']['source']}: {e['params']['entry']['text']}"
        for e in page.events("Log.entryAdded")
        if e["params"]["entry"]["level"] in ("error", "warning")
    ]
    return found


def _requested(page: Page) -> list[str]:
    return [e["params"]["request"]["url"] for e in page.events("Network.requestWillBeSent")]


def test_the_page_loads_clean_and_only_from_its_server(open_page: Any, site: Site) -> None:
    page = open_page("/")
    assert page.evaluate("document.title") == "FAIL · Fleet <status>"
    assert _problems(page) == []
    assert _requested(page) == [f"{site.base}/"]
    # nothing asked for anything while the page was read either
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0


def test_statuses_and_alerts_as_a_person_sees_them(open_page: Any) -> None:
    page = open_page("/")
    assert page.evaluate("document.getElementById('banner').innerText.trim()") == (
        "✕ 1 fail · 1 warn · 1 ok"
    )
    statuses = page.evaluate(
        """Array.from(document.querySelectorAll("section.target")).map((el) => [
             el.dataset.target,
             el.querySelector(".target-status").innerText.split(/\\s+/).join(" ").trim(),
             el.getBoundingClientRect().height > 100])"""
    )
    assert statuses == [
        ["gpu-eu-1", "! WARN", True],
        ["gpu-us-2", "✕ FAIL", True],
        ["edge-lab", "✓ OK", True],
    ]
    alerts = page.evaluate(
        """Array.from(document.querySelectorAll("#alerts li.alert")).map((el) =>
             [el.dataset.target, el.dataset.check, el.querySelector(".since").innerText])"""
    )
    assert alerts == [
        ["gpu-us-2", "models", "firing for 2 h"],
        ["gpu-us-2", "chat", "firing for 15 min · success rate too low"],
        ["gpu-eu-1", "tls", "firing for 2 d"],
    ]
    # the alerts come before the targets on the screen, not only in the source
    assert page.evaluate(
        "document.getElementById('alerts').getBoundingClientRect().bottom <="
        " document.querySelector('section.target').getBoundingClientRect().top"
    )
    simulator = page.evaluate(
        "document.querySelector('[data-target=\"edge-lab\"] .simulator').innerText"
    )
    assert simulator == "Ollama API simulator"


CHART = """(() => {
  const chart = document.querySelector('section[data-target="gpu-eu-1"] svg.chart');
  const box = chart.getBoundingClientRect();
  return {
    width: box.width,
    lines: Array.from(chart.querySelectorAll("polyline")).map((line) => {
      const r = line.getBoundingClientRect();
      return {series: line.dataset.series, points: line.points.numberOfItems,
              inside: r.left >= box.left - 1 && r.right <= box.right + 1
                      && r.top >= box.top - 1 && r.bottom <= box.bottom + 1,
              width: r.width, stroke: getComputedStyle(line).stroke};
    }),
    labels: Array.from(chart.querySelectorAll("text.axis-y")).map((t) => t.textContent),
  };
})()"""


def test_the_chart_is_drawn_inside_its_box(open_page: Any) -> None:
    chart = open_page("/").evaluate(CHART)
    assert chart["width"] > 400
    assert [line["series"] for line in chart["lines"]] == ["response", "first-token"]
    for line in chart["lines"]:
        assert line["points"] == len(GPU_EU_1.response_ms)
        assert line["inside"], line
        # the line spans the whole time axis
        assert line["width"] == pytest.approx(chart["width"], abs=4)
    assert chart["lines"][0]["stroke"] != chart["lines"][1]["stroke"]
    assert chart["labels"][0] == "0 ms" and all(t.endswith(" ms") for t in chart["labels"])


BARS_JS = """Array.from(document.querySelectorAll("article.check")).map((el) => {
  const rects = Array.from(el.querySelectorAll("svg.uptime-bars rect"));
  return [el.dataset.target, el.dataset.check, rects.length,
          rects.filter((r) => r.getBoundingClientRect().width > 0).length,
          Array.from(new Set(rects.map((r) => r.dataset.status + "=" + getComputedStyle(r).fill)))];
})"""


def test_uptime_bars_one_per_bucket_in_their_colours(open_page: Any) -> None:
    rows = open_page("/").evaluate(BARS_JS)
    assert len(rows) == sum(len(t.checks) for t in FLEET.targets)
    assert all(count == drawn == BARS for _, _, count, drawn, _ in rows)
    chat = next(r for r in rows if r[:2] == ["gpu-us-2", "chat"])
    colours = dict(pair.split("=") for pair in chat[4])
    assert set(colours) == {"ok", "warn", "fail"}
    assert len(set(colours.values())) == 3  # three statuses, three colours


def test_a_phone_sees_everything_without_scrolling_sideways(open_page: Any, site: Site) -> None:
    page = open_page("/long")
    page.send("Emulation.setDeviceMetricsOverride", PHONE)
    page.navigate(site.base + "/long")
    assert page.evaluate("innerWidth") == PHONE["width"]
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    wider = page.evaluate(
        """Array.from(document.querySelectorAll("body *"))
             .filter((el) => el.getBoundingClientRect().right > innerWidth + 0.5)
             .map((el) => el.tagName + "." + el.getAttribute("class"))"""
    )
    assert wider == []
    # the chart shrinks with the screen, its labels stay readable
    width, font = page.evaluate(
        """(() => { const c = document.querySelector("svg.chart");
             return [c.getBoundingClientRect().width,
                     parseFloat(getComputedStyle(c.querySelector("text")).fontSize)]; })()"""
    )
    assert 250 < width < PHONE["width"] and font >= 11
    assert _problems(page) == []


def test_dark_mode_changes_the_colours(open_page: Any) -> None:
    page = open_page("/")
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.send(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    text = page.evaluate("getComputedStyle(document.body).color")
    assert light != dark and dark != text


def test_a_hostile_snapshot_stays_text(open_page: Any) -> None:
    page = open_page("/hostile")
    assert page.evaluate("document.querySelectorAll('script, img').length") == 0
    assert page.evaluate("document.querySelector('section.target h3').textContent") == SCRIPT
    assert page.events("Page.javascriptDialogOpening") == []
    assert _problems(page) == []


def test_the_page_reloads_itself(open_page: Any, site: Site) -> None:
    page = open_page("/refreshing")
    page.evaluate("window.marker = 1")
    # the meta refresh (1 s here) loads the page again: a new document without the marker
    site.browser.wait_for_event("Page.loadEventFired", session_id=page.session_id)
    assert page.evaluate("typeof window.marker") == "undefined"
    assert _requested(page).count(f"{site.base}/refreshing") >= 2


def test_a_badge_opens_as_an_svg_image(open_page: Any, site: Site) -> None:
    page = open_page("/api/v1/badges/gpu-us-2/status.svg")
    assert page.evaluate("document.documentElement.tagName") == "svg"
    assert page.evaluate("document.documentElement.getBoundingClientRect().width") > 60
    texts = page.evaluate("Array.from(document.querySelectorAll('text')).map((t) => t.textContent)")
    assert texts == ["gpu-us-2", "gpu-us-2", "fail", "fail"]
    # a document that is not HTML gets the browser to ask for /favicon.ico: same server
    assert all(url.startswith(site.base + "/") for url in _requested(page))
    assert _problems(page) == []
