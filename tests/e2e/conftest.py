"""The end-to-end tests' order: the site's own first, then those that reuse its deployment.

tests/e2e/test_diagnose_bare.py looks at the bare VM, read-only, so it comes first. Then
tests/e2e/test_site.py starts from the bare VM (its first test proves a refused deploy left the
host untouched), so a module that deploys on its own must not run before it. test_gateway.py
proves its deploy is the one that installs the gateway, so it comes next; test_diagnose.py,
which breaks and repairs the site on purpose, comes last.
"""

from __future__ import annotations

import pytest

# modules that reuse the site test_site.py deployed (and deploy it themselves when run alone),
# in the order they run
AFTER_THE_SITE = ("test_gateway.py", "test_monitor.py", "test_diagnose.py")


BEFORE_THE_SITE = "test_diagnose_bare.py"  # read-only, on the bare VM


def _rank(item: pytest.Item) -> int:
    """0: not end to end (lab_fixtures put those first); then the bare VM's, the site's, and
    the modules after it in their order."""
    if item.path.parent.name != "e2e":
        return 0
    if item.path.name == BEFORE_THE_SITE:
        return 1
    if item.path.name not in AFTER_THE_SITE:
        return 2
    return 3 + AFTER_THE_SITE.index(item.path.name)


@pytest.hookimpl(trylast=True)  # after lab_fixtures' sort, which puts tests/e2e last
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)
