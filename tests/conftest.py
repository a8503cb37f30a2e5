"""Suite-wide test setup: tests that use a live-server fixture belong to the integration tier."""

from __future__ import annotations

import pytest

# the session-scoped lab VM (tests/lab_fixtures.py), for the lab's and the end-to-end tests
pytest_plugins = ["lab_fixtures"]

# Fixtures that start real servers (uvicorn, the simulator, Caddy) on 127.0.0.1.
# (transitive: a fixture that uses one of these counts too)
SERVER_FIXTURES = frozenset({"sim_url", "fresh_url", "paced_url", "fleet"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
