"""The chat page in Debian's chromium (playwright) against a real gateway with sessions on SQLite.

Every request the browser makes goes through a route that lets only the gateway's origin
through: anything else is aborted and recorded, and each test fails if one was made.
Screenshots (1280 and 375 px wide) are written to the test's temporary directory.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from .sessions_live import MODEL, SessionsGateway, sessions_gateway

pytestmark = pytest.mark.integration

WAIT_MS = 20_000
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


@dataclass(frozen=True)
class ChatGateway:
    """The gateway under test and two users' keys."""

    gateway: SessionsGateway
    key: str
    other_key: str

    @property
    def page_url(self) -> str:
        return self.gateway.url + "/chat"

    def sessions(self, key: str | None = None) -> list[dict[str, object]]:
        with self.gateway.client(key or self.key) as client:
            answer = client.get("/v1/sessions")
        answer.raise_for_status()
        data: list[dict[str, object]] = answer.json()["data"]
        return data


@pytest.fixture(scope="module")
def chat_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatGateway]:
    """A gateway on SQLite over one simulator streaming 5 tokens a second (an answer: ~2 s)."""
    with sessions_gateway(tmp_path_factory.mktemp("chat"), tps=5.0) as gateway:
        yield ChatGateway(gateway=gateway, key=gateway.alice, other_key=gateway.bob)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: apt-get install chromium (make test does)"
    launched = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
    yield launched
    launched.close()


@dataclass
class Tab:
    """A fresh browser context (its own sessionStorage) and the requests it tried elsewhere."""

    context: BrowserContext
    page: Page
    elsewhere: list[str] = field(default_factory=list)


@pytest.fixture
def tab(browser: Browser, chat_gateway: ChatGateway) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = Tab(context=context, page=context.new_page())
    origin = chat_gateway.gateway.url + "/"

    def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            opened.elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_gateway)
    yield opened
    context.close()
    assert opened.elsewhere == [], "the page made requests beyond the gateway"


def sign_in(page: Page, chat: ChatGateway, key: str | None = None) -> None:
    page.goto(chat.page_url)
    page.fill("#key-input", key or chat.key)
    page.press("#key-input", "Enter")
    expect(page.locator("#app")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#model")).to_have_value(MODEL, timeout=WAIT_MS)


def send(page: Page, text: str) -> None:
    """Types `text` and presses Enter; returns once its answer is complete."""
    page.fill("#input", text)
    page.press("#input", "Enter")
    answers = page.locator(".message.assistant")
    expect(answers.last).to_have_attribute("data-state", "complete", timeout=WAIT_MS)


def test_a_message_streams_into_a_session_that_a_reload_keeps(
    tab: Tab, chat_gateway: ChatGateway, tmp_path: Path
) -> None:
    page = tab.page
    sign_in(page, chat_gateway)
    page.fill("#input", "tell me about\nstreaming")
    page.press("#input", "Shift+Enter")
    expect(page.locator("#input")).to_have_value("tell me about\nstreaming\n")
    page.press("#input", "Enter")
    streaming = page.locator(".message.assistant[data-state=streaming] .content")
    expect(streaming).to_have_text(re.compile(r"\S"), timeout=WAIT_MS)  # tokens before done
    answer = page.locator(".message.assistant").last
    expect(answer).to_have_attribute("data-state", "complete", timeout=WAIT_MS)
    text = answer.locator(".content").text_content() or ""
    assert "streaming" in text  # the simulator answers with the prompt's words
    expect(page.locator(".message.user .content")).to_have_text("tell me about\nstreaming\n")

    opened = page.evaluate("() => sessionStorage.getItem('ollama-fleet.chat.session')")
    assert opened in [s["id"] for s in chat_gateway.sessions()]
    entry = page.locator(f".session[data-id='{opened}']")
    expect(entry).to_be_visible(timeout=WAIT_MS)
    expect(entry).to_have_attribute("aria-current", "true")
    page.screenshot(path=str(tmp_path / "chat-1280.png"))

    page.reload()
    expect(page.locator("#app")).to_be_visible(timeout=WAIT_MS)
    expect(entry).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".message.assistant .content")).to_have_text(text, timeout=WAIT_MS)
    storage = page.evaluate("() => [Object.keys(localStorage), document.cookie]")
    assert storage == [[], ""]
    assert page.evaluate("() => sessionStorage.getItem('ollama-fleet.chat.key')") == (
        chat_gateway.key
    )
    assert chat_gateway.key not in page.url


def test_a_stopped_answer_is_marked_incomplete(tab: Tab, chat_gateway: ChatGateway) -> None:
    page = tab.page
    sign_in(page, chat_gateway)
    page.fill("#input", "an answer stopped early")
    page.press("#input", "Enter")
    streaming = page.locator(".message.assistant[data-state=streaming] .content")
    expect(streaming).to_have_text(re.compile(r"\S"), timeout=WAIT_MS)
    page.click("#stop")
    answer = page.locator(".message.assistant").last
    expect(answer).to_have_attribute("data-state", "incomplete", timeout=WAIT_MS)
    expect(answer.locator(".note")).to_have_text("Incomplete answer: stopped")
    expect(page.locator("#send")).to_be_visible()

    page.reload()  # the gateway kept what it had streamed, marked incomplete
    stored = page.locator(".message.assistant").last
    expect(stored).to_have_attribute("data-state", "incomplete", timeout=WAIT_MS)
    expect(stored.locator(".note")).to_have_text(re.compile("^Incomplete answer"))


