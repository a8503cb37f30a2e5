"""load_inventory: Ansible-style groups, children, hosts and vars, vault data, one-line errors."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from ollama_fleet import vault
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import load_inventory
from ollama_fleet.vault import (
    PasswordSource,
    VaultError,
    VaultPassword,
    encrypt_text,
    encrypt_value,
)


def write(tmp_path: Path, text: str, name: str = "inventory.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    """The message of the ConfigError that loading `path` raises; it must be one line."""
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


FLEET = """
all:
  vars:
    ollama_port: 11434
    x_tier: base
    x_region: none
  hosts:
    bastion:
  children:
    gpu:
      vars:
        x_tier: gpu
        x_gpu: true
      hosts:
        gpu-eu-1:
          public_url: https://gpu-eu-1.example.net
        gpu-us-2:
          public_url: https://gpu-us-2.example.net
          x_tier: host-level
      children:
        eu:
          vars:
            x_region: eu
          hosts:
            gpu-eu-1:
"""


def test_hosts_groups_and_merged_vars(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, FLEET))

    assert [h.name for h in inventory.hosts] == ["bastion", "gpu-eu-1", "gpu-us-2"]
    eu = inventory.host("gpu-eu-1")
    assert eu.groups == ("all", "gpu", "eu")
    assert dict(eu.vars) == {
        "ollama_port": 11434,
        "x_tier": "gpu",
        "x_region": "eu",
        "x_gpu": True,
        "public_url": "https://gpu-eu-1.example.net",
    }
    bastion = inventory.host("bastion")
    assert bastion.groups == ("all",)
    assert dict(bastion.vars) == {"ollama_port": 11434, "x_tier": "base", "x_region": "none"}


def test_host_vars_beat_every_group(tmp_path: Path) -> None:
    us = load_inventory(write(tmp_path, FLEET)).host("gpu-us-2")
    assert us.vars["x_tier"] == "host-level"
    assert us.vars["x_region"] == "none"  # only all.vars sets it for this host
    assert us.groups == ("all", "gpu")


def test_precedence_all_then_group_then_child_then_host(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          vars: {x_a: all, x_b: all, x_c: all, x_d: all}
          children:
            parent:
              vars: {x_b: parent, x_c: parent, x_d: parent}
              children:
                child:
                  vars: {x_c: child, x_d: child}
                  hosts:
                    h1: {x_d: host}
        """,
    )
    host = load_inventory(path).host("h1")
    assert dict(host.vars) == {"x_a": "all", "x_b": "parent", "x_c": "child", "x_d": "host"}
    assert host.groups == ("all", "parent", "child")


def test_child_group_beats_parent_even_when_the_parent_lists_the_host_too(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
        all:
          children:
            parent:
              vars: {x_x: parent}
              hosts:
                h1:
              children:
                child:
                  vars: {x_x: child}
                  hosts:
                    h1:
        """,
    )
    assert load_inventory(path).host("h1").vars["x_x"] == "child"


def test_same_depth_groups_merge_by_name_not_file_order(tmp_path: Path) -> None:
    # Ansible: at equal depth, groups merge in alphabetical order, so "zeta" wins over "alpha"
    # even though alpha comes later in the file.
    path = write(
        tmp_path,
        """
        all:
          children:
            zeta:
              vars: {x_x: zeta, x_only_zeta: 1}
              hosts:
                h1:
            alpha:
              vars: {x_x: alpha, x_only_alpha: 2}
              hosts:
                h1:
        """,
    )
    host = load_inventory(path).host("h1")
    assert host.vars["x_x"] == "zeta"
    assert host.vars["x_only_zeta"] == 1
    assert host.vars["x_only_alpha"] == 2


def test_host_in_two_groups_is_one_host_with_both_groups(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          children:
            web:
              vars: {x_role: web}
              hosts:
                shared: {public_url: "https://shared.example.net"}
                web-only:
            gpu:
              vars: {x_gpu: true}
              hosts:
                shared: {x_gpu_count: 2}
        """,
    )
    inventory = load_inventory(path)
    assert [h.name for h in inventory.hosts] == ["shared", "web-only"]
    shared = inventory.host("shared")
    assert shared.groups == ("all", "web", "gpu")
    assert dict(shared.vars) == {
        "x_role": "web",
        "x_gpu": True,
        "public_url": "https://shared.example.net",
        "x_gpu_count": 2,
    }
    assert inventory.host("web-only").groups == ("all", "web")


