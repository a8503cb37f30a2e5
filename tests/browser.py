"""A real headless browser for tests: Debian's chromium, driven over the DevTools protocol.

The protocol runs over a pipe (`--remote-debugging-pipe`: chromium reads commands on fd 3 and
writes answers on fd 4, each a JSON message ended by a NUL byte), so no WebSocket client and
no debugging port are needed. Chromium is started offline: file:// pages only, every host
name mapped to nothing, and the flags that stop it phoning home. `allow_loopback=True` lets
it reach http://127.0.0.1:PORT too (a server the test runs), and nothing else.

    with Browser.start(tmp_path) as browser:
        page = browser.open("file:///.../report.html#hide-ok")
        assert page.evaluate("document.title") == "..."

    with Browser.start(tmp_path, allow_loopback=True) as browser:
        page = browser.open(f"http://127.0.0.1:{port}/", watch=("Network", "Log"))
        urls = [e["params"]["request"]["url"] for e in page.events("Network.requestWillBeSent")]
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

# Long enough for a cold chromium start on a 2-core CI machine; only a hang ever reaches it.
TIMEOUT_S = 60.0
WINDOW = (1280, 900)

# No network at all: no first-run, sync, component, metrics or safe-browsing requests, and
# every host name resolves to nothing, so a page cannot load anything from anywhere.
OFFLINE_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--mute-audio",
)
NO_HOSTS = "--host-resolver-rules=MAP * ~NOTFOUND"
# 127.0.0.1 only: not "localhost", not any other loopback address or name
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


class BrowserError(AssertionError):
    """Chromium did not start, did not answer, or answered a command with an error."""


def chromium_binary() -> str:
    """The chromium to use; a missing one fails the test (make test installs it), never skips."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed: `apt-get install chromium` "
            "(make test's system-deps installs it)",
            pytrace=False,
        )
    return path


class Page:
    """One tab, attached through a flat DevTools session."""

    def __init__(self, browser: Browser, target_id: str, session_id: str) -> None:
        self._browser = browser
        self.target_id = target_id
        self.session_id = session_id

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._browser.send(method, params, session_id=self.session_id)

    def navigate(self, url: str) -> None:
        """Load `url` and wait for its load event (so inline scripts have run)."""
        self.send("Page.navigate", {"url": url})
        self._browser.wait_for_event("Page.loadEventFired", session_id=self.session_id)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page; a thrown error fails."""
        answer = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the whole page (beyond the viewport), written to `path` and returned."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        answer = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": WINDOW[0], "height": height, "scale": 1},
            },
        )
        data = base64.b64decode(answer["data"])
        path.write_bytes(data)
        return data

    def events(self, method: str) -> list[dict[str, Any]]:
        """The events `method` of this page that came so far (from the domains `open` watched).

        Evaluates a no-op first, so that every event sent before it has been read.
        """
        self.evaluate("0")
        return self._browser.take_events(method, session_id=self.session_id)

    def close(self) -> None:
        self._browser.send("Target.closeTarget", {"targetId": self.target_id})


class Browser:
    """A running chromium; `open` gives pages. Use as a context manager, or call `close`."""

    def __init__(self, process: subprocess.Popen[bytes], commands: int, answers: int) -> None:
        self._process = process
        self._commands = commands
        self._answers = answers
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    @classmethod
    def start(cls, workdir: Path, *, allow_loopback: bool = False) -> Browser:
        """Start chromium with a fresh profile in `workdir`, its log in workdir/chromium.log.

        `allow_loopback`: http://127.0.0.1 pages load too; every host name still resolves
        to nothing.
        """
        binary = chromium_binary()
        workdir.mkdir(parents=True, exist_ok=True)
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()

        def wire_pipes() -> None:
            # chromium wants the pipe on fds 3 and 4 exactly; go through high numbers first
            # so that neither dup2 closes the other pipe's end.
            read_end = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        log = (workdir / "chromium.log").open("wb")
        try:
            process = subprocess.Popen(
                [
                    binary,
                    *OFFLINE_FLAGS,
                    LOOPBACK_ONLY if allow_loopback else NO_HOSTS,
                    "--remote-debugging-pipe",
                    f"--user-data-dir={workdir / 'profile'}",
                    f"--window-size={WINDOW[0]},{WINDOW[1]}",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(3, 4),
                preexec_fn=wire_pipes,
                env={**os.environ, "HOME": str(workdir)},
            )
        finally:
            log.close()
            os.close(to_browser_read)
            os.close(from_browser_write)
        browser = cls(process, to_browser_write, from_browser_read)
        try:
            browser.send("Target.getTargets")
        except BrowserError:
            browser.close()
            raise
        return browser

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self, url: str, *, javascript: bool = True, watch: tuple[str, ...] = ()) -> Page:
        """A new tab showing `url`, loaded; `javascript=False` opens it with scripts off.

        `watch`: DevTools domains ("Network", "Log", "Runtime") enabled before the page
        loads, so `Page.events` has their events of the first load too.
        """
        target_id = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session_id = self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, target_id, session_id)
        page.send("Page.enable")
        for domain in watch:
            page.send(f"{domain}.enable")
        if not javascript:
            page.send("Emulation.setScriptExecutionDisabled", {"value": True})
        page.navigate(url)
        return page

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result; an error answer raises BrowserError."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"chromium exited before {method}: {self._exit_note()}") from None
        while True:
            answer = self._read(f"the answer to {method}")
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method} failed: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            if "method" in answer:
                self._events.append(answer)

    def wait_for_event(self, method: str, *, session_id: str | None = None) -> dict[str, Any]:
        """The first event `method` (of `session_id`), including ones that came already."""
        for index, event in enumerate(self._events):
            if event["method"] == method and event.get("sessionId") == session_id:
                return self._events.pop(index)
        while True:
            event = self._read(f"the event {method}")
            if event.get("method") == method and event.get("sessionId") == session_id:
                return event
            if "method" in event:
                self._events.append(event)

    def take_events(self, method: str, *, session_id: str | None = None) -> list[dict[str, Any]]:
        """Remove and return the buffered events `method` (of `session_id`), oldest first."""
        taken = [
            e for e in self._events if e["method"] == method and e.get("sessionId") == session_id
        ]
        self._events = [e for e in self._events if not any(e is t for t in taken)]
        return taken

    def _read(self, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"chromium sent no {what} in {TIMEOUT_S:.0f} s")
            ready, _, _ = select.select([self._answers], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                raise BrowserError(f"chromium exited while waiting for {what}: {self._exit_note()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _exit_note(self) -> str:
        code = self._process.poll()
        return "still running" if code is None else f"exit status {code}, see chromium.log"

    def close(self) -> None:
        """Ask chromium to quit, then make sure it has; close the pipes."""
        if self._process.poll() is None:
            try:
                os.write(self._commands, json.dumps({"id": 0, "method": "Browser.close"}).encode())
                os.write(self._commands, b"\0")
                self._process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for fd in (self._commands, self._answers):
            with contextlib.suppress(OSError):
                os.close(fd)
