"""The end-to-end tests' order: the site's own first, then those that reuse its deployment.

tests/e2e/test_site.py starts from the bare VM (its first test proves a refused deploy left the
host untouched), so a module that deploys on its own must not run before it.
"""

from __future__ import annotations

import pytest

# modules that reuse the site test_site.py deployed (and deploy it themselves when run alone)
AFTER_THE_SITE = frozenset({"test_diagnose.py", "test_gateway.py", "test_monitor.py"})


@pytest.hookimpl(trylast=True)  # after lab_fixtures' sort, which puts tests/e2e last
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.parent.name == "e2e" and item.path.name in AFTER_THE_SITE)
