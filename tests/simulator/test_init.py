"""Tests of the package surface: exports and the blocking serve() entry point."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

import ollama_fleet.simulator as simulator
from ollama_fleet.testbed.servers import free_port

pytestmark = pytest.mark.integration


def test_exports() -> None:
    assert set(simulator.__all__) >= {
        "create_app",
        "SimulatorConfig",
        "Faults",
        "SimModel",
        "serve",
    }
    assert "test double" in (simulator.__doc__ or "")


def test_serve_prints_a_banner_and_serves() -> None:
    port = free_port()
    code = f"from ollama_fleet.simulator import serve; serve(port={port})"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "simulator" in banner and "test double" in banner and "not Ollama" in banner
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/version")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "serve() did not start"
                time.sleep(0.05)
        assert response.json() == {"version": "0.12.0-simulator"}
        assert response.headers["x-ollama-simulator"] == "1"
    finally:
        process.terminate()
        process.communicate(timeout=10)
