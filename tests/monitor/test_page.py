"""The status page as HTML: what it says, in what order, safely, and with nothing external."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser

import pytest

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.model import CheckView, LoadedModel, StatusSnapshot, TargetView
from ollama_fleet.monitor.page import render_page, target_id

from .snapshots import (
    BARS,
    EDGE_LAB,
    EMPTY,
    FLEET,
    FRESH,
    GPU_EU_1,
    GPU_US_2,
    HOSTILE,
    INJECTION,
    NOW,
    SCRIPT,
    SECRET,
)

TITLE = "Ollama fleet status"
VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    parts: list[str | Node] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def iter(self) -> list[Node]:
        found = [self]
        for child in self.children:
            found.extend(child.iter())
        return found

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()[1:]
            if (tag is None or n.tag == tag)
            and all(
                (v in n.attrs.get("class", "").split())
                if k == "klass"
                else n.attrs.get(k.replace("_", "-")) == v
                for k, v in attrs.items()
            )
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag}> with {attrs}"
        return found[0]


class _Builder(HTMLParser):
    """A strict little tree builder: a tag closed out of order fails the test."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    assert [n.tag for n in builder.stack] == ["#document"], "unclosed elements"
    return builder.root


def page_of(snapshot: StatusSnapshot, **kwargs: str) -> tuple[str, Node]:
    html = render_page(snapshot, title=TITLE, **kwargs)
    return html, parse(html)


def squash(text: str) -> str:
    return " ".join(text.split())


def spaced(node: Node) -> str:
    """The words of `node` as a person reads them: elements apart, whitespace squashed."""
    words = (p if isinstance(p, str) else spaced(p) for p in node.parts)
    return squash(" ".join(words))


@pytest.fixture(scope="module")
def fleet() -> tuple[str, Node]:
    return page_of(FLEET)


def test_nothing_on_the_page_loads_from_anywhere(fleet: tuple[str, Node]) -> None:
    html, root = fleet
    assert html.startswith("<!DOCTYPE html>")
    assert not root.find_all("script") and not root.find_all("link")
    assert not root.find_all("img") and not root.find_all("iframe")
    for node in root.iter():
        assert "src" not in node.attrs, node.tag
        href = node.attrs.get("href")
        if href is not None:
            assert href.startswith(("#", "/")), href
    style = root.find("style").text
    assert "url(" not in style and "@import" not in style
    csp = root.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp and "script-src 'none'" in csp


def test_the_page_refreshes_itself_at_the_snapshots_interval() -> None:
    _, root = page_of(replace(FLEET, refresh_s=45))
    assert root.find("meta", http_equiv="refresh").attrs["content"] == "45"
    assert "refreshes every 45 s" in spaced(root.find("header"))
    # 0 means never: a refresh of 0 s would reload the page without end
    _, still = page_of(replace(FLEET, refresh_s=0))
    assert not still.find_all("meta", http_equiv="refresh")


def test_phone_and_dark_mode_are_provided_for(fleet: tuple[str, Node]) -> None:
    html, root = fleet
    viewport = root.find("meta", name="viewport").attrs["content"]
    assert "width=device-width" in viewport
    assert "@media (prefers-color-scheme: dark)" in html


@pytest.mark.parametrize(
    ("snapshot", "status", "text"),
    [
        (FLEET, "fail", "1 fail · 1 warn · 1 ok"),
        (replace(FLEET, targets=(EDGE_LAB, replace(EDGE_LAB, name="b"))), "ok", "All 2 targets ok"),
        (replace(FLEET, targets=(EDGE_LAB,)), "ok", "1 target, ok"),
        (
            replace(FLEET, targets=(GPU_EU_1, FRESH.targets[0])),
            "warn",
            "1 warn · 1 not checked yet",
        ),
        (FRESH, "pending", "2 targets, not checked yet"),
        (EMPTY, "pending", "No targets to watch yet"),
    ],
)
def test_the_banner_sums_up_the_fleet(snapshot: StatusSnapshot, status: str, text: str) -> None:
    _, root = page_of(snapshot)
    banner = root.find(id="banner")
    assert banner.attrs["data-status"] == status
    assert spaced(banner).endswith(text)
    assert root.find("title").text.startswith(status.upper())


