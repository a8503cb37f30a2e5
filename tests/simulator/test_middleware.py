"""Unit tests of the simulator's Host parsing and fault wording."""

from __future__ import annotations

import pytest

from ollama_fleet.simulator.middleware import allowed_host, fault_message, host_without_port


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost:11434", "localhost"),
        ("localhost", "localhost"),
        ("[::1]:11434", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("example.com:80", "example.com"),
    ],
)
def test_host_without_port(header: str, host: str) -> None:
    assert host_without_port(header) == host


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("", True),
        ("localhost.", True),
        ("127.1.2.3:80", True),
        ("0.0.0.0", True),
        ("[::]:1", True),
        ("a.b.internal", True),
        ("local", False),
        ("notlocalhost", False),
        ("192.168.1.2", False),
        ("[fe80::1]", False),
    ],
)
def test_allowed_host(header: str, allowed: bool) -> None:
    assert allowed_host(header) is allowed


def test_fault_message() -> None:
    assert fault_message(404, "m") == "model 'm' not found"
    assert fault_message(418, "") == "i'm a teapot"
    assert fault_message(599, "") == "simulated error"
