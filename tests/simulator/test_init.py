"""Tests of the package surface: exports and the blocking serve() entry point."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

import ollama_fleet.simulator as simulator

pytestmark = pytest.mark.integration


def test_exports() -> None:
    assert set(simulator.__all__) >= {
        "create_app",
        "SimulatorConfig",
        "Faults",
        "SimModel",
        "serve",
        "listen",
        "serve_socket",
    }
    assert "test double" in (simulator.__doc__ or "")


def test_serve_prints_a_banner_with_the_bound_port_and_serves() -> None:
    code = "from ollama_fleet.simulator import serve; serve(port=0)"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "simulator" in banner and "test double" in banner and "not Ollama" in banner
        url = banner.rsplit(" ", 1)[-1].strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*", url), banner
        response = httpx.get(f"{url}/api/version", timeout=10)
        assert response.json() == {"version": "0.12.0-simulator"}
        assert response.headers["x-ollama-simulator"] == "1"
    finally:
        process.terminate()
        process.communicate(timeout=10)