def test_open_alerts_come_first_worst_and_oldest_first(fleet: tuple[str, Node]) -> None:
    html, root = fleet
    assert html.index('id="alerts"') < html.index('id="targets"')
    alerts = root.find(id="alerts")
    assert spaced(alerts.find("h2")) == "Open alerts (3)"
    rows = [
        (a.attrs["data-target"], a.attrs["data-check"], a.attrs["data-severity"], spaced(a))
        for a in alerts.find_all("li", klass="alert")
    ]
    assert [r[:3] for r in rows] == [
        ("gpu-us-2", "models", "critical"),
        ("gpu-us-2", "chat", "critical"),
        ("gpu-eu-1", "tls", "warning"),
    ]
    assert "firing for 2 h" in rows[0][3] and "1 required model missing: qwen2.5:7b" in rows[0][3]
    assert "firing for 15 min · success rate too low" in rows[1][3]
    assert "firing for 2 d" in rows[2][3]
    # the alert links to its target's card
    link = alerts.find("a").attrs["href"]
    assert link == f"#{target_id('gpu-us-2')}" and root.find(id=link[1:]).tag == "section"


def test_no_alerts_says_so() -> None:
    _, root = page_of(replace(FLEET, alerts=()))
    assert spaced(root.find(id="alerts")) == "Open alerts (0) No open alerts."


def test_every_target_with_its_status_url_version_and_checks(fleet: tuple[str, Node]) -> None:
    _, root = fleet
    cards = root.find_all("section", klass="target")
    assert [(c.attrs["data-target"], c.attrs["data-status"]) for c in cards] == [
        ("gpu-eu-1", "warn"),
        ("gpu-us-2", "fail"),
        ("edge-lab", "ok"),
    ]
    us = cards[1]
    assert spaced(us.find("span", klass="target-status")) == "✕ FAIL"
    facts = spaced(us.find("dl", klass="facts"))
    assert "URL https://gpu-us-2.example.net" in facts and "Version Ollama 0.5.4" in facts
    assert "Certificate 61 days left" in facts
    checks = us.find_all("article", klass="check")
    assert [(c.attrs["data-check"], c.attrs["data-status"]) for c in checks] == [
        ("connectivity", "ok"),
        ("tls", "ok"),
        ("models", "fail"),
        ("chat", "fail"),
        ("auth", "ok"),
        ("exposure", "pending"),
    ]
    chat = spaced(checks[3])
    assert "HTTP 503 from /api/chat: server busy" in chat
    assert "1 min ago · took 2210 ms · every 5 min" in chat
    assert "1h 25% 24h 87.5% 7d 97% 30d 99%" in chat
    exposure = spaced(checks[5])
    assert "not run yet" in exposure and "1h no data" in exposure


def test_status_is_a_word_beside_its_colour(fleet: tuple[str, Node]) -> None:
    _, root = fleet
    for pill in root.find_all("span", klass="pill"):
        word = pill.attrs["data-status"]
        assert pill.text.endswith(word.upper()), spaced(pill)


def test_the_simulator_is_marked_plainly(fleet: tuple[str, Node]) -> None:
    _, root = fleet
    marked = {
        c.attrs["data-target"]: c.attrs["data-simulated"]
        for c in root.find_all("section", klass="target")
    }
    assert marked == {"gpu-eu-1": "false", "gpu-us-2": "false", "edge-lab": "true"}
    lab = root.find("section", data_target="edge-lab")
    assert lab.find("span", klass="simulator").text == "Ollama API simulator"
    # the version alone is enough, and the simulated list alone too
    _, by_version = page_of(replace(FLEET, simulated=()))
    assert by_version.find("section", data_target="edge-lab").attrs["data-simulated"] == "true"
    _, by_list = page_of(replace(FLEET, simulated=("gpu-eu-1",)))
    assert by_list.find("section", data_target="gpu-eu-1").find_all("span", klass="simulator")


