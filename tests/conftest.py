"""Suite-wide test setup: tests that use a live-server fixture belong to the integration tier;
state files go to a temp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(autouse=True, scope="session")
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """State files a test's gateway makes by default (its sessions' SQLite file) go to a temp
    dir, never the user's ~/.local/state; child processes inherit it."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before
