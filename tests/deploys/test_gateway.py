"""The gateway in the deploy: nodes resolved across the inventory, its unit, Caddy and firewall."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ollama_fleet import hostvars
from ollama_fleet.deploys.facts import PythonVersion
from ollama_fleet.deploys.gateway import GATEWAY_UNIT, GATEWAY_UNIT_FILE, config_check
from ollama_fleet.deploys.gateway_fleet import gateway_problems, resolve_gateways
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import load_inventory
from ollama_fleet.render import render_gateway_config, render_gateway_service

from .answers import answer, file_with, marker
from .captured import fact_command
from .conftest import PREFIX, Deployed, deploy_fakes, host, stub_wheel
from .test_services import unit_running

KEY = "sk-gateway-user-0123456789"
GATEWAY = {"gateway_enabled": True, "gateway_api_keys": [KEY]}
UNIT_OPS = (
    f"services: {GATEWAY_UNIT}",
    "services: gateway enabled and running",
    "services: restart the gateway for the change",
    "services: the gateway answers on /health",
)
RELOAD = "services: reload the gateway for its new config (streams go on)"
REMOVAL_OPS = (
    "services: gateway stopped and disabled (gateway_enabled: false)",
    f"services: {GATEWAY_UNIT} removed",
    "services: reload systemd (gateway unit removed)",
)
FLEET = """\
all:
  children:
    gpu:
      vars:
        ollama_host: 0.0.0.0:11434
        ollama_num_parallel: 4
        caddy_enabled: false
      hosts:
        gpu-1: {ssh_hostname: 10.0.0.11}
        gpu-2:
          ssh_hostname: gpu-2.example.com
          gateway_node_address: 10.0.0.12
          firewall_allow_ollama: [192.168.0.0/24]
    gateway:
      hosts:
        gw-1:
          ssh_hostname: 10.0.0.20
          ollama_enabled: false
          gateway_enabled: true
          gateway_api_keys: ["sha256:{hash}"]
          gateway_nodes: {nodes}