def test_several_top_level_groups(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        prod:
          hosts:
            p1:
        lab:
          hosts:
            l1:
        """,
    )
    inventory = load_inventory(path)
    assert [(h.name, h.groups) for h in inventory.hosts] == [("p1", ("prod",)), ("l1", ("lab",))]
    assert inventory.path == path


def test_unknown_host_name_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, FLEET)
    inventory = load_inventory(path)
    with pytest.raises(ConfigError, match="no host named 'gpu-xx'") as info:
        inventory.host("gpu-xx")
    assert str(path) in str(info.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          hosts:
            a:
              public_url: https://a.example.net
            b: c: d
        """,
    )
    assert load_error(path) == (
        f"{path}:5: invalid YAML (column 9): mapping values are not allowed here"
    )


def test_unclosed_bracket_names_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "all:\n  hosts: {a: {}\n")
    assert load_error(path) == (
        f"{path}:3: invalid YAML (column 1): expected ',' or '}}', but got '<stream end>'"
    )


def test_unknown_group_key_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          children:
            gpu:
              host:
                h1:
        """,
    )
    assert load_error(path) == f"{path}:4: host: unknown key in group gpu; did you mean hosts?"


def test_hosts_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          hosts:
            - h1
            - h2
        """,
    )
    assert load_error(path) == (
        f"{path}:2: hosts: the hosts of group all must be a mapping of names "
        "(`name:` on a line each), not a list"
    )


def test_host_vars_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "all:\n  hosts:\n    h1: 5\n")
    assert load_error(path) == (
        f"{path}:3: host h1 must be a mapping of variable: value, not a single value"
    )


def test_group_vars_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "all:\n  vars: [a, b]\n  hosts:\n    h1:\n")
    assert load_error(path) == (
        f"{path}:2: the vars of group all must be a mapping of variable: value, not a list"
    )


def test_group_body_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "all: [h1, h2]\n")
    assert "all" in load_error(path)


def test_group_containing_itself(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          children:
            gpu:
              children:
                gpu:
                  hosts:
                    h1:
        """,
    )
    message = load_error(path)
    assert "'gpu'" in message
    assert "contains itself" in message


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert "mapping of groups" in load_error(path)


def test_top_level_list(tmp_path: Path) -> None:
    path = write(tmp_path, "- all\n- gpu\n")
    assert "mapping of groups" in load_error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "no such inventory file" in load_error(tmp_path / "nope.yml")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("all:\n  hosts:\n    h\xe9:\n".encode("latin-1"))
    assert "cannot read" in load_error(path)


def test_groups_without_hosts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          vars: {x_tier: base}
          children:
            gpu:
            web:
              hosts: {}
        """,
    )
    assert "no hosts" in load_error(path)


# -- vault data ----------------------------------------------------------------------------

API_KEY = "sk-inventory-7c1e9d"
TOKEN = "tok-host-44af"
PASSWORD = VaultPassword("inventory-vault-pass")


@pytest.fixture
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)


def indented(block: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in block.splitlines())


def vaulted_inventory(tmp_path: Path, password: VaultPassword = PASSWORD) -> Path:
    """Inline !vault values in group vars, in a list, and in host vars (lines 4, 10, 16)."""
    path = tmp_path / "prod.yml"
    path.write_text(
        "all:\n"
        "  vars:\n"
        "    x_region: eu\n"
        + indented(encrypt_value("api_key", API_KEY, password), 4)
        + "    x_backup_keys:\n"
        "      - plain-entry\n"
        "      - !vault |\n" + indented(encrypt_text("listed-secret", password), 8) + "  hosts:\n"
        "    gpu-1:\n"
        "      public_url: https://gpu-1.example.net\n"
        "      x_ollama_token: !vault |\n" + indented(encrypt_text(TOKEN, password), 8),
        encoding="utf-8",
    )
    return path


def test_plain_inventory_has_no_secrets(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, FLEET), vault=PASSWORD)
    assert inventory.secrets == frozenset()
    assert load_inventory(write(tmp_path, FLEET)).secrets == frozenset()


