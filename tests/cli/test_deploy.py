"""`ollama-fleet deploy` as an operator used to Ansible runs it: real child process, real sockets.

The hosts here are unreachable on purpose (a port nothing listens on, and a port where an
HTTP server answers instead of sshd), so no host is ever changed; what is asserted is what
a user sees: the banner, the one-line errors, the exit codes, the host selection.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_fleet.testbed.servers import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def not_ssh() -> Iterator[int]:
    """An HTTP server on 127.0.0.1: it accepts the TCP connection but never speaks SSH."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def refused() -> int:
    """A port on 127.0.0.1 nothing listens on (checked: a connect is refused)."""
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


@pytest.fixture
def inventory(tmp_path: Path, not_ssh: int, refused: int) -> Path:
    path = tmp_path / "inv.yml"
    path.write_text(
        f"""\
all:
  vars:
    ssh_hostname: 127.0.0.1
    ssh_user: root
    ollama_artifact: simulator
  children:
    gpu:
      hosts:
        gpu-1:
          ssh_port: {not_ssh}
        gpu-2:
          ssh_port: {refused}
        gpu-3:
          ssh_port: {refused}
    edge:
      hosts:
        edge-1:
          ssh_port: {refused}
""",
        encoding="utf-8",
    )
    return path


def deploy(*args: str, cwd: Path, stdin: str | None = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ollama_fleet", "deploy", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "NO_COLOR": "1"},
    )


def listed(stdout: str) -> list[str]:
    """The names of --list-hosts' output ("  hosts (N):", then one name a line)."""
    header, *names = stdout.splitlines()
    assert header == f"  hosts ({len(names)}):"
    return [name.strip() for name in names]


def test_list_hosts_applies_patterns_and_contacts_nothing(inventory: Path) -> None:
    done = deploy(str(inventory), "--limit", "gpu:!gpu-3", "--list-hosts", cwd=inventory.parent)

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "  hosts (2):\n    gpu-1\n    gpu-2\n"  # as Ansible's --list-hosts


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["gpu-*"], ["gpu-1", "gpu-2", "gpu-3"]),
        (["all:!gpu"], ["edge-1"]),
        (["gpu:&gpu-2"], ["gpu-2"]),
        (["edge,gpu-3"], ["gpu-3", "edge-1"]),  # the inventory's order
    ],
)
def test_limit_patterns(inventory: Path, patterns: list[str], expected: list[str]) -> None:
    limits = [arg for pattern in patterns for arg in ("--limit", pattern)]
    done = deploy(str(inventory), *limits, "--list-hosts", cwd=inventory.parent)

    assert (done.returncode, listed(done.stdout)) == (0, expected), done.stderr


def test_limit_from_a_retry_file(inventory: Path) -> None:
    (inventory.parent / "failed.txt").write_text("gpu-2\nedge-1\n", encoding="utf-8")

    done = deploy(str(inventory), "--limit", "@failed.txt", "--list-hosts", cwd=inventory.parent)

    assert (done.returncode, listed(done.stdout)) == (0, ["gpu-2", "edge-1"]), done.stderr


def test_a_pattern_that_matches_nothing_is_an_error(inventory: Path) -> None:
    done = deploy(str(inventory), "--limit", "gpu-9", "--list-hosts", cwd=inventory.parent)

    assert done.returncode == 2
    assert done.stdout == ""
    assert "gpu-9" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_a_terminal_it_refuses_to_ask_and_changes_nothing(inventory: Path) -> None:
    done = deploy(str(inventory), "--limit", "gpu-2", cwd=inventory.parent, stdin="y\n")

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "Error: stdin is not a terminal, so nobody can answer the confirmation: pass -y to "
        "change the hosts without asking, or --dry to see what would change"
    ]
    assert done.stdout == ""  # refused before any plan, artifact or connection


@pytest.mark.parametrize("flag", ["--dry", "--check"])
def test_a_dry_run_says_so_first(inventory: Path, flag: str) -> None:
    done = deploy(str(inventory), "--limit", "gpu-2", flag, cwd=inventory.parent)

    assert done.stderr.splitlines()[0] == "DRY RUN: nothing on the hosts is changed"
    assert done.stdout.startswith("planning 1 host(s) [gpu-2]")


