"""The lab's inventory: what `up` writes loads, validates and targets the lab's forwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from ollama_fleet import hostvars, vault
from ollama_fleet.checks.model import PublicAccess
from ollama_fleet.checks.targets import targets_from_inventory
from ollama_fleet.inventory import Inventory, load_inventory
from ollama_fleet.lab.inventory import write_lab_inventory
from ollama_fleet.lab.state import GUEST_PORTS, LabInfo
from ollama_fleet.lab.vault import read_lab_password


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)  # the lab's vault: fast to make in a test


def load(path: Path) -> Inventory:
    """The lab's inventory with its vault beside it, opened with the lab's password."""
    return load_inventory(path, vault=read_lab_password(path.parent))


def test_inventory_reaches_the_lab_through_its_forwards(info: LabInfo) -> None:
    path = write_lab_inventory(info)
    assert path == info.state_dir / "inventory.yml"
    inventory = load(path)
    assert [host.name for host in inventory.hosts] == ["lab"]
    host = inventory.host("lab")
    assert "gpu" in host.groups
    connection = {k: v for k, v in host.vars.items() if k.startswith(("ssh_", "lab_"))}
    assert connection == {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": 40022,
        "ssh_user": "root",
        "ssh_key": str(info.ssh_key),
        "ssh_known_hosts_file": str(info.known_hosts),
        "ssh_strict_host_key_checking": "no",
        "lab_http_port": 40080,
        "lab_https_port": 40443,
        "lab_ollama_port": 41434,
    }


def test_inventory_deploys_the_simulator_with_the_labs_certificate(info: LabInfo) -> None:
    inventory = load(write_lab_inventory(info))
    # load_inventory validates every value, strictly, where it is set
    host = inventory.host("lab")
    assert host.vars["ollama_artifact"] == "simulator"
    assert host.vars["caddy_tls"] == "files"
    for key in ("caddy_tls_cert_file", "caddy_tls_key_file", "tls_ca_file"):
        assert (info.state_dir / host.vars[key]).is_file(), key
    (target,) = targets_from_inventory(inventory)
    assert target.url == "https://localhost:40443"
    assert target.closed_ports == (41434,)
    assert target.open_ports == (40443, 40022)
    # the lab's vault turns the gateway on: nothing without a key, the checks carry one;
    # the write endpoints are still probed, and the lab's Caddy must refuse them
    assert target.public_access is PublicAccess.CLOSED
    assert target.api_key is not None and target.api_key.startswith("ofk_")
    assert target.check_write_endpoints is True


def test_the_labs_vault_enables_the_gateway_with_an_admin_and_a_user_key(info: LabInfo) -> None:
    host = load(write_lab_inventory(info)).host("lab")
    assert host.vars["gateway_enabled"] is True
    keys = {entry["name"]: entry for entry in host.vars["gateway_api_keys"]}
    assert {name: entry["role"] for name, entry in keys.items()} == {
        "lab-admin": "admin",
        "lab-user": "user",
    }
    assert host.vars["api_key"] == keys["lab-user"]["key"] != keys["lab-admin"]["key"]
    hostvars.validate(host.vars, where="lab", host="lab")
    on_disk = (info.state_dir / "host_vars" / "lab.yml").read_text()
    assert keys["lab-user"]["key"] not in on_disk  # only as vault values
    for name in ("host_vars/lab.yml", "vault-password"):
        assert (info.state_dir / name).stat().st_mode & 0o777 == 0o600, name


def test_the_labs_vault_is_made_once_and_kept(info: LabInfo) -> None:
    first = load(write_lab_inventory(info)).host("lab").vars["api_key"]
    again = load(write_lab_inventory(info)).host("lab").vars["api_key"]
    assert again == first


def test_certificate_is_made_once_and_kept(info: LabInfo) -> None:
    write_lab_inventory(info)
    cert = (info.state_dir / "tls" / "lab.crt").read_bytes()
    write_lab_inventory(info)
    assert (info.state_dir / "tls" / "lab.crt").read_bytes() == cert


def test_inventory_is_rewritten_whole(info: LabInfo) -> None:
    path = write_lab_inventory(info)
    path.write_text(path.read_text() + "# an edit\n")
    write_lab_inventory(info)
    assert "# an edit" not in path.read_text()
    assert path.read_text().startswith("# Written by `ollama-fleet lab up`")
    assert sorted(p.name for p in info.state_dir.iterdir()) == [
        "host_vars",
        "inventory.yml",
        "tls",
        "vault-password",
    ]


def test_inventory_runs_the_monitor_where_its_forward_reaches_it(info: LabInfo) -> None:
    host = load(write_lab_inventory(info)).host("lab")
    assert host.vars["monitor_enabled"] is True
    # the guest end of the lab's monitor forward; qemu's forwards arrive from its gateway
    assert host.vars["monitor_port"] == GUEST_PORTS["monitor"]
    assert host.vars["monitor_address"] == "0.0.0.0"
    assert host.vars["firewall_allow_metrics"] == ["10.0.2.2/32"]
    assert host.vars["monitor_intervals"] == {"connectivity": "5s"}
    # the webhook is left to who deploys it (the e2e tests point it at a receiver on the VM)
    assert "monitor_webhook_url" not in host.vars
    hostvars.validate(host.vars, where="lab", host="lab")
