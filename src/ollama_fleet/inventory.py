"""Load an Ansible-style YAML inventory (groups, children, hosts, vars) into frozen records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ollama_fleet.errors import ConfigError
from ollama_fleet.vault import (
    PASSWORD_ENV,
    VAULT_TAG,
    PasswordSource,
    VaultError,
    VaultPassword,
    decrypt_text,
    is_encrypted,
    read_password,
    vault_value_error,
)

GROUP_KEYS = frozenset({"hosts", "vars", "children"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """A host with its groups (outermost first) and its merged variables."""

    name: str
    groups: tuple[str, ...]
    # not in the repr: the vars may hold decrypted vault values
    vars: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """The hosts of an inventory file, and every value its vault data decrypted to.

    `secrets` are what output must never show: each inline `!vault` value, and for a file
    encrypted as a whole, every string in its variables (nothing says which are secret).
    """

    path: Path
    hosts: tuple[Host, ...]
    secrets: frozenset[str] = field(default=frozenset(), repr=False)

    def host(self, name: str) -> Host:
        """The host called `name`; ConfigError naming the file if there is none."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise ConfigError(f"{self.path}: no host named {name!r}")


@dataclass(slots=True)
class _Collected:
    groups: list[str] = field(default_factory=list)
    layers: list[tuple[int, str, Mapping[str, Any]]] = field(default_factory=list)
    own: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _VaultKeys:
    """The password of one load, read at the first vault data met, and what it decrypted."""

    path: Path
    given: VaultPassword | PasswordSource | None
    decrypted: set[str] = field(default_factory=set)

    def password(self, line: int) -> VaultPassword:
        where = f"{self.path}: line {line}"
        if self.given is None:
            raise ConfigError(
                f"{where}: vault-encrypted data but no vault password was given "
                f"(use --vault-password-file FILE or set {PASSWORD_ENV})"
            )
        if isinstance(self.given, PasswordSource):
            try:
                self.given = read_password(self.given)
            except VaultError as exc:
                raise VaultError(f"{where}: vault-encrypted data, but {exc}") from None
        return self.given

    def decrypt(self, vaulttext: str, line: int) -> str:
        where = f"{self.path}: line {line}"
        plaintext = decrypt_text(vaulttext, self.password(line), where=where, what="vault value")
        self.decrypted.add(plaintext)
        return plaintext


class _VaultLoader(yaml.SafeLoader):
    """yaml's SafeLoader, plus `!vault` values decrypted by `keys`."""

    keys: _VaultKeys


def _construct_vault(loader: _VaultLoader, node: yaml.Node) -> str:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode) or node.style != "|":
        raise vault_value_error(str(loader.keys.path), line)
    return loader.keys.decrypt(node.value, line)


_VaultLoader.add_constructor(VAULT_TAG, _construct_vault)


def load_inventory(path: Path, vault: VaultPassword | PasswordSource | None = None) -> Inventory:
    """Read and validate `path`; every error names the file and the line or key.

    `vault` opens a file encrypted as a whole and `!vault` values; a PasswordSource is read
    only when the file holds vault data. Without it, vault data is a ConfigError.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such inventory file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    keys = _VaultKeys(path, vault)
    whole_file = is_encrypted(text)
    if whole_file:
        text = decrypt_text(text, keys.password(1), where=str(path), what="vault file")
    loader = _VaultLoader(text)
    loader.keys = keys
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(f"{path}: {where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of groups (e.g. `all:`) at the top")
    hosts: dict[str, _Collected] = {}
    for name, body in data.items():
        _walk(path, str(name), body, trail=(), hosts=hosts, where=str(name))
    if not hosts:
        raise ConfigError(f"{path}: no hosts defined")
    merged = tuple(_merge(name, c) for name, c in hosts.items())
    secrets = set(keys.decrypted)
    if whole_file:
        secrets.update(s for host in merged for s in _strings(host.vars))
    return Inventory(path=path, hosts=merged, secrets=frozenset(s for s in secrets if s))


def _walk(
    path: Path,
    group: str,
    body: Any,
    *,
    trail: tuple[tuple[str, Mapping[str, Any]], ...],
    hosts: dict[str, _Collected],
    where: str,
) -> None:
    """Collect hosts below `group`; `trail` holds the enclosing groups and their vars.

    `where` is the group's key path in the file (`all.children.gpu`), for error messages.
    """
    names = tuple(name for name, _ in trail)
    if group in names:
        raise ConfigError(f"{path}: {where}: group {group!r} contains itself")
    if body is None:
        return
    if not isinstance(body, dict):
        raise ConfigError(f"{path}: {where}: a group is a mapping of hosts, vars and children")
    unknown = sorted(set(map(str, body)) - GROUP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: {where}: unknown key {unknown[0]!r} (a group has hosts, vars, children)"
        )
    trail = (*trail, (group, _mapping(path, f"{where}.vars", body.get("vars"))))
    for host_name, host_vars in _mapping(path, f"{where}.hosts", body.get("hosts")).items():
        collected = hosts.setdefault(host_name, _Collected())
        for depth, (name, group_vars) in enumerate(trail):
            if name not in collected.groups:
                collected.groups.append(name)
                collected.layers.append((depth, name, group_vars))
        collected.own.update(_mapping(path, f"{where}.hosts.{host_name}", host_vars))
    for child, child_body in _mapping(path, f"{where}.children", body.get("children")).items():
        _walk(path, child, child_body, trail=trail, hosts=hosts, where=f"{where}.children.{child}")


def _mapping(path: Path, where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where}: expected a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _merge(name: str, collected: _Collected) -> Host:
    # Ansible's order: outer groups first, then deeper ones, same depth by name; host vars last.
    merged: dict[str, Any] = {}
    for _, _, layer in sorted(collected.layers, key=lambda item: (item[0], item[1])):
        merged.update(layer)
    merged.update(collected.own)
    return Host(name=name, groups=tuple(collected.groups), vars=merged)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a variable's value, however deep in lists and mappings."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