def test_unreachable_hosts_exit_4_each_said_once_in_one_line(
    inventory: Path, not_ssh: int, refused: int
) -> None:
    done = deploy(str(inventory), "--limit", "gpu-1,gpu-2", "-y", cwd=inventory.parent)
    output = done.stdout + done.stderr

    assert done.returncode == 4, output
    assert "Traceback" not in output and "Errno" not in output
    assert "Failed to load host keys" not in output
    lines = [line for line in done.stdout.splitlines() if "UNREACHABLE 127.0.0.1" in line]
    assert lines == [
        f"[gpu-1] UNREACHABLE 127.0.0.1:{not_ssh} answered, but not with SSH: is ssh_port "
        "the port sshd listens on?",
        f"[gpu-2] UNREACHABLE 127.0.0.1:{refused}: connection refused: is sshd running there, "
        "and is ssh_port right?",
    ] or lines == [  # the order the two connections failed in
        f"[gpu-2] UNREACHABLE 127.0.0.1:{refused}: connection refused: is sshd running there, "
        "and is ssh_port right?",
        f"[gpu-1] UNREACHABLE 127.0.0.1:{not_ssh} answered, but not with SSH: is ssh_port "
        "the port sshd listens on?",
    ]
    assert "  gpu-1: UNREACHABLE, nothing ran" in done.stdout
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: 2 host(s) unreachable: gpu-1, gpu-2 (retry them: --limit @")
    retry = inventory.parent / error.split("--limit @", 1)[1].rstrip(")")
    assert retry.read_text(encoding="utf-8") == "gpu-1\ngpu-2\n"


def test_verbose_shows_the_connection_detail(inventory: Path, refused: int) -> None:
    done = deploy(str(inventory), "--limit", "gpu-2", "-y", "-v", cwd=inventory.parent)

    assert done.returncode == 4
    assert f"Unable to connect to port {refused} on 127.0.0.1" in done.stdout + done.stderr


def test_a_dry_run_needs_no_internet_for_the_checksum(inventory: Path, tmp_path: Path) -> None:
    # the release base points at a port nothing listens on: a fetch would fail the plan
    dead = free_port()
    done = deploy(
        str(inventory),
        "--limit",
        "gpu-2,gpu-3",
        "--check",
        "-e",
        "ollama_artifact=",
        "-e",
        f"ollama_download_base=http://127.0.0.1:{dead}/releases",
        cwd=inventory.parent,
    )

    assert "cannot read" not in done.stderr, done.stderr
    assert (
        f"NOTE dry run: Ollama 0.12.0's sha256 is read from http://127.0.0.1:{dead}"
        "/releases/v0.12.0/sha256sum.txt on apply, not now (gpu-2, gpu-3)" in done.stderr
    )
    assert done.stderr.count("sha256sum.txt") == 1  # one note for the fleet, not one a host
    assert done.returncode == 4  # and then the hosts themselves are unreachable


def test_extra_vars_override_the_inventory_and_are_validated(inventory: Path) -> None:
    done = deploy(str(inventory), "-e", "ssh_prot=22", "--list-hosts", cwd=inventory.parent)

    assert done.returncode == 2
    assert "ssh_prot" in done.stderr and "ssh_port" in done.stderr  # did you mean
    assert "Traceback" not in done.stderr


def _on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run the deploy with stdout and stderr on a pseudo-terminal; what it wrote there."""
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        subprocess.run(
            [sys.executable, "-m", "ollama_fleet", "deploy", *args],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
            cwd=cwd,
            env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TERM": "xterm", **env},
            timeout=120,
        )
    finally:
        os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks).decode()


@pytest.mark.parametrize(("env", "coloured"), [({}, True), ({"NO_COLOR": "1"}, False)])
def test_no_color_is_honoured_on_a_terminal(
    inventory: Path, env: dict[str, str], coloured: bool
) -> None:
    text = _on_a_terminal([str(inventory), "--limit", "gpu-2", "--check"], inventory.parent, env)

    assert "DRY RUN" in text and "UNREACHABLE" in text
    assert ("\x1b[" in text) is coloured
