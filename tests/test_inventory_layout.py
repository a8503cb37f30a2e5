"""group_vars/ and host_vars/ beside the inventory, inventory directories, and -e extra vars."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ollama_fleet import vault
from ollama_fleet.errors import ConfigError
from ollama_fleet.extravars import parse_extra_vars
from ollama_fleet.inventory import InventoryError, load_inventory, needs_vault_password
from ollama_fleet.vault import VaultPassword, encrypt_text, encrypt_value

INVENTORY = """
all:
  vars:
    ssh_user: deploy
  children:
    gpu:
      vars:
        ssh_port: 2200
      hosts:
        gpu-1:
        gpu-2:
          ssh_port: 2202
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def messages(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(path, **kwargs)  # type: ignore[arg-type]
    return str(info.value).splitlines()


def test_group_vars_and_host_vars_files_beside_the_inventory(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.yml", INVENTORY)
    write(tmp_path / "group_vars" / "all.yml", "ssh_user: ops\nrequired_models: [llama3.2:1b]\n")
    write(tmp_path / "group_vars" / "gpu" / "ports.yml", "ssh_port: 2300\n")
    write(tmp_path / "group_vars" / "gpu" / "tls.yaml", "tls_warn_days: 30\n")
    write(tmp_path / "host_vars" / "gpu-2.yaml", "ssh_port: 2400\n")
    inventory = load_inventory(path)
    one, two = inventory.host("gpu-1"), inventory.host("gpu-2")
    # Ansible's order: the inventory's group vars, then group_vars/, then the host's, host_vars/
    assert dict(one.vars) == {
        "ssh_user": "ops",
        "required_models": ["llama3.2:1b"],
        "ssh_port": 2300,
        "tls_warn_days": 30,
    }
    assert two.vars["ssh_port"] == 2400
    assert str(one.origins["ssh_port"]) == f"{tmp_path / 'group_vars' / 'gpu' / 'ports.yml'}:1"


def test_group_vars_are_as_strict_as_the_inventory(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.yml", INVENTORY)
    gpu = write(tmp_path / "group_vars" / "gpu.yml", "ssh_port: 22\nclosed_ports: [abc]\n")
    gpuu = write(tmp_path / "group_vars" / "gpuu.yml", "ssh_port: 22\n")
    ghost = write(tmp_path / "host_vars" / "gpu-3.yml", "ssh_port: 22\n")
    assert messages(path) == [
        f"{gpu}:2: closed_ports: 'abc' is not a port (1-65535)",
        f"{gpuu}: no group 'gpuu' in the inventory; did you mean gpu?",
        f"{ghost}: no host 'gpu-3' in the inventory; did you mean gpu-2?",
    ]


def test_a_bad_value_inherited_from_group_vars_names_that_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.yml", INVENTORY)
    gpu = write(tmp_path / "group_vars" / "gpu.yml", "caddy_tls: acme\n")
    assert messages(path) == [
        f"{gpu}:1: caddy_tls: acme, but caddy_acme_email is not set (hosts gpu-1, gpu-2)"
    ]


def test_an_inventory_directory_merges_its_files_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "prod"
    write(folder / "10-gpu.yml", "gpu:\n  hosts:\n    gpu-1:\n")
    write(folder / "20-web.yaml", "web:\n  hosts:\n    web-1:\n    gpu-1:\n      ssh_port: 2222\n")
    write(folder / "notes.txt", "not an inventory")
    write(folder / "group_vars" / "web.yml", "ssh_user: www\n")
    inventory = load_inventory(folder)
    assert [(h.name, h.groups) for h in inventory.hosts] == [
        ("gpu-1", ("gpu", "web")),
        ("web-1", ("web",)),
    ]
    assert dict(inventory.host("gpu-1").vars) == {"ssh_user": "www", "ssh_port": 2222}


def test_an_inventory_directory_without_yaml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert messages(tmp_path / "empty") == [
        f"{tmp_path / 'empty'}: an inventory directory, but no *.yml or *.yaml in it"
    ]


# -- vault in the layout ---------------------------------------------------------------------

PASSWORD = VaultPassword("layout-pass")


@pytest.fixture
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)


def test_group_vars_may_be_a_vault_file_or_hold_vault_values(
    tmp_path: Path, fast_scrypt: None
) -> None:
    path = write(tmp_path / "inv.yml", INVENTORY)
    assert not needs_vault_password(path)
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "gpu.yml").write_text(
        encrypt_text("api_key: sk-group\n", PASSWORD), encoding="utf-8"
    )
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "gpu-2.yml").write_text(
        encrypt_value("api_key", "sk-host", PASSWORD), encoding="utf-8"
    )
    assert needs_vault_password(path)
    inventory = load_inventory(path, vault=PASSWORD)
    assert inventory.host("gpu-1").vars["api_key"] == "sk-group"
    assert inventory.host("gpu-2").vars["api_key"] == "sk-host"
    assert {"sk-group", "sk-host"} <= inventory.secrets
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    assert str(info.value) == (
        f"{tmp_path / 'group_vars' / 'gpu.yml'}: line 1: vault-encrypted data but no vault "
        "password was given (use --vault-password-file FILE or set OLLAMA_FLEET_VAULT_PASSWORD)"
    )


# -- extra vars ------------------------------------------------------------------------------


def test_extra_vars_win_over_every_level_and_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.yml", INVENTORY)
    write(tmp_path / "host_vars" / "gpu-2.yml", "ssh_port: 2400\n")
    extra_file = write(tmp_path / "extra.yml", "ssh_user: root\n")
    extra = parse_extra_vars(["ssh_port=2022", f"@{extra_file}", "closed_ports=[1, 2]"])
    inventory = load_inventory(path, extra_vars=extra)
    for host in inventory.hosts:
        assert host.vars["ssh_port"] == 2022
        assert host.vars["ssh_user"] == "root"
        assert host.vars["closed_ports"] == [1, 2]
    assert str(inventory.host("gpu-1").origins["ssh_port"]) == "-e"
    assert str(inventory.host("gpu-1").origins["ssh_user"]) == f"{extra_file}:1"


def test_extra_vars_errors_name_the_option(tmp_path: Path) -> None:
    bad_file = write(tmp_path / "extra.yml", "ssh_port: 22\nssh_port: 23\nsh_user: x\n")
    with pytest.raises(InventoryError) as info:
        parse_extra_vars(
            ["requried_models=[a]", "ssh_port=http", "justaword", "api_key=[x", f"@{bad_file}"]
        )
    assert str(info.value).splitlines() == [
        "-e: requried_models: unknown variable; did you mean required_models?",
        "-e: ssh_port: 'http' is not a port (1-65535)",
        "-e: 'justaword': expected KEY=VALUE or @FILE",
        "-e: api_key: the value is not valid YAML (quote it)",
        f"{bad_file}:2: ssh_port: duplicate key; first at line 1",
        f"{bad_file}:3: sh_user: unknown variable; did you mean ssh_user?",
    ]


def test_a_missing_extra_vars_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        parse_extra_vars([f"@{tmp_path / 'nope.yml'}"])
    assert str(info.value) == f"-e @{tmp_path / 'nope.yml'}: no such file"


def test_an_extra_secret_is_redacted_like_a_vault_value(tmp_path: Path) -> None:
    path = write(tmp_path / "inv.yml", INVENTORY)
    inventory = load_inventory(path, extra_vars=parse_extra_vars(["api_key=sk-from-cli"]))
    assert "sk-from-cli" in inventory.secrets
