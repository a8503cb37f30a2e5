"""The load test's settings: bounds, the concurrency clamp, a key kept out of repr."""

from __future__ import annotations

import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.loadtest.model import LoadSettings


def test_concurrency_above_the_request_count_is_clamped() -> None:
    assert LoadSettings(url="http://x", model="m", requests=5, concurrency=16).concurrency == 5
    assert LoadSettings(url="http://x", model="m", requests=50, concurrency=16).concurrency == 16


@pytest.mark.parametrize(("requests", "concurrency"), [(0, 1), (1, 0), (-3, 4)])
def test_no_requests_or_no_concurrency_is_refused(requests: int, concurrency: int) -> None:
    with pytest.raises(ConfigError):
        LoadSettings(url="http://x", model="m", requests=requests, concurrency=concurrency)


def test_the_api_key_is_not_in_the_repr() -> None:
    settings = LoadSettings(url="http://x", model="m", api_key="sk-secret-value-123")
    assert "sk-secret-value-123" not in repr(settings)