def test_uptime_bars_one_rect_per_bucket_coloured_and_titled(fleet: tuple[str, Node]) -> None:
    _, root = fleet
    chat = root.find("article", data_target="gpu-us-2", data_check="chat")
    svg = chat.find("svg", klass="uptime-bars")
    rects = svg.find_all("rect")
    assert len(rects) == BARS == int(svg.attrs["data-bars"])
    statuses = [r.attrs["data-status"] for r in rects]
    assert statuses.count("fail") == 3 and statuses.count("warn") == 1
    assert statuses[-3:] == ["fail"] * 3
    # the newest bar ends now (12:00), half an hour each; its tooltip says so in words
    assert rects[-1].find("title").text == "01-01 11:30–12:00 UTC: fail"
    assert rects[0].find("title").text == "12-31 12:00–12:30 UTC: ok"
    assert "3 fail" in svg.attrs["aria-label"]
    never = root.find("article", data_target="gpu-us-2", data_check="exposure")
    grey = never.find("svg", klass="uptime-bars").find_all("rect")
    assert {r.attrs["data-status"] for r in grey} == {"pending"}
    assert grey[0].find("title").text.endswith(": no data")


def _points(polyline: Node) -> list[tuple[float, float]]:
    return [
        (float(x), float(y)) for x, y in (p.split(",") for p in polyline.attrs["points"].split())
    ]


def test_the_chart_draws_both_series_to_scale_in_ms(fleet: tuple[str, Node]) -> None:
    _, root = fleet
    card = root.find("section", data_target="gpu-eu-1")
    chart = card.find("svg", klass="chart")
    lines = {p.attrs["data-series"]: p for p in chart.find_all("polyline")}
    assert set(lines) == {"response", "first-token"}
    response = _points(lines["response"])
    assert len(response) == len(GPU_EU_1.response_ms)
    plot = chart.find("svg", klass="plot")
    _, _, width, height = (float(v) for v in plot.attrs["viewbox"].split())
    assert all(0 <= x <= width and 0 <= y <= height for x, y in response)
    # time runs left to right, and the spike is the highest point (smallest y)
    assert [x for x, _ in response] == sorted(x for x, _ in response)
    peak = max(range(len(GPU_EU_1.response_ms)), key=lambda i: GPU_EU_1.response_ms[i][1])
    assert min(response, key=lambda p: p[1]) == response[peak]
    labels = [t.text for t in chart.find_all("text", klass="axis-y")]
    assert labels[0] == "0 ms" and all(label.endswith(" ms") for label in labels)
    top = float(labels[-1].removesuffix(" ms"))
    assert top >= max(v for _, v in GPU_EU_1.first_token_ms)
    assert [t.text for t in chart.find_all("text", klass="axis-x")] == ["06:05 UTC", "12:00 UTC"]
    legend = [spaced(li) for li in card.find("ul", klass="legend").find_all("li")]
    assert legend[0].startswith("response time: last ") and "max 257 ms" in legend[0]
    assert legend[1].startswith("time to first token: ")


def test_a_single_reading_still_draws_a_line() -> None:
    target = replace(EDGE_LAB, response_ms=((NOW - 60, 12.0),), first_token_ms=())
    _, root = page_of(replace(FLEET, targets=(target,)))
    (line,) = root.find("svg", klass="chart").find_all("polyline")
    assert len(_points(line)) == 2
    assert len({y for _, y in _points(line)}) == 1  # flat: one reading, one level


def test_models_required_present_missing_and_loaded(fleet: tuple[str, Node]) -> None:
    _, root = fleet
    us = root.find("section", data_target="gpu-us-2").find("div", klass="models")
    required = {
        m.attrs["data-model"]: m.attrs["data-present"] for m in us.find_all("li", klass="model")
    }
    assert required == {"llama3.2:1b": "true", "qwen2.5:7b": "false"}
    text = spaced(us)
    assert "Required: 1 of 2 present" in text and "qwen2.5:7b (missing)" in text
    assert "llama3.2:1b loaded: 1.0 GiB of 2.0 GiB in VRAM (50%; the rest on the CPU)" in text
    eu = spaced(root.find("section", data_target="gpu-eu-1").find("div", klass="models"))
    assert "llama3.2:1b loaded: 1.9 GiB in VRAM · unloads in 4 min" in eu
    assert "On the host (3): llama3.2:1b, qwen2.5:7b, nomic-embed-text:latest" in eu


def test_a_model_on_the_cpu_only_says_so() -> None:
    cpu = LoadedModel(name="big:70b", size_bytes=40 * 1024**3, vram_bytes=0)
    _, root = page_of(replace(FLEET, targets=(replace(GPU_US_2, models_loaded=(cpu,)),)))
    assert "big:70b loaded: on the CPU (no VRAM)" in squash(
        root.find("ul", klass="loaded-list").text
    )


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (12.4, "12 days left"),
        (1.2, "1 day left"),
        (-0.5, "expired 1 day ago"),
        (-3, "expired 3 days ago"),
    ],
)
def test_certificate_days_left(days: float, text: str) -> None:
    _, root = page_of(replace(FLEET, targets=(replace(GPU_EU_1, cert_days_left=days),)))
    assert spaced(root.find("dl", klass="facts")).endswith(f"Certificate {text}")