def test_inline_vault_values_decrypt_anywhere_in_vars(tmp_path: Path, fast_scrypt: None) -> None:
    inventory = load_inventory(vaulted_inventory(tmp_path), vault=PASSWORD)
    host = inventory.host("gpu-1")
    assert dict(host.vars) == {
        "x_region": "eu",
        "api_key": API_KEY,
        "x_backup_keys": ["plain-entry", "listed-secret"],
        "public_url": "https://gpu-1.example.net",
        "x_ollama_token": TOKEN,
    }
    assert inventory.secrets == frozenset({API_KEY, "listed-secret", TOKEN})


def test_decrypted_values_stay_out_of_reprs(tmp_path: Path, fast_scrypt: None) -> None:
    inventory = load_inventory(vaulted_inventory(tmp_path), vault=PASSWORD)
    for text in (repr(inventory), repr(inventory.hosts), str(inventory)):
        for secret in (API_KEY, TOKEN, PASSWORD.secret):
            assert secret not in text
    assert "gpu-1" in repr(inventory)


def test_vault_data_without_a_password_names_file_and_line(
    tmp_path: Path, fast_scrypt: None
) -> None:
    path = vaulted_inventory(tmp_path)
    message = load_error(path)
    assert message == (
        f"{path}: line 4: vault-encrypted data but no vault password was given "
        "(use --vault-password-file FILE or set OLLAMA_FLEET_VAULT_PASSWORD)"
    )


def test_wrong_password_names_file_and_line(tmp_path: Path, fast_scrypt: None) -> None:
    path = vaulted_inventory(tmp_path)
    with pytest.raises(VaultError) as info:
        load_inventory(path, vault=VaultPassword("not-it"))
    assert str(info.value) == (
        f"{path}: line 4: cannot decrypt vault value (wrong password or tampered data)"
    )


def test_one_tampered_value_is_named_by_its_line(tmp_path: Path, fast_scrypt: None) -> None:
    path = vaulted_inventory(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[15].strip() == "x_ollama_token: !vault |"
    last = lines[17]
    lines[17] = last[:12] + ("A" if last[12] != "A" else "B") + last[13:]
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(VaultError, match=rf"^{re.escape(str(path))}: line 16: cannot decrypt"):
        load_inventory(path, vault=PASSWORD)


def test_a_password_source_is_read_only_when_needed(tmp_path: Path, fast_scrypt: None) -> None:
    absent = PasswordSource(file=tmp_path / "no-such-password-file")
    assert load_inventory(write(tmp_path, FLEET), vault=absent).host("bastion")
    with pytest.raises(VaultError) as info:
        load_inventory(vaulted_inventory(tmp_path), vault=absent)
    assert str(info.value) == (
        f"{tmp_path / 'prod.yml'}: line 4: vault-encrypted data, but "
        f"{tmp_path / 'no-such-password-file'}: no such vault password file"
    )
    password_file = tmp_path / "vault-pass"
    password_file.write_text(PASSWORD.secret + "\n", encoding="utf-8")
    inventory = load_inventory(
        vaulted_inventory(tmp_path), vault=PasswordSource(file=password_file)
    )
    assert inventory.host("gpu-1").vars["x_ollama_token"] == TOKEN


def test_whole_file_encrypted_inventory(tmp_path: Path, fast_scrypt: None) -> None:
    path = tmp_path / "prod.yml"
    path.write_text(encrypt_text(textwrap.dedent(FLEET), PASSWORD), encoding="utf-8")

    inventory = load_inventory(path, vault=PASSWORD)
    assert [h.name for h in inventory.hosts] == ["bastion", "gpu-eu-1", "gpu-us-2"]
    assert inventory.host("gpu-eu-1").vars["x_region"] == "eu"
    # nothing says which variables of an encrypted file are secret: every string is
    assert inventory.secrets == frozenset(
        {
            "base",
            "none",
            "gpu",
            "eu",
            "host-level",
            "https://gpu-eu-1.example.net",
            "https://gpu-us-2.example.net",
        }
    )
    assert load_error(path) == (
        f"{path}: line 1: vault-encrypted data but no vault password was given "
        "(use --vault-password-file FILE or set OLLAMA_FLEET_VAULT_PASSWORD)"
    )
    with pytest.raises(VaultError, match=r": cannot decrypt vault file \(wrong password"):
        load_inventory(path, vault=VaultPassword("not-it"))


def test_vault_value_must_be_a_literal_block(tmp_path: Path) -> None:
    path = write(tmp_path, "all:\n  hosts:\n    h1:\n      api_key: !vault 'abc'\n")
    message = load_error(path)
    assert message.startswith(f"{path}: line 4: a !vault value must be a literal block")