""".replace("{hash}", "a" * 64)


def fleet(tmp_path: Path, nodes: str) -> Path:
    path = tmp_path / "fleet.yml"
    path.write_text(FLEET.replace("{nodes}", nodes))
    return path


# -- the nodes, resolved on the controller -------------------------------------------------------


def test_a_group_in_gateway_nodes_stands_for_its_hosts_and_lets_the_gateway_in(
    tmp_path: Path,
) -> None:
    inventory = resolve_gateways(load_inventory(fleet(tmp_path, "[gpu]")))

    assert inventory.host("gw-1").vars["gateway_nodes"] == [
        {"name": "gpu-1", "url": "http://10.0.0.11:11434", "max_parallel": 4},
        {"name": "gpu-2", "url": "http://10.0.0.12:11434", "max_parallel": 4},
    ]
    assert inventory.host("gpu-1").vars["firewall_allow_ollama"] == ["10.0.0.20/32"]
    # what the inventory allowed stays, the gateway's address joins it
    assert inventory.host("gpu-2").vars["firewall_allow_ollama"] == [
        "192.168.0.0/24",
        "10.0.0.20/32",
    ]
    assert "firewall_allow_ollama" not in inventory.host("gw-1").vars


def test_host_names_and_node_mappings_mix_and_repeat_only_once(tmp_path: Path) -> None:
    nodes = "[gpu-1, gpu, {name: cloud, url: 'https://ollama.example.com:443', weight: 2}]"
    inventory = resolve_gateways(load_inventory(fleet(tmp_path, nodes)))

    resolved = inventory.host("gw-1").vars["gateway_nodes"]
    assert [node["name"] for node in resolved] == ["gpu-1", "gpu-2", "cloud"]
    assert resolved[2] == {"name": "cloud", "url": "https://ollama.example.com:443", "weight": 2}


def test_a_misspelt_node_is_named_at_its_line_with_the_closest_name(tmp_path: Path) -> None:
    path = fleet(tmp_path, "[gpu-1, gpu-3, gpus]")
    inventory = load_inventory(path)

    with pytest.raises(ConfigError) as refused:
        resolve_gateways(inventory)

    line = FLEET.splitlines().index("          gateway_nodes: {nodes}") + 1
    assert str(refused.value).splitlines() == [
        f"{path}:{line}: gateway_nodes: no host or group named 'gpu-3'; did you mean gpu-2?",
        f"{path}:{line}: gateway_nodes: no host or group named 'gpus'; did you mean gpu?",
    ]
    assert gateway_problems(inventory) == str(refused.value).splitlines()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("ollama_host: 0.0.0.0:11434", "ollama_host: 127.0.0.1:11434"),
            "'gpu-1' has Ollama on loopback only (ollama_host 127.0.0.1:11434); set "
            "ollama_host: 0.0.0.0:11434 there",
        ),
        (
            ("gpu-1: {ssh_hostname: 10.0.0.11}", "gpu-1: {ollama_enabled: false}"),
            "'gpu-1' runs no Ollama (ollama_enabled: false)",
        ),
        (
            ("ssh_hostname: 10.0.0.20", "ssh_hostname: gw-1.example.com"),
            "gw-1's address 'gw-1.example.com' is not an IP address, so the firewall of "
            "gpu-1, gpu-2 cannot let it in; set gateway_node_address on gw-1",
        ),
        (
            ("gateway_node_address: 10.0.0.12", "gateway_node_address: fd00::12"),
            "gw-1 dials gpu-2 at IPv6 fd00::12 from its IPv4 address 10.0.0.20, which is all "
            "gpu-2's firewall lets in; give gateway_node_address of one family on both hosts",
        ),
        (
            ("        caddy_enabled: false\n", ""),
            "'gpu-1' is behind gw-1's gateway but serves Ollama without a key through its own "
            "Caddy; set caddy_enabled: false on it (the gateway is its front door) or protect it",
        ),
    ],
)
def test_a_node_the_gateway_could_not_reach_is_refused(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    path = tmp_path / "fleet.yml"
    path.write_text(FLEET.replace("{nodes}", "[gpu]").replace(*change))

    with pytest.raises(ConfigError) as refused:
        resolve_gateways(load_inventory(path))

    assert re.match(rf"{re.escape(str(path))}:\d+: gateway_nodes: ", str(refused.value))
    assert problem in str(refused.value)


def test_two_nodes_whose_names_clean_up_alike_are_refused(tmp_path: Path) -> None:
    # gateway.yml's node names are [A-Za-z0-9._-]: "gpu/1" becomes "gpu-1", which the
    # gateway would refuse as given twice, after the file was deployed
    path = tmp_path / "fleet.yml"
    path.write_text(FLEET.replace("{nodes}", "[gpu]").replace("gpu-2:", "gpu/1:"))

    with pytest.raises(ConfigError) as refused:
        resolve_gateways(load_inventory(path))

    assert re.fullmatch(
        rf"{re.escape(str(path))}:\d+: gateway_nodes: 'gpu-1' and 'gpu/1' are both node "
        r"'gpu-1' in gw-1's gateway\.yml; rename one, or give one as \{name, url\}",
        str(refused.value),
    )


def test_a_node_with_its_own_caddy_protected_may_stay_behind_a_gateway(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yml"
    protected = (
        "        caddy_enabled: true\n"
        "        public_access: closed\n"
        "        caddy_extra_directives: 'basic_auth {\\n\\tbob HASH\\n}'\n"
    )
    path.write_text(
        FLEET.replace("{nodes}", "[gpu-1]").replace("        caddy_enabled: false\n", protected)
    )
    inventory = load_inventory(path)
    assert gateway_problems(inventory) == []


def test_an_inventory_without_gateways_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "plain.yml"
    path.write_text("all:\n  hosts:\n    gpu-1: {ollama_host: 0.0.0.0:11434}\n")
    inventory = load_inventory(path)
    assert resolve_gateways(inventory) == inventory


def test_the_example_inventory_puts_its_gateway_in_front_of_both_nodes() -> None:
    example = Path(__file__).resolve().parents[2] / "inventories" / "gateway.example.yml"
    inventory = resolve_gateways(load_inventory(example))

    nodes = inventory.host("gw-1").vars["gateway_nodes"]
    assert [node["url"] for node in nodes] == ["http://10.0.0.11:11434", "http://10.0.0.12:11434"]
    for name in ("gpu-1", "gpu-2"):
        assert inventory.host(name).vars["firewall_allow_ollama"] == ["10.0.0.20/32"]
        assert not hostvars.enabled(inventory.host(name).vars, "caddy")
    assert hostvars.enabled(inventory.host("gw-1").vars, "caddy")


# -- dry deploys on fake hosts -------------------------------------------------------------------


def converged_gateway(name: str, installed: str, **changed: Any) -> dict[str, Any]:
    """Host `name` running the gateway as this deploy leaves it; gateway.yml rendered from
    the variables `changed` instead, if any."""
    values = {**GATEWAY, "ollama_host": "127.0.0.1:11434"}
    v = hostvars.resolved(values, "services")
    on_host = hostvars.resolved({**values, **changed}, "services")
    config = render_gateway_config(on_host, ollama_host="127.0.0.1:11434", local_name=PREFIX + name)
    group = {"mode": "640", "group": "ollama-fleet"}
    return {
        **marker("/opt/ollama-fleet/.ollama-fleet-bundle", installed),
        **file_with("/etc/ollama-fleet/gateway.yml", config, **group),
        **file_with(GATEWAY_UNIT_FILE, render_gateway_service(v)),
        **unit_running(GATEWAY_UNIT),
    }


@pytest.fixture(scope="module")
def gateway_run(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    folder = tmp_path_factory.mktemp("gateway")
    with stub_wheel(folder) as wheel:
        installed = f"{wheel.wheel} sha256:{wheel.sha256}"
        hosts = {
            "on-gpu": host(**GATEWAY),
            "current": host(converged_gateway("current", installed), **GATEWAY),
            "new-keys": host(
                converged_gateway("new-keys", installed, gateway_api_keys=["sk-old-key-01"]),
                **GATEWAY,
            ),
            "was-on": host(
                file_with(GATEWAY_UNIT_FILE, "[Service]\nExecStart=/bin/true\n"),
                unit_running(GATEWAY_UNIT),
            ),
            "old-python": host({fact_command(PythonVersion): answer(["3.9"])}, **GATEWAY),
            "node": host(
                ollama_host="0.0.0.0:11434", gateway_node_address="10.0.0.11", caddy_enabled=False
            ),
            "gw": host(
                **GATEWAY,
                ollama_enabled=False,
                gpu_enabled=False,
                gateway_nodes=[PREFIX + "node"],
                gateway_node_address="10.0.0.20",
            ),
        }
        return deploy_fakes(folder, hosts, roles=["caddy", "firewall", "services"], diff=True)


@pytest.mark.integration
class TestDryDeploy:
    def test_the_gateway_is_installed_started_and_waited_for(self, gateway_run: Deployed) -> None:
        changes = gateway_run.changes("on-gpu")

        for op in (*UNIT_OPS, "services: gateway config (API keys hashed)"):
            assert op in changes, op
        assert RELOAD not in changes  # a first start: nothing to reload
        assert changes.index(UNIT_OPS[0]) < changes.index(UNIT_OPS[1])
        assert not [op for op in changes if op in REMOVAL_OPS]

    def test_a_gateway_as_deployed_is_left_running(self, gateway_run: Deployed) -> None:
        plans = gateway_run.plans("current")

        for op in (*UNIT_OPS, RELOAD, "services: gateway config (API keys hashed)"):
            assert plans[op] is False, op

    def test_new_keys_reload_the_gateway_without_a_restart(self, gateway_run: Deployed) -> None:
        plans = gateway_run.plans("new-keys")

        assert plans["services: gateway config (API keys hashed)"] is True
        assert plans[RELOAD] is True
        assert plans["services: restart the gateway for the change"] is False
        assert plans["services: the gateway answers on /health"] is True

    def test_a_gateway_turned_off_is_stopped_and_its_unit_removed(
        self, gateway_run: Deployed
    ) -> None:
        changes = gateway_run.changes("was-on")

        assert [op for op in changes if op in REMOVAL_OPS] == list(REMOVAL_OPS)
        assert not [op for op in changes if op in (*UNIT_OPS, RELOAD)]

    def test_the_self_check_goes_through_the_gateway_with_its_key(
        self, gateway_run: Deployed
    ) -> None:
        shown = "/etc/ollama-fleet/checks.yml changes (not shown: it may hold secrets)"
        assert f"[{PREFIX}on-gpu] {shown}" in gateway_run.log
        assert KEY not in gateway_run.log

    def test_a_dedicated_gateway_host_gets_caddy_in_front_of_its_gateway(
        self, gateway_run: Deployed
    ) -> None:
        changes = gateway_run.changes("gw")

        assert "caddy: Caddyfile (validated on the host first)" in changes
        assert UNIT_OPS[0] in changes
        caddyfile = section(gateway_run.log, "gw", "/etc/caddy/Caddyfile")
        assert "+\treverse_proxy 127.0.0.1:8080 {" in caddyfile
        assert "+\trespond @gateway_metrics 404" in caddyfile
        assert "ollama-fleet-check.timer" not in " ".join(changes)  # no Ollama to check here

    def test_caddy_is_not_pointed_at_a_gateway_the_services_role_cannot_install(
        self, gateway_run: Deployed
    ) -> None:
        # python3 3.9 runs no wheel: no gateway comes, so the site Caddy serves stays as it is
        changes = gateway_run.changes("old-python")

        assert "services: REFUSED (see the message)" in changes
        assert "caddy: Caddyfile (validated on the host first)" not in changes

    def test_the_node_behind_it_lets_only_the_gateway_reach_ollama(
        self, gateway_run: Deployed
    ) -> None:
        ruleset = section(gateway_run.log, "node", "/etc/nftables.d/ollama-fleet.nft")
        rule = '+\t\tip saddr 10.0.0.20/32 tcp dport 11434 accept comment "firewall_allow_ollama"'
        assert rule in ruleset
        assert "11434" not in section(gateway_run.log, "gw", "/etc/nftables.d/ollama-fleet.nft")


def section(log: str, name: str, path: str) -> str:
    """The --diff of `path` on host `name`, from the runner's log."""
    start = log.index(f"[{PREFIX}{name}] diff of {path}")
    end = log.find("\n[@strictfake/", start + 1)
    return log[start : end if end != -1 else len(log)]