def test_a_wrong_key_shows_that_it_was_refused(tab: Tab, chat_gateway: ChatGateway) -> None:
    page = tab.page
    page.goto(chat_gateway.page_url)
    page.fill("#key-input", "ofk-not-a-key-of-this-gateway")
    page.press("#key-input", "Enter")
    expect(page.locator("#key-error")).to_have_text("the key was refused", timeout=WAIT_MS)
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_rename_and_delete_a_session(tab: Tab, chat_gateway: ChatGateway) -> None:
    page = tab.page
    sign_in(page, chat_gateway, chat_gateway.other_key)
    send(page, "a session to rename")
    (session,) = chat_gateway.sessions(chat_gateway.other_key)
    entry = page.locator(f".session[data-id='{session['id']}']")

    page.click("#rename")
    page.fill("#rename-input", "Renamed by the page")
    page.press("#rename-input", "Enter")
    expect(page.locator("#session-title")).to_have_text("Renamed by the page", timeout=WAIT_MS)
    expect(entry.locator(".session-name")).to_have_text("Renamed by the page")
    assert [s["title"] for s in chat_gateway.sessions(chat_gateway.other_key)] == [
        "Renamed by the page"
    ]

    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.click("#delete")
    assert dialogs and "Renamed by the page" in dialogs[0]
    assert len(chat_gateway.sessions(chat_gateway.other_key)) == 1  # dismissed: kept

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    expect(entry).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("#session-title")).to_have_text("New chat")
    assert chat_gateway.sessions(chat_gateway.other_key) == []
    with chat_gateway.gateway.client(chat_gateway.other_key) as client:
        assert client.get(f"/v1/sessions/{session['id']}/messages").status_code == 404


def test_markup_in_a_message_shows_as_text(tab: Tab, chat_gateway: ChatGateway) -> None:
    page = tab.page
    sign_in(page, chat_gateway)
    page.click("#new-chat")
    markup = '<img src=x onerror="document.title=`pwned`"> <b>bold</b>'
    send(page, markup)
    expect(page.locator(".message.user .content")).to_have_text(markup)
    assert page.locator("#messages img, #messages b, .session img").count() == 0
    assert page.title() != "pwned"


# elements whose content is wider than they are (and not clipped on purpose, as an ellipsis is)
SIDEWAYS = """() => [document.documentElement, ...document.body.querySelectorAll("*")]
  .filter((e) => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
  .filter((e) => e === document.documentElement || getComputedStyle(e).overflowX !== "hidden")
  .map((e) => e.id || e.className || e.tagName)"""


def test_a_narrow_screen_has_the_sessions_in_a_drawer_and_no_sideways_scroll(
    tab: Tab, chat_gateway: ChatGateway, tmp_path: Path
) -> None:
    page = tab.page
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, chat_gateway)  # a fresh tab opens a new chat
    send(page, "a_long_unbroken_word_" * 12)
    expect(page.locator("#sidebar")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "chat-375.png"))
    assert page.evaluate(SIDEWAYS) == []

    page.click("#toggle-sessions")
    expect(page.locator("#sidebar")).to_be_visible()
    expect(page.locator("#toggle-sessions")).to_have_attribute("aria-expanded", "true")
    assert page.evaluate(SIDEWAYS) == []
    page.locator(".session").first.click()
    expect(page.locator("#sidebar")).to_be_hidden()


def test_the_page_is_served_with_its_policy(chat_gateway: ChatGateway) -> None:
    answer = httpx.get(chat_gateway.page_url, trust_env=False, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.headers["cache-control"] == "no-store"


def test_a_turn_that_fails_after_its_message_was_stored_keeps_it(
    tab: Tab, chat_gateway: ChatGateway
) -> None:
    """No node can take it (503 with the session's id): the question stays as sent, the
    answer is marked failed and the new session is the one shown, so a retry adds no twin."""
    page = tab.page
    root = chat_gateway.gateway.root
    sign_in(page, chat_gateway, root)
    pool = chat_gateway.gateway.running.app.pool
    pool.drain("n1")
    try:
        page.fill("#input", "while every node is drained")
        page.press("#input", "Enter")
        answer = page.locator(".message.assistant").last
        expect(answer).to_have_attribute("data-state", "incomplete", timeout=WAIT_MS)
    finally:
        pool.undrain("n1")
    expect(page.locator(".message.user")).to_have_count(1)
    assert page.input_value("#input") == ""
    (session,) = [
        s for s in chat_gateway.sessions(root) if s["title"] == "while every node is drained"
    ]
    expect(page.locator(f".session[data-id='{session['id']}']")).to_have_count(1)
    send(page, "and now again")
    with chat_gateway.gateway.client(root) as client:
        stored = client.get(f"/v1/sessions/{session['id']}/messages").json()
    assert [m["role"] for m in stored["data"]] == ["user", "user", "assistant"]
