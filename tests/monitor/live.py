"""Live parts for the monitor's integration tests: the monitor as a real process, a receiver.

The monitor runs as `python -m ollama_fleet monitor --config FILE`, so signals, the exit status
and the state kept across a restart are the real ones. The receiver is a uvicorn app on
127.0.0.1 that records every POST and can be told to fail the first N of them.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.testbed.servers import serve_in_thread
from polling import wait_for

LISTENING = re.compile(r"on (http://127\.0\.0\.1:\d+/)")
START_TIMEOUT_S = 20.0


class Receiver:
    """A webhook receiver: every POST body kept; the first `fail_first` answered 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.bodies: list[Any] = []
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = json.loads(await request.body())
            with self._lock:
                self.attempts += 1
                if self.attempts <= self.fail_first:
                    return JSONResponse({"error": "receiver down (test)"}, status_code=500)
                self.bodies.append(body)
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/hook/{secret}", hook, methods=["POST"])])

    def kinds(self, check: str | None = None) -> list[str]:
        with self._lock:
            return [b["kind"] for b in self.bodies if check is None or b["check"] == check]


@contextlib.contextmanager
def receiver(fail_first: int = 0) -> Iterator[tuple[Receiver, str]]:
    """A running receiver and its URL, which carries a made-up secret token."""
    hooks = Receiver(fail_first)
    with serve_in_thread(hooks.app()) as port:
        yield hooks, f"http://127.0.0.1:{port}/hook/s3cr3t-t0ken"


class MonitorProcess:
    """`ollama-fleet monitor --config FILE` as a child process, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._offset = 0  # where this run's lines start in a log shared by several runs

    def __enter__(self) -> MonitorProcess:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        command = [sys.executable, "-m", "ollama_fleet", "monitor", "--config", str(self.config)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.url = wait_for("the monitor to listen", self._listening, timeout_s=START_TIMEOUT_S)
        return self

    def _listening(self) -> str | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"monitor exited {self.proc.returncode}: {self.text()}")
        found = LISTENING.findall(self.text())
        return found[-1] if found else None

    def text(self) -> str:
        """This run's log."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, and the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the monitor did not stop within 30 s of SIGTERM") from None

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url.rstrip("/") + path, timeout=10, **kwargs)

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of /metrics (text format), or None when the series is absent."""
        wanted = {f'{key}="{value}"' for key, value in labels.items()}
        for line in self.get("/metrics").text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            inside = head[len(name) :].strip("{}")
            if wanted <= set(inside.split(",")) if inside else not wanted:
                return float(value)
        return None


def binary(name: str) -> str:
    """A Debian package's program; a clear failure when make test's setup did not install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (make test's setup installs it)")
    return path


@contextlib.contextmanager
def daemon(command: list[str], ready_url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process (Prometheus, Alertmanager) until the block ends; ready when
    `ready_url` answers 200. Always stopped, killed if it will not stop."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"{command[0]} exited {proc.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            return httpx.get(ready_url, timeout=1, trust_env=False).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(f"{command[0]} to be ready", ready, timeout_s=60)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
