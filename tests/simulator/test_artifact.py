"""The simulator packaged as an Ollama release archive: reproducible, and bin/ollama runs."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ollama_fleet.simulator.artifact import build_artifact


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifact(tmp_path_factory.mktemp("artifact")).path


def test_the_archive_is_written_whole_and_readable(built: Path) -> None:
    assert built.name == "ollama-linux-amd64-simulator.tgz"
    assert stat.S_IMODE(built.stat().st_mode) == 0o644
    assert sorted(p.name for p in built.parent.iterdir()) == [built.name]  # no temporary file
    with tarfile.open(built) as archive:
        assert {"bin/ollama", "lib/ollama/SIMULATOR.txt"} <= set(archive.getnames())


def test_the_archive_is_reproducible(built: Path, tmp_path: Path) -> None:
    again = build_artifact(tmp_path)
    assert again.sha256 == hashlib.sha256(built.read_bytes()).hexdigest()


def test_bin_ollama_serve_refuses_a_taken_port_in_one_line(built: Path, tmp_path: Path) -> None:
    # the zipapp from the archive, without site-packages (-S): what it imports must be inside
    with tarfile.open(built) as archive:
        archive.extract("bin/ollama", tmp_path, filter="data")
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(tmp_path / "bin/ollama"), "serve"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "PYTHONPATH": ""},
        )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"Error: cannot listen on http://127.0.0.1:{port}: address already in use "
        "(another server holds that port)\n"
    )
