"""The inventories and tables in the repository stay in step with the code."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from ollama_fleet.checks.model import PublicAccess, Status
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.targets import targets_from_inventory
from ollama_fleet.controller import DeployOptions, make_plan
from ollama_fleet.deploys.gateway_fleet import resolve_gateways
from ollama_fleet.gateway.config import load_config
from ollama_fleet.hostvars import ROLES, markdown_table, resolved
from ollama_fleet.inventory import load_inventory, needs_vault_password
from ollama_fleet.lab.inventory import COMMITTED_HEADER, lab_inventory_text
from ollama_fleet.lab.ports import DEFAULT_PORTS
from ollama_fleet.lab.state import LabInfo
from ollama_fleet.render import render_gateway_config
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread
from ollama_fleet.vault import VaultPassword

ROOT = Path(__file__).resolve().parents[1]
# the password the examples' vault values are encrypted with (their comments say so)
EXAMPLE_VAULT = VaultPassword("two-gateways-example")


def test_committed_lab_inventory_is_what_the_default_lab_writes() -> None:
    info = LabInfo(
        state_dir=Path("/unused"),
        ssh_port=DEFAULT_PORTS["ssh"],
        http_port=DEFAULT_PORTS["http"],
        https_port=DEFAULT_PORTS["https"],
        ollama_port=DEFAULT_PORTS["ollama"],
        monitor_port=DEFAULT_PORTS["monitor"],
        image_dir=Path("/unused"),
        image_hash="x",
        accel="tcg",
        memory_mb=2048,
        cpus=2,
    )
    expected = lab_inventory_text(info, base="~/.cache/ollama-fleet/lab", header=COMMITTED_HEADER)
    assert (ROOT / "inventories" / "lab.yml").read_text() == expected


def test_production_example_passes_the_deploy_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the plan checks that ssh_key (~/.ssh/ollama-fleet) exists: give it one to find
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "ollama-fleet").write_text("a key\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    inventory = load_inventory(ROOT / "inventories" / "production.example.yml")
    # load_inventory validates every value, strictly, where it is set
    assert {h.name for h in inventory.hosts} == {"gpu-1", "gpu-2", "gpu-3", "gw-1", "mon-1"}
    plan = make_plan(
        inventory,
        DeployOptions(roles=("caddy", "firewall", "models")),
        decrypt=lambda text, path: text,
    )
    assert [h["name"] for h in plan.spec["hosts"]] == ["gpu-1", "gpu-2", "gpu-3", "gw-1", "mon-1"]


def test_gateway_example_resolves_and_passes_the_deploy_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "ollama-fleet").write_text("a key\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    inventory = resolve_gateways(load_inventory(ROOT / "inventories" / "gateway.example.yml"))
    plan = make_plan(
        inventory, DeployOptions(roles=("caddy", "firewall")), decrypt=lambda text, path: text
    )
    hosts = {h["name"]: h["data"] for h in plan.spec["hosts"]}
    assert [n["name"] for n in hosts["gw-1"]["gateway_nodes"]] == ["gpu-1", "gpu-2"]
    assert hosts["gpu-1"]["firewall_allow_ollama"] == ["10.0.0.20/32"]
    text = (ROOT / "docs" / "deploy.md").read_text()
    example = (ROOT / "inventories" / "gateway.example.yml").read_text()
    names = set(re.findall(r"^\s*#?\s*([a-z_]+):", example, re.MULTILINE))
    names -= {"all", "vars", "children", "hosts", "name", "key", "role", "models", "rpm", "tpm"}
    names -= {"gpu", "gateway", "expires", "api_key"}  # groups, key fields, a check variable
    assert sorted(n for n in names if f"`{n}" not in text) == []


def test_deploy_docs_carry_every_role_table_as_generated() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    for role in ROLES:
        assert f"### {role}" in text
        assert markdown_table(role) in text, f"docs/deploy.md: the {role} table is out of date"


@pytest.mark.parametrize("group", ["checks", "connection", "lab"])
def test_inventory_docs_carry_the_other_variable_tables_as_generated(group: str) -> None:
    text = (ROOT / "docs" / "inventory.md").read_text()
    assert markdown_table(group) in text, f"docs/inventory.md: the {group} table is out of date"


def test_every_inventory_in_the_repository_loads_strictly() -> None:
    for path in sorted((ROOT / "inventories").glob("*.yml")):
        vault = EXAMPLE_VAULT if needs_vault_password(path) else None
        assert load_inventory(path, vault).hosts, path


def test_two_gateways_share_one_database_and_one_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "ollama-fleet").write_text("a key\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    path = ROOT / "inventories" / "two-gateways.example.yml"
    inventory = resolve_gateways(load_inventory(path, EXAMPLE_VAULT))
    plan = make_plan(
        inventory, DeployOptions(roles=("caddy", "firewall")), decrypt=lambda text, path: text
    )
    hosts = {h["name"]: h["data"] for h in plan.spec["hosts"]}
    # both gateways front both nodes, and each node's firewall lets both gateways in
    for gateway in ("gw-1", "gw-2"):
        assert [n["name"] for n in hosts[gateway]["gateway_nodes"]] == ["gpu-1", "gpu-2"]
    for node in ("gpu-1", "gpu-2"):
        assert hosts[node]["firewall_allow_ollama"] == ["10.0.0.20/32", "10.0.0.21/32"]
    # gateway.yml as the deploy writes it on each gateway, read by the gateway's own reader
    configs = []
    for gateway in ("gw-1", "gw-2"):
        text = render_gateway_config(
            resolved(hosts[gateway], "services"), ollama_host="127.0.0.1:11434"
        )
        (tmp_path / f"{gateway}.yml").write_text(text)
        configs.append(load_config(tmp_path / f"{gateway}.yml"))
    one, two = configs
    assert one.sessions.database_url is not None
    assert one.sessions.database_url.startswith("postgresql://")
    assert one.shared_limits.redis_url is not None
    assert one.shared_limits.redis_url.startswith("redis://")
    assert (one.sessions, one.shared_limits) == (two.sessions, two.shared_limits)
    # the decrypted URLs are secrets: what the deploy prints is redacted of them
    assert {one.sessions.database_url, one.shared_limits.redis_url} <= inventory.secrets
    text = (ROOT / "docs" / "deploy.md").read_text()
    names = set(re.findall(r"^\s*#?\s*([a-z_]+):", path.read_text(), re.MULTILINE))
    names -= {"all", "vars", "children", "hosts", "name", "key", "role", "rpm", "gpu", "gateway"}
    assert sorted(n for n in names if f"`{n}" not in text) == []


def test_every_variable_in_the_production_example_is_documented() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text() + (ROOT / "docs" / "inventory.md").read_text()
    example = (ROOT / "inventories" / "production.example.yml").read_text()
    names = set(re.findall(r"^\s*#?\s*([a-z_]+):", example, re.MULTILINE))
    names -= {"all", "vars", "children", "hosts", "name", "digest"}
    names -= {"gpu", "gateway", "monitor", "gpu_1"}  # group names
    undocumented = sorted(n for n in names if f"`{n}" not in text)
    assert not undocumented, undocumented


def test_example_inventory_declares_which_hosts_are_open_on_purpose() -> None:
    targets = targets_from_inventory(load_inventory(ROOT / "inventories" / "example.yml"))
    assert {t.name: t.public_access for t in targets} == {
        "gpu-1": PublicAccess.OPEN,
        "gpu-2": PublicAccess.OPEN,
        "gw-1": PublicAccess.CLOSED,
    }
    assert all(t.check_write_endpoints for t in targets)


@pytest.mark.integration
def test_the_hosts_self_check_passes_against_its_loopback_ollama(tmp_path: Path) -> None:
    # the inventory the services role writes to /etc/ollama-fleet/checks.yml, run the way the
    # timer runs it, against the simulator standing for the host's own Ollama on loopback
    from ollama_fleet.deploys.services import self_check_inventory

    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        path = tmp_path / "checks.yml"
        path.write_text(self_check_inventory(f"http://127.0.0.1:{port}", ["llama3.2:1b"]))
        (target,) = targets_from_inventory(load_inventory(path))
        run = asyncio.run(run_checks([target]))
    assert target.public_access is PublicAccess.OPEN
    assert target.check_write_endpoints is False  # they answer on loopback by design
    assert {r.check: r.status for r in run.results} == {
        "connectivity": Status.OK,
        "models": Status.OK,
        "chat": Status.OK,
        "auth": Status.OK,
    }
