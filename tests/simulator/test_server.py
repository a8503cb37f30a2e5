"""`ollama-fleet simulator` and serve(): bind first, then the banner with the real port."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.simulator import ollama_cli
from ollama_fleet.simulator.server import BANNER, bound_url, listen

pytestmark = pytest.mark.integration

SIMULATOR = [sys.executable, "-m", "ollama_fleet", "simulator"]
BANNER_LINE = re.compile(
    r"Ollama API simulator \(a test double, not Ollama\) listening on http://127\.0\.0\.1:(\d+)\n"
)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another server listens on for the whole test."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield holder.getsockname()[1]


def test_port_0_prints_the_port_it_got_and_serves_there() -> None:
    process = subprocess.Popen(
        [*SIMULATOR, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = BANNER_LINE.fullmatch(banner)
        assert match is not None, banner
        port = int(match.group(1))
        assert port != 0
        # the banner comes once the socket listens: no retry loop is needed to connect
        response = httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=10)
        assert response.json() == {"version": "0.12.0-simulator"}
        assert response.headers["x-ollama-simulator"] == "1"
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_a_taken_port_is_one_line_and_no_banner(taken_port: int) -> None:
    done = subprocess.run(
        [*SIMULATOR, "--port", str(taken_port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""  # no banner for a server that never listened
    assert done.stderr == (
        f"Error: cannot listen on http://127.0.0.1:{taken_port}: address already in use "
        "(another server holds that port)\n"
    )


def test_an_address_that_is_not_local_is_one_line() -> None:
    done = subprocess.run(
        [*SIMULATOR, "--host", "192.0.2.1", "--port", "0"],  # TEST-NET-1: no host has it here
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "Error: cannot listen on http://192.0.2.1:0: cannot assign requested address\n"
    )


def test_listen_gives_a_listening_socket_and_its_url() -> None:
    with listen("127.0.0.1", 0) as sock:
        url = bound_url(sock)
        port = sock.getsockname()[1]
        assert url == f"http://127.0.0.1:{port}"
        # connections queue in the backlog before anything accepts them
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    assert BANNER.format(url=url).endswith(f"listening on {url}")


def test_listen_refuses_a_taken_port(taken_port: int) -> None:
    with pytest.raises(ConfigError, match=f"^cannot listen on http://127.0.0.1:{taken_port}: "):
        listen("127.0.0.1", taken_port)


def test_ipv6_addresses_are_bracketed_in_the_url() -> None:
    try:
        sock = listen("::1", 0)
    except ConfigError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    with sock:
        assert bound_url(sock) == f"http://[::1]:{sock.getsockname()[1]}"


def test_ollama_serve_on_a_taken_port_says_so_like_ollama(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{taken_port}")
    assert ollama_cli.main(["serve"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"Error: cannot listen on http://127.0.0.1:{taken_port}: address already in use "
        "(another server holds that port)\n"
    )