def test_the_gateway_without_keys_is_refused_before_any_host_is_touched(tmp_path: Path) -> None:
    with stub_wheel(tmp_path), pytest.raises(ConfigError) as refused:
        deploy_fakes(tmp_path, {"gw": host(gateway_enabled=True)}, roles=["services"])

    refusal = r"inventory.yml:\d+: gateway_enabled: true, but gateway_api_keys is empty"
    assert re.search(refusal, str(refused.value))


@pytest.mark.integration
def test_a_staged_gateway_config_the_gateway_refuses_fails_its_check(tmp_path: Path) -> None:
    # what checked_file runs on the staged gateway.yml before the swap, with this venv
    staged = tmp_path / "gateway.yml.ollama-fleet-new"
    v = hostvars.resolved(GATEWAY, "services")
    staged.write_text(render_gateway_config(v, ollama_host="127.0.0.1:11434"))
    check = config_check(sys.prefix).format(path=staged)

    assert subprocess.run(["sh", "-c", check], capture_output=True).returncode == 0
    # two keys with one hash, as an older deploy could write it: the gateway refuses it
    doubled = staged.read_text().replace("keys:\n", "keys:\n- {name: twin, sha256: %s}\n")
    digest = re.search(r"sha256: ([0-9a-f]{64})", staged.read_text())
    assert digest is not None
    staged.write_text(doubled % digest.group(1))
    refused = subprocess.run(["sh", "-c", check], capture_output=True, text=True)
    assert refused.returncode == 2, refused.stderr
