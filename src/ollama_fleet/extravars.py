"""Variables as set in one place (with their line), and `-e KEY=VALUE` / `-e @FILE` extra vars.

Every variable, wherever it is set (an inventory's vars, a host, group_vars/, host_vars/, -e),
passes the same schema (ollama_fleet.hostvars) where it is read, so a problem names that place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ollama_fleet import hostvars
from ollama_fleet.inventory_errors import Origin, Problems, fail
from ollama_fleet.inventory_yaml import VaultKeys, YamlFile, read_yaml, strings
from ollama_fleet.vault import PasswordSource, VaultPassword

OPTION = "-e"


@dataclass(frozen=True, slots=True)
class Setting:
    """A variable's value and where it was set; `secret` when it came out of the vault."""

    key: str
    value: Any = field(repr=False)
    origin: Origin
    secret: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtraVars:
    """`-e` variables in the order given: the last one of a key wins, over every other level."""

    settings: tuple[Setting, ...] = ()
    decrypted: frozenset[str] = field(default=frozenset(), repr=False)


def checked(problems: Problems, setting: Setting) -> Setting:
    """`setting`, with a problem added if its name or value is not what the schema allows."""
    problem = hostvars.name_problem(setting.key) or hostvars.value_problem(
        setting.key, setting.value, secret=setting.secret
    )
    if problem:
        problems.add(setting.origin, setting.key, problem)
    return setting


def read_vars(
    document: YamlFile, node: yaml.Node, problems: Problems, keys: VaultKeys, *, what: str
) -> list[Setting]:
    """The `variable: value` entries of `node`, each checked; `what` names it in a problem."""
    if document.is_null(node):
        return []
    entries = document.entries(node, problems)
    if entries is None:
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        problems.add(
            document.origin(node), None, f"{what} must be a mapping of variable: value, not {kind}"
        )
        return []
    settings = []
    for entry in entries:
        ok, value = document.value(entry.node, problems)
        if not ok:
            continue
        if document.encrypted:  # nothing says which are secret: every string is
            keys.decrypted.update(strings(value))
        secret = any(s in keys.decrypted for s in strings(value))
        setting = Setting(entry.key, value, document.at(entry.line), secret)
        settings.append(checked(problems, setting))
    return settings


def parse_extra_vars(
    values: Sequence[str], *, vault: VaultPassword | PasswordSource | None = None
) -> ExtraVars:
    """`-e KEY=VALUE` (VALUE read as YAML: `-e ssh_port=2222` is a number) and `-e @FILE`.

    KEY must be a known variable and VALUE pass its rule; FILE is a mapping of variables,
    read as strictly as an inventory. Every problem is reported at once (InventoryError).
    """
    problems, keys = Problems(), VaultKeys(vault)
    settings: list[Setting] = []
    for item in values:
        if item.startswith("@"):
            settings.extend(_from_file(Path(item[1:]), problems, keys))
            continue
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key:
            problems.add(Origin(OPTION), None, f"{item!r}: expected KEY=VALUE or @FILE")
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            problems.add(Origin(OPTION), key, "the value is not valid YAML (quote it)")
            continue
        settings.append(checked(problems, Setting(key, value, Origin(OPTION))))
    problems.raise_any()
    return ExtraVars(settings=tuple(settings), decrypted=frozenset(keys.decrypted))


def _from_file(path: Path, problems: Problems, keys: VaultKeys) -> list[Setting]:
    if not path.is_file():
        raise fail(Origin(f"{OPTION} @{path}"), "no such file")
    document = read_yaml(path, keys, problems, what="file")
    if document is None:
        return []
    if document.root is None:
        return []
    return read_vars(document, document.root, problems, keys, what="an extra vars file")