def test_before_the_first_run_nothing_is_claimed() -> None:
    _, root = page_of(FRESH)
    assert not root.find_all("svg")
    card = root.find("section", data_target="gpu-eu-1")
    assert card.attrs["data-status"] == "pending"
    assert {c.attrs["data-status"] for c in card.find_all("article", klass="check")} == {"pending"}
    text = spaced(card)
    assert "waiting for the first run" in text and "No response times yet." in text
    # the models check has not looked yet: no model is called missing, none said unloaded
    assert "Required: not checked yet" in text and "missing" not in text
    assert "No model loaded" not in text


def test_no_targets_renders_a_hint() -> None:
    _, root = page_of(EMPTY)
    assert "No targets are configured" in root.find(id="targets").text
    assert not root.find_all("section", klass="target")


def test_a_target_without_checks_renders() -> None:
    bare = TargetView(name="new", url="https://new.example.net", status=None, checks=())
    _, root = page_of(replace(EMPTY, targets=(bare,)))
    assert "No checks apply" in root.find("section", data_target="new").text


def test_everything_from_the_snapshot_is_escaped() -> None:
    html, root = page_of(HOSTILE, base_path='/x"><script>')
    # no element but the ones the page makes: the payloads stayed text
    tags = {n.tag for n in root.iter()}
    assert "script" not in tags and "img" not in tags
    assert "<script>" not in html and "<img" not in html
    card = root.find("section", klass="target")
    assert card.attrs["data-target"] == SCRIPT
    assert card.find("h3").text == SCRIPT
    check = card.find("article", klass="check")
    assert check.attrs["data-check"] == SCRIPT
    assert INJECTION in check.find("p", klass="summary").text
    assert root.find("li", klass="alert").attrs["data-target"] == SCRIPT
    assert f"Ollama 0.5.7{INJECTION}" in card.text
    # a terminal escape from a server never reaches the page
    assert "\x1b" not in html


def test_a_target_url_shows_without_its_credentials_or_query() -> None:
    html, root = page_of(HOSTILE)
    assert SECRET not in html and "admin" not in html
    assert "URL https://evil.example.net/ollama" in spaced(root.find("dl", klass="facts"))


def test_ids_are_unique_and_safe() -> None:
    names = ("gpu-eu-1", "GPU-EU-1", "a b", SCRIPT, "ünï")
    targets = tuple(replace(EDGE_LAB, name=n) for n in names)
    _, root = page_of(replace(FLEET, targets=targets, alerts=()))
    ids = [n.attrs["id"] for n in root.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9_-]+", i) for i in ids)
    assert target_id("gpu-eu-1") == "target-gpu-eu-1"


def test_links_follow_the_base_path() -> None:
    _, root = page_of(FLEET, base_path="/monitor/")
    footer = root.find("footer")
    assert footer.find("a").attrs["href"] == "/monitor/api/v1/status"
    assert "/monitor/api/v1/badges/TARGET/status.svg" in footer.text
    _, plain = page_of(FLEET)
    assert plain.find("footer").find("a").attrs["href"] == "/api/v1/status"


def test_title_is_the_operators_and_escaped() -> None:
    _, root = page_of(EMPTY)
    assert root.find("h1").text == TITLE
    html = render_page(EMPTY, title="<b>Prod</b> & co")
    assert "<b>Prod</b>" not in html and parse(html).find("h1").text == "<b>Prod</b> & co"


def test_uptime_percentages_never_round_up_to_100() -> None:
    check = CheckView(
        check="chat",
        status=Status.OK,
        at=NOW - 5,
        uptime={"1h": 0.99999, "24h": 0.9995, "7d": 0.5, "30d": None},
    )
    target = replace(EDGE_LAB, checks=(check,))
    _, root = page_of(replace(FLEET, targets=(target,)))
    assert spaced(root.find("dl", klass="uptime")) == "1h 99.99% 24h 99.95% 7d 50% 30d no data"
