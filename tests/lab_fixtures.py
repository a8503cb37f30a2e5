"""Pytest plugin: `lab_vm`, the lab VM booted once per session, for end-to-end tests.

Load it from tests/conftest.py with `pytest_plugins = ["lab_fixtures"]`. The first session
on a machine builds the image (as root, ~2-3 minutes; cached in ~/.cache/ollama-fleet/
lab-images); every session boots a fresh overlay of it in its own temporary state dir
(~30-60 s under TCG), so parallel sessions never share a VM, and destroys it at the end.

Tests that use `lab_vm` are marked integration. They may reboot the VM, or stop and
start it with `up(lab_vm.state_dir)`, which keeps its ports, key and overlay; only
`lab_vm.pid` is then stale. Leave it running for the tests after yours.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ollama_fleet.lab import LabInfo, LabOptions, down, up

LAB_FIXTURES = frozenset({"lab_vm"})


@pytest.fixture(scope="session")
def lab_vm(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LabInfo]:
    """A running lab: SSH answers; ports, key and inventory in the returned LabInfo."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def progress(message: str) -> None:  # live: a first build takes minutes
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(message)

    state_dir = tmp_path_factory.mktemp("lab")
    info = up(state_dir, LabOptions(fresh=True), progress=progress)
    try:
        yield info
    finally:
        down(state_dir, destroy=True, progress=progress)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.e2e)
    # The lab's own tests look at the bare VM; the site's end-to-end tests (tests/e2e) then
    # deploy to the same VM, so they run last (a stable sort keeps every other order).
    items.sort(key=lambda item: item.path.parent.name == "e2e")
