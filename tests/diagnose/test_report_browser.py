"""The HTML diagnosis in a real headless chromium: order, the folds, nothing loaded, narrow screens.

One chromium serves the whole module; every page is a file:// URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import Browser, Page
from ollama_fleet.diagnose.reports import render

from .test_reports import SCRIPT, faulty_diagnosis, healthy_diagnosis

pytestmark = pytest.mark.integration

# checkVisibility: chromium hides a closed <details>' content with content-visibility, which
# keeps its boxes (getClientRects) but shows nothing
VISIBLE = "(el) => el.checkVisibility()"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("diagnose-reports")
    for name, diagnosis in (("faulty", faulty_diagnosis()), ("healthy", healthy_diagnosis())):
        (folder / f"{name}.html").write_text(render(diagnosis, "html"), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with Browser.start(tmp_path_factory.mktemp("chromium")) as running:
        yield running


@pytest.fixture
def open_page(browser: Browser, reports: Path) -> Iterator[Any]:
    pages: list[Page] = []

    def open_(name: str, **options: Any) -> Page:
        page = browser.open((reports / f"{name}.html").as_uri(), **options)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def _top(page: Page, selector: str) -> float:
    return float(page.evaluate(f'document.querySelector("{selector}").getBoundingClientRect().top'))


def test_findings_come_first_worst_first(open_page: Any) -> None:
    page = open_page("faulty")
    assert page.evaluate("document.title") == "ollama-fleet diagnose: 5 finding(s)"
    shown = page.evaluate(
        'Array.from(document.querySelectorAll("article.finding")).map((el) => '
        '[el.dataset.severity, el.querySelector(".host").textContent, '
        'el.querySelector(".rule").textContent])'
    )
    assert [tuple(item) for item in shown] == [
        ("critical", "gpu-2", "ssh-unreachable"),
        ("critical", "lab", "ollama-down"),
        ("warning", "edge", "check-chat"),
        ("warning", "lab", "gpu-driver-mismatch"),
        ("info", "lab", "caddy-upstream"),
    ]
    last_finding = page.evaluate(
        'Array.from(document.querySelectorAll("article.finding")).pop()'
        ".getBoundingClientRect().bottom"
    )
    assert last_finding < _top(page, "details.facts")
    # the hostile title is text on the page, not markup
    titles = page.evaluate(
        'Array.from(document.querySelectorAll("article.finding h3")).map((h) => h.textContent)'
    )
    assert f"ollama.service failed {SCRIPT}" in titles
    assert page.evaluate("document.scripts.length") == 0


def test_the_facts_fold_opens(open_page: Any) -> None:
    page = open_page("faulty", javascript=False)
    units = 'document.querySelector("#host-1 [data-fact=units]")'
    assert page.evaluate(f"({VISIBLE})({units})") is False
    # a click on the summary, as a user makes it (scripts are off in the page itself)
    box = page.evaluate(
        '(() => { const s = document.querySelector("#host-1 details.facts > summary");'
        " s.scrollIntoView(); const r = s.getBoundingClientRect();"
        " return [r.left + 10, r.top + r.height / 2]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        page.send(
            "Input.dispatchMouseEvent",
            {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
        )
    assert page.evaluate('document.querySelector("#host-1 details.facts").open') is True
    assert page.evaluate(f"({VISIBLE})({units})") is True
    rows = page.evaluate(
        f"Array.from({units}.querySelector('table.grid').tBodies[0].rows)"
        ".map((tr) => tr.cells[0].textContent)"
    )
    assert rows == ["caddy.service", "ollama-fleet-gateway.service", "ollama.service"]
    # the other hosts stay folded
    assert page.evaluate('document.querySelector("#host-2 details.facts").open') is False


def test_no_request_leaves_the_page(open_page: Any, reports: Path) -> None:
    page = open_page("faulty", watch=("Network",))
    page.evaluate('document.querySelectorAll("details").forEach((d) => { d.open = true; })')
    requested = [e["params"]["request"]["url"] for e in page.events("Network.requestWillBeSent")]
    assert requested == [(reports / "faulty.html").as_uri()]
    assert page.evaluate('performance.getEntriesByType("resource").length') == 0


@pytest.mark.parametrize("name", ["faulty", "healthy"])
def test_a_phone_wide_screen_has_no_horizontal_scroll(open_page: Any, name: str) -> None:
    page = open_page(name)
    page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 800, "deviceScaleFactor": 2, "mobile": True},
    )
    page.evaluate('document.querySelectorAll("details").forEach((d) => { d.open = true; })')
    assert page.evaluate("document.documentElement.clientWidth") == 375
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    # wide things scroll inside their own box instead: the fix command and the unit table
    assert (
        page.evaluate(
            'Array.from(document.querySelectorAll("main *")).filter((el) => '
            "el.getBoundingClientRect().right > 375.5 && !el.closest('.scroll, pre')).length"
        )
        == 0
    )
