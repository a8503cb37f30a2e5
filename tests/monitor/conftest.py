"""Fixtures shared by the monitor's tests: a real Alertmanager on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ollama_fleet.testbed.servers import free_port

from .live import binary, daemon


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """Debian's Alertmanager on 127.0.0.1, alone (no cluster), routing to nobody; its URL."""
    root = tmp_path / "alertmanager"
    root.mkdir()
    config = {
        "route": {"receiver": "null", "group_wait": "1s"},
        "receivers": [{"name": "null"}],
    }
    (root / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus-alertmanager"),
        f"--config.file={root / 'alertmanager.yml'}",
        f"--storage.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    base = f"http://127.0.0.1:{port}"
    with daemon(command, f"{base}/-/ready", root / "log"):
        yield base
