"""Role services: this project on the host (a wheel pushed from the controller) and its configs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from ollama_fleet import hostvars
from ollama_fleet.controller import bundle as controller_bundle
from ollama_fleet.deploys.services import monitor_wait_script, packages, self_check_inventory
from ollama_fleet.errors import ConfigError
from ollama_fleet.render import render_gateway_config, render_monitor_config, render_monitor_service
from ollama_fleet.testbed.servers import free_port, serve_in_thread

from .answers import Answers, file_with, marker
from .captured import fact_command
from .conftest import PREFIX, Deployed, deploy_fakes, gpu_host, host, stub_wheel

GATEWAY_OP = "services: gateway config (API keys hashed)"
VENV = "/opt/ollama-fleet"
MONITOR = "ollama-fleet-monitor.service"
MONITOR_UNIT = f"/etc/systemd/system/{MONITOR}"
MONITOR_OPS = (
    f"services: {MONITOR}",
    "services: monitor enabled and running",
    "services: restart the monitor for the change",
    "services: the monitor answers on /metrics",
)
REMOVAL_OPS = (
    "services: monitor stopped and disabled (monitor_enabled: false)",
    f"services: {MONITOR} removed",
    "services: reload systemd (monitor unit removed)",
)
# the lab's way: on every address, reachable only from the networks allowed for metrics
MONITOR_VARS = {
    "monitor_enabled": True,
    "monitor_address": "0.0.0.0",
    "firewall_allow_metrics": ["10.0.2.2/32"],
    "ollama_host": "127.0.0.1:11434",
}


def unit_running(name: str) -> Answers:
    """systemd knows unit `name`: enabled, and running."""
    return {
        fact_command(SystemdStatus, services=[name]): [f"Id={name}", "SubState=running"],
        fact_command(SystemdEnabled, services=[name]): [f"Id={name}", "UnitFileState=enabled"],
    }


def converged_monitor(name: str, installed: str, **changed: object) -> Answers:
    """Host `name` where the monitor runs as this deploy would leave it: wheel, configs, unit;
    its monitor.yml as rendered from the variables `changed` instead, if any."""
    v = hostvars.resolved(MONITOR_VARS, "services")
    on_host = hostvars.resolved({**MONITOR_VARS, **changed}, "services")
    group = {"mode": "640", "group": "ollama-fleet"}
    return {
        **marker(f"{VENV}/.ollama-fleet-bundle", installed),
        **file_with(
            "/etc/ollama-fleet/checks.yml",
            self_check_inventory("http://127.0.0.1:11434", []),
            **group,
        ),
        **file_with(
            "/etc/ollama-fleet/gateway.yml",
            render_gateway_config(v, ollama_host="127.0.0.1:11434", local_name=PREFIX + name),
            **group,
        ),
        **file_with(
            "/etc/ollama-fleet/monitor.yml", render_monitor_config(on_host, gpu=False), **group
        ),
        **file_with(MONITOR_UNIT, render_monitor_service(v)),
        **unit_running(MONITOR),
    }


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
            "monitor": host(**MONITOR_VARS),
            "monitor-current": host(
                converged_monitor("monitor-current", installed), **MONITOR_VARS
            ),
            "monitor-new-config": host(
                converged_monitor("monitor-new-config", installed, monitor_port=9500),
                **MONITOR_VARS,
            ),
            "monitor-gpu": gpu_host("debian12", **MONITOR_VARS),
            "monitor-was-on": host(
                file_with(MONITOR_UNIT, "[Service]\nExecStart=/bin/true\n"),
                unit_running(MONITOR),
            ),
        }
        return deploy_fakes(folder, hosts, roles=["services"], diff=True)


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

    def test_the_monitor_is_installed_enabled_and_started(self, services_run: Deployed) -> None:
        changes = services_run.changes("monitor")

        for op in (*MONITOR_OPS, "services: monitor config", "services: reload systemd"):
            assert op in changes, op
        assert not [op for op in changes if op in REMOVAL_OPS]
        assert changes.index(f"services: {MONITOR}") < changes.index(
            "services: monitor enabled and running"
        )

    def test_a_monitor_as_deployed_is_left_running_without_a_restart(
        self, services_run: Deployed
    ) -> None:
        plans = services_run.plans("monitor-current")

        assert plans["services: monitor config"] is False
        assert plans[f"services: {MONITOR}"] is False
        assert plans["services: monitor enabled and running"] is False
        assert plans["services: restart the monitor for the change"] is False
        assert plans["services: the monitor answers on /metrics"] is False

    def test_a_changed_config_restarts_the_monitor(self, services_run: Deployed) -> None:
        plans = services_run.plans("monitor-new-config")

        assert plans["services: monitor config"] is True
        assert plans[f"services: {MONITOR}"] is False
        assert plans["services: restart the monitor for the change"] is True
        assert plans["services: the monitor answers on /metrics"] is True

    def test_a_monitor_turned_off_is_stopped_disabled_and_its_unit_removed(
        self, services_run: Deployed
    ) -> None:
        changes = services_run.changes("monitor-was-on")

        assert [op for op in changes if op in REMOVAL_OPS] == list(REMOVAL_OPS)
        assert not [op for op in changes if op in MONITOR_OPS]

    def test_hosts_without_the_monitor_get_no_monitor_unit(self, services_run: Deployed) -> None:
        for name in ("default", "explicit"):
            plans = services_run.plans(name)
            assert "services: monitor config" in plans  # rendered, saying it does not run
            assert not [op for op in plans if op in (*MONITOR_OPS, *REMOVAL_OPS)], name

    def test_on_a_gpu_host_the_monitor_sees_nvidias_devices(self, services_run: Deployed) -> None:
        gpu_unit = unit_diff(services_run.log, "monitor-gpu")
        plain_unit = unit_diff(services_run.log, "monitor")

        assert "+DeviceAllow=char-nvidia* rw" in gpu_unit
        assert "+PrivateDevices=no" in gpu_unit
        assert "DeviceAllow" not in plain_unit
        assert "+PrivateDevices=yes" in plain_unit

    def test_the_monitor_config_is_not_shown_in_a_diff(self, services_run: Deployed) -> None:
        shown = "/etc/ollama-fleet/monitor.yml changes (not shown: it may hold secrets)"
        assert shown in services_run.log
        assert "diff of /etc/ollama-fleet/monitor.yml" not in services_run.log


def unit_diff(log: str, name: str) -> str:
    """The --diff of the monitor's unit for host `name`, from the runner's log."""
    start = log.index(f"[@strictfake/{name}] diff of {MONITOR_UNIT}")
    end = log.find("\n[@strictfake/", start + 1)
    return log[start : end if end != -1 else len(log)]


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (
            {"monitor_enabled": True, "monitor_address": "0.0.0.0"},
            "monitor_address: 0.0.0.0 listens beyond loopback, but firewall_allow_metrics is empty",
        ),
        (
            {"monitor_enabled": True, "ollama_enabled": False},
            "monitor_enabled: true, but ollama_enabled is false; the monitor watches this host's",
        ),
        ({"monitor_address": "localhost"}, "monitor_address: 'localhost' is not an IP address"),
        ({"monitor_address": "10.0.0.0/8"}, "monitor_address: '10.0.0.0/8' is not an IP address"),
        (
            {"monitor_intervals": {"conectivity": "5s"}},
            "monitor_intervals: unknown check 'conectivity'; did you mean connectivity?",
        ),
        (
            {"monitor_intervals": {"tls": 30}},
            "monitor_intervals: tls: expected a duration such as 30s, 5m or 1h, got 30",
        ),
        (
            {"monitor_intervals": {"tls": "0s"}},
            "monitor_intervals: tls: expected a duration such as 30s, 5m or 1h, got '0s'",
        ),
        (
            {"monitor_alertmanager_url": "alertmanager:9093"},
            "monitor_alertmanager_url: expected an http(s) URL",
        ),
    ],
)
def test_monitor_variables_are_refused_before_any_host_is_touched(
    tmp_path: Path, values: dict[str, object], problem: str
) -> None:
    with stub_wheel(tmp_path), pytest.raises(ConfigError) as refused:
        deploy_fakes(tmp_path, {"mon": host(**values)}, roles=["services"])

    assert re.search(r"inventory.yml:\d+: ", str(refused.value))
    assert problem in str(refused.value)


def test_a_slack_url_is_a_secret_never_quoted_in_a_refusal() -> None:
    with pytest.raises(ConfigError) as refused:
        hostvars.validate({"monitor_slack_url": "hooks.slack.example/T0KEN"}, where="inv.yml")
    assert "T0KEN" not in str(refused.value)
    assert "not shown: it is a secret" in str(refused.value)


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:9464/metrics"),
        ("::", "'http://[::1]:9464/metrics'"),
        ("10.0.0.5", "http://10.0.0.5:9464/metrics"),
    ],
)
def test_the_deploy_waits_for_the_monitor_where_it_listens(address: str, url: str) -> None:
    script = monitor_wait_script({"monitor_address": address, "monitor_port": 9464})
    assert f"curl -fs -o /dev/null --max-time 2 {url} && exit 0" in script
    assert script.endswith(
        "journalctl -u ollama-fleet-monitor.service -n 15 --no-pager -o cat >&2; exit 1"
    )


@pytest.mark.integration
def test_the_wait_ends_when_metrics_answer_and_fails_naming_the_url_when_not() -> None:
    async def metrics(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"up 1\n"})

    with serve_in_thread(metrics) as port:
        answering = subprocess.run(
            ["sh", "-c", monitor_wait_script({"monitor_address": "0.0.0.0", "monitor_port": port})],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert answering.returncode == 0, answering.stderr
    silent = free_port()
    script = monitor_wait_script(
        {"monitor_address": "127.0.0.1", "monitor_port": silent}, timeout_s=1
    )
    failed = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    url = f"http://127.0.0.1:{silent}/metrics"
    assert f"the monitor does not answer on {url} after 1 s; its journal:" in failed.stderr


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "127.0.0.53"])
def test_a_monitor_on_loopback_needs_no_metrics_networks(address: str) -> None:
    hostvars.validate({"monitor_enabled": True, "monitor_address": address}, where="inv.yml")


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


@pytest.mark.parametrize(
    ("values", "wanted"),
    [
        ({}, ["python3-venv"]),
        ({"gateway_enabled": True}, ["python3-venv", "curl"]),
        ({"monitor_enabled": True}, ["python3-venv", "curl"]),
    ],
)
def test_curl_is_installed_where_the_deploy_waits_with_it(
    values: dict[str, Any], wanted: list[str]
) -> None:
    # the /health and /metrics waits run curl on the host: a minimal host may lack it
    assert packages(hostvars.resolved(values, "services")) == wanted
