"""Inventory YAML read as nodes, so every key keeps its line: duplicates found, `!vault` opened.

One `VaultKeys` serves a whole load (the inventory, its group_vars and host_vars, -e files):
the password is read at the first vault data met, and what it decrypted is remembered so
output can redact it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory_errors import Origin, Problems, fail
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

_MERGE = "tag:yaml.org,2002:merge"
_NULL = "tag:yaml.org,2002:null"


@dataclass(slots=True)
class VaultKeys:
    """The password of one load, read at the first vault data met, and what it decrypted."""

    given: VaultPassword | PasswordSource | None
    decrypted: set[str] = field(default_factory=set)

    def password(self, where: str) -> VaultPassword:
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

    def decrypt(self, vaulttext: str, where: str) -> str:
        plaintext = decrypt_text(vaulttext, self.password(where), where=where, what="vault value")
        self.decrypted.add(plaintext)
        return plaintext


class _Loader(yaml.SafeLoader):
    """yaml's SafeLoader, plus `!vault` values decrypted by `keys`."""

    keys: VaultKeys
    where: str


def _construct_vault(loader: _Loader, node: yaml.Node) -> str:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode) or node.style != "|":
        raise vault_value_error(loader.where, line)
    return loader.keys.decrypt(node.value, f"{loader.where}: line {line}")


_Loader.add_constructor(VAULT_TAG, _construct_vault)


@dataclass(frozen=True, slots=True)
class Entry:
    """One `key: value` of a mapping: the key, the line it is on, and the value's node."""

    key: str
    line: int
    node: yaml.Node
    explicit: bool = True  # False: it came from a `<<` merge


class YamlFile:
    """One parsed file: its root node, and the loader that makes values of its nodes."""

    def __init__(self, path: Path, root: yaml.Node | None, loader: _Loader, *, encrypted: bool):
        self.path, self.root, self.encrypted = path, root, encrypted
        self._loader = loader

    def origin(self, node: yaml.Node | None = None) -> Origin:
        return Origin(str(self.path), None if node is None else node.start_mark.line + 1)

    def at(self, line: int) -> Origin:
        return Origin(str(self.path), line)

    @staticmethod
    def is_null(node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == _NULL

    def entries(self, node: yaml.Node, problems: Problems) -> list[Entry] | None:
        """The mapping's entries in file order (`<<` merges resolved); None if not a mapping."""
        if not isinstance(node, yaml.MappingNode):
            return None
        explicit = {id(key) for key, _ in node.value if key.tag != _MERGE}
        self._loader.flatten_mapping(node)
        found: list[Entry] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                text = "a key must be a name, not a list or mapping"
                problems.add(self.origin(key_node), None, text)
                continue
            key = str(self._loader.construct_object(key_node))
            found.append(
                Entry(key, key_node.start_mark.line + 1, value_node, id(key_node) in explicit)
            )
        # every explicit entry (a duplicate was reported, and its content is checked too);
        # a merged one only where no explicit key overrides it
        written = {entry.key for entry in found if entry.explicit}
        return [e for e in found if e.explicit or e.key not in written]

    def value(self, node: yaml.Node, problems: Problems) -> tuple[bool, Any]:
        """(True, the node as Python data), or (False, None) with a problem added."""
        try:
            return True, self._loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            origin = self.at(mark.line + 1) if mark else self.origin(node)
            problems.add(origin, None, f"invalid value: {exc.problem}")
        except yaml.YAMLError as exc:
            problems.add(self.origin(node), None, f"invalid value: {exc}")
        return False, None

    def find_duplicates(self, problems: Problems) -> None:
        """Add a problem for each key that a mapping, anywhere in the file, holds twice."""
        if self.root is not None:
            self._duplicates(self.root, problems, set())

    def _duplicates(self, node: yaml.Node, problems: Problems, seen: set[int]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self._duplicates(item, problems, seen)
        if not isinstance(node, yaml.MappingNode):
            return
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            self._duplicates(value_node, problems, seen)
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            try:
                key = self._loader.construct_object(key_node)
            except (yaml.YAMLError, ConfigError):
                continue
            line = key_node.start_mark.line + 1
            if key in first:
                problems.add(self.at(line), str(key), f"duplicate key; first at line {first[key]}")
            else:
                first[key] = line


def read_yaml(path: Path, keys: VaultKeys, problems: Problems, *, what: str) -> YamlFile | None:
    """Parse `path` (a vault file is decrypted); None, with the problem added, if it is not YAML.

    A file that cannot be read is an InventoryError at once, `what` naming what it is.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(Origin(str(path)), f"no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(Origin(str(path)), f"cannot read: {exc}") from None
    encrypted = is_encrypted(text)
    if encrypted:
        password = keys.password(f"{path}: line 1")
        text = decrypt_text(text, password, where=str(path), what="vault file")
    loader = _Loader(text)
    loader.keys, loader.where = keys, str(path)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        if mark is None:
            problems.add(Origin(str(path)), None, f"invalid YAML: {exc.problem}")
        else:
            problems.add(
                Origin(str(path), mark.line + 1),
                None,
                f"invalid YAML (column {mark.column + 1}): {exc.problem}",
            )
        return None
    except yaml.YAMLError as exc:
        problems.add(Origin(str(path)), None, f"invalid YAML: {exc}")
        return None
    document = YamlFile(path, root, loader, encrypted=encrypted)
    document.find_duplicates(problems)
    return document


def strings(value: Any) -> Iterator[str]:
    """Every string in a variable's value, however deep in lists and mappings."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
