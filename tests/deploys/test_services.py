"""Role services: this project on the host (a wheel pushed from the controller) and its configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ollama_fleet.controller import bundle as controller_bundle
from ollama_fleet.errors import ConfigError

from .answers import marker
from .conftest import Deployed, deploy_fakes, host, stub_wheel

GATEWAY_OP = "services: gateway config (API keys hashed)"
VENV = "/opt/ollama-fleet"


@pytest.fixture(scope="module")
def services_run(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    folder = tmp_path_factory.mktemp("services")
    with stub_wheel(folder) as wheel:
        installed = f"{wheel.wheel} sha256:{wheel.sha256}"
        hosts = {
            "default": host(),
            "explicit": host(ollama_host="127.0.0.1:11434"),
            "wheel-current": host(
                marker(f"{VENV}/.ollama-fleet-bundle", installed), ollama_host="127.0.0.1:11434"
            ),
            "off": host(services_enabled=False),
        }
        return deploy_fakes(folder, hosts, roles=["services"])


@pytest.mark.integration
class TestDryDeploy:
    def test_wheel_is_pushed_installed_and_the_units_planned(self, services_run: Deployed) -> None:
        changes = services_run.changes("explicit")

        assert "services: push ollama_fleet-0.1.0-py3-none-any.whl and its wheels" in changes
        assert f"services: install ollama_fleet-0.1.0-py3-none-any.whl into {VENV}" in changes
        assert GATEWAY_OP in changes
        assert "services: ollama-fleet-check.timer" in changes

    def test_installed_wheel_is_not_pushed_again(self, services_run: Deployed) -> None:
        plans = services_run.plans("wheel-current")

        assert GATEWAY_OP in plans
        assert not [op for op in plans if "push" in op or "install" in op]

    def test_default_ollama_host_is_enough(self, services_run: Deployed) -> None:
        assert services_run.refusal("default") is None
        assert GATEWAY_OP in services_run.changes("default")

    def test_services_enabled_false_touches_nothing(self, services_run: Deployed) -> None:
        assert services_run.refusal("off") is None
        assert services_run.plans("off") == {}


def test_monitor_enabled_is_refused_before_any_host_is_touched(tmp_path: Path) -> None:
    with stub_wheel(tmp_path), pytest.raises(ConfigError) as refused:
        deploy_fakes(tmp_path, {"monitor": host(monitor_enabled=True)}, roles=["services"])

    message = str(refused.value)
    refusal = r"inventory.yml:\d+: monitor_enabled: the monitor service is not part"
    assert re.search(refusal, message)


@pytest.mark.integration
def test_a_dry_run_builds_no_bundle_and_plans_it_for_the_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fresh controller (empty cache) with no package index: pip must not be run at all
    def no_pip(*args: str) -> None:
        raise AssertionError(f"a dry run ran pip {' '.join(args)}")

    monkeypatch.setattr(controller_bundle, "_pip", no_pip)

    deployed = deploy_fakes(tmp_path, {"fresh": host()}, roles=["services"])

    assert deployed.refusal("fresh") is None
    planned = [op for op in deployed.plans("fresh") if "built on apply" in op]
    assert planned == [
        "services: push ollama_fleet-0.1.0-py3-none-any.whl and its wheels, install it into "
        f"{VENV} (the bundle is built on apply)"
    ]
    assert not list((tmp_path / "cache").glob("bundles/*/*.tar"))
