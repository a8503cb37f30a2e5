"""Shared records for the lab's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ollama_fleet.lab.state import LabInfo


@pytest.fixture
def info(tmp_path: Path) -> LabInfo:
    """A lab record in tmp_path; no VM behind it."""
    return LabInfo(
        state_dir=tmp_path,
        ssh_port=40022,
        http_port=40080,
        https_port=40443,
        ollama_port=41434,
        monitor_port=49464,
        image_dir=tmp_path / "lab-images/0123456789abcdef",
        image_hash="0123456789abcdef",
        accel="tcg",
        memory_mb=2048,
        cpus=2,
        pid=4242,
    )
