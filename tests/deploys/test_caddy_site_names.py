"""The site names the caddy role serves, derived when caddy_site_names is not set (pure)."""

from __future__ import annotations

import pytest

from ollama_fleet.deploys.caddy import site_names


@pytest.mark.parametrize(
    ("configured", "public_url", "expected"),
    [
        (["llm.example.com"], "https://gpu-1.example.com", ["llm.example.com"]),
        ([], "https://gpu-1.example.com:8443/", ["gpu-1.example.com"]),
        ([], "https://10.0.0.5", ["10.0.0.5"]),
        ([], "https://[2001:db8::5]:8443", ["[2001:db8::5]"]),  # Caddy's IPv6 site address
        ([], None, ["gpu-1"]),
    ],
)
def test_site_names(configured: list[str], public_url: str | None, expected: list[str]) -> None:
    assert site_names(configured, public_url, "gpu-1") == expected
