"""Load an Ansible-style inventory (groups, children, hosts, vars) into frozen records, strictly.

An inventory is a YAML file, or a directory of them, with Ansible's group_vars/ and host_vars/
beside it. Every key is checked where it is written (ollama_fleet.hostvars has the schema), and
every problem of the load is raised at once, each naming its file and line (InventoryError).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from ollama_fleet import hostvars
from ollama_fleet.errors import ConfigError
from ollama_fleet.extravars import ExtraVars, Setting, parse_extra_vars, read_vars
from ollama_fleet.inventory_errors import InventoryError, Origin, Problems
from ollama_fleet.inventory_yaml import Entry, VaultKeys, YamlFile, read_yaml, strings
from ollama_fleet.vault import PasswordSource, VaultPassword, holds_vault_data

__all__ = [
    "ExtraVars",
    "Host",
    "Inventory",
    "InventoryError",
    "load_inventory",
    "needs_vault_password",
    "parse_extra_vars",
]

GROUP_KEYS = ("hosts", "vars", "children")
SUFFIXES = (".yml", ".yaml")
ALL = "all"


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """A host with its groups (outermost first) and its merged variables."""

    name: str
    groups: tuple[str, ...]
    # not in the repr: the vars may hold decrypted vault values
    vars: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # where each of `vars` was set (the level that won), for messages about the value
    origins: Mapping[str, Origin] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """The hosts of an inventory, its group names, and every value its vault data decrypted to.

    `secrets` are what output must never show: each inline `!vault` value, every string of a
    file encrypted as a whole (nothing says which are secret), and the secret variables' values.
    """

    path: Path
    hosts: tuple[Host, ...]
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    groups: tuple[str, ...] = ()

    def host(self, name: str) -> Host:
        """The host called `name`; ConfigError naming the file if there is none."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise ConfigError(f"{self.path}: no host named {name!r}")


def load_inventory(
    path: Path,
    vault: VaultPassword | PasswordSource | None = None,
    *,
    extra_vars: ExtraVars | None = None,
) -> Inventory:
    """Read and validate `path` (a file or a directory) with its group_vars/ and host_vars/.

    `vault` opens files encrypted as a whole and `!vault` values; a PasswordSource is read
    only when some file holds vault data. `extra_vars` win over every other level.
    Every problem is raised at once as an InventoryError (a ConfigError).
    """
    problems, keys = Problems(), VaultKeys(vault)
    files, layout = _inventory_files(path, problems)
    fleet = _Fleet(problems, keys)
    for file in files:
        document = read_yaml(file, keys, problems, what="inventory file")
        if document is not None:
            fleet.add_inventory_file(document)
    fleet.add_layout(layout)
    hosts = fleet.hosts_merged(extra_vars or ExtraVars())
    if not fleet.hosts and not problems.found:
        problems.add(Origin(str(path)), None, "no hosts defined")
    problems.raise_any()
    return Inventory(
        path=path,
        hosts=hosts,
        secrets=fleet.secrets(extra_vars),
        groups=tuple(fleet.groups),
    )


def needs_vault_password(path: Path) -> bool:
    """Whether loading `path` needs the vault password: some file of it holds vault data.

    A file that cannot be read or parsed counts as not needing it: the load says what is wrong.
    """
    files, layout = _inventory_files(path, Problems())
    for folder in ("group_vars", "host_vars"):
        files += [f for found in _layout_files(layout / folder).values() for f in found]
    for file in files:
        try:
            if holds_vault_data(file.read_text(encoding="utf-8"), where=str(file)):
                return True
        except (OSError, UnicodeDecodeError, ConfigError):
            continue
    return False


def _inventory_files(path: Path, problems: Problems) -> tuple[list[Path], Path]:
    """The inventory's YAML files, and the folder its group_vars/ and host_vars/ are in."""
    if not path.is_dir():
        return [path], path.parent
    files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if not files:
        problems.add(
            Origin(str(path)), None, "an inventory directory, but no *.yml or *.yaml in it"
        )
    return files, path


def _layout_files(folder: Path) -> dict[str, list[Path]]:
    """group_vars/ or host_vars/: {name: its files}, from NAME.yml, NAME.yaml and NAME/*.yml."""
    found: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            inside = sorted(p for p in entry.iterdir() if p.suffix in SUFFIXES and p.is_file())
            found.setdefault(entry.name, []).extend(p for p in inside if not p.name.startswith("."))
        elif entry.suffix in SUFFIXES:
            found.setdefault(entry.stem, []).append(entry)
    return found


@dataclass(slots=True)
class _Group:
    origin: Origin
    parents: list[str] = field(default_factory=list)
    inline: dict[str, Setting] = field(default_factory=dict)  # the inventory's `vars:`
    files: dict[str, Setting] = field(default_factory=dict)  # group_vars/


@dataclass(slots=True)
class _Host:
    origin: Origin
    direct: list[str] = field(default_factory=list)
    inline: dict[str, Setting] = field(default_factory=dict)  # the inventory's host entry
    files: dict[str, Setting] = field(default_factory=dict)  # host_vars/


class _Fleet:
    """Groups and hosts as the files of one load define them, before the merge."""

    def __init__(self, problems: Problems, keys: VaultKeys) -> None:
        self.problems, self.keys = problems, keys
        self.groups: dict[str, _Group] = {}
        self.hosts: dict[str, _Host] = {}
        self.settings: list[Setting] = []

    # -- the inventory files -------------------------------------------------------------

    def add_inventory_file(self, document: YamlFile) -> None:
        root = document.root
        entries = None if root is None else document.entries(root, self.problems)
        if not entries:
            text = "expected a mapping of groups (e.g. `all:`) at the top"
            self.problems.add(document.origin(root), None, text)
            return
        for entry in entries:
            if entry.key in GROUP_KEYS or entry.key in hostvars.BY_NAME:
                what = "a group key" if entry.key in GROUP_KEYS else "a variable"
                text = (
                    f"{what} at the top level, which holds groups; put it under a group (e.g. all:)"
                )
                self.problems.add(document.at(entry.line), entry.key, text)
                continue
            self._group(document, entry, trail=())

    def _group(self, document: YamlFile, entry: Entry, *, trail: tuple[str, ...]) -> None:
        name, origin = entry.key, document.at(entry.line)
        if name in trail:
            chain = " > ".join((*trail, name))
            self.problems.add(origin, name, f"group {name!r} contains itself ({chain})")
            return
        group = self.groups.setdefault(name, _Group(origin))
        if trail and trail[-1] not in group.parents:
            group.parents.append(trail[-1])
        if document.is_null(entry.node):
            return
        entries = document.entries(entry.node, self.problems)
        if entries is None:
            self.problems.add(origin, name, "a group is a mapping of hosts, vars and children")
            return
        for item in entries:
            if item.key == "vars":
                for setting in self._vars(document, item.node, f"the vars of group {name}"):
                    self._put(group.inline, setting, f"group {name}")
            elif item.key == "hosts":
                self._hosts(document, name, item)
            elif item.key == "children":
                for child in self._names(document, item, f"the children of group {name}"):
                    self._group(document, child, trail=(*trail, name))
            else:
                self.problems.add(
                    document.at(item.line), item.key, _group_key_problem(item.key, name)
                )

    def _hosts(self, document: YamlFile, group: str, item: Entry) -> None:
        for entry in self._names(document, item, f"the hosts of group {group}"):
            host = self.hosts.setdefault(entry.key, _Host(document.at(entry.line)))
            if group not in host.direct:
                host.direct.append(group)
            origin = document.at(entry.line)
            # the same host key twice in one mapping: the duplicate is the one problem to say
            repeated = any(p.origin == origin and p.key == entry.key for p in self.problems.found)
            for setting in self._vars(document, entry.node, f"host {entry.key}"):
                if repeated:
                    host.inline.setdefault(setting.key, setting)
                else:
                    self._put(host.inline, setting, f"host {entry.key}")

    def _names(self, document: YamlFile, item: Entry, what: str) -> list[Entry]:
        if document.is_null(item.node):
            return []
        entries = document.entries(item.node, self.problems)
        if entries is None:
            text = f"{what} must be a mapping of names (`name:` on a line each), not a list"
            self.problems.add(document.at(item.line), item.key, text)
            return []
        return entries

    def _vars(self, document: YamlFile, node: Any, what: str) -> list[Setting]:
        settings = read_vars(document, node, self.problems, self.keys, what=what)
        self.settings.extend(settings)
        return settings

    def _put(self, level: dict[str, Setting], setting: Setting, owner: str) -> None:
        """Set a variable at one level; a second, different value there is a conflict.

        Which one would win depends on file order, so neither does: both places are named.
        """
        first = level.get(setting.key)
        twice = any(
            p.origin == setting.origin and p.key == setting.key for p in self.problems.found
        )
        if first is None or twice:  # twice in one mapping: reported as a duplicate key already
            level.setdefault(setting.key, setting)
        elif first.value != setting.value:
            same_file = first.origin.path == setting.origin.path
            where = f"line {first.origin.line}" if same_file else str(first.origin)
            text = f"set again for {owner} with another value; first at {where}"
            self.problems.add(setting.origin, setting.key, text)

    # -- group_vars/ and host_vars/ ------------------------------------------------------

    def add_layout(self, folder: Path) -> None:
        for name, files in _layout_files(folder / "group_vars").items():
            if name == ALL:
                self.groups.setdefault(ALL, _Group(Origin(str(files[0]))))
            group = self.groups.get(name)
            for file in files:
                for setting in self._layout_vars(file, name, "group", list(self.groups)):
                    if group is not None:
                        self._put(group.files, setting, f"group {name}")
        for name, files in _layout_files(folder / "host_vars").items():
            host = self.hosts.get(name)
            for file in files:
                for setting in self._layout_vars(file, name, "host", list(self.hosts)):
                    if host is not None:
                        self._put(host.files, setting, f"host {name}")

    def _layout_vars(self, file: Path, name: str, kind: str, known: list[str]) -> list[Setting]:
        if name not in known:
            near = get_close_matches(name, known, n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            self.problems.add(Origin(str(file)), None, f"no {kind} {name!r} in the inventory{hint}")
            return []
        document = read_yaml(file, self.keys, self.problems, what=f"{kind}_vars file")
        if document is None or document.root is None:
            return []
        return self._vars(document, document.root, f"a {kind}_vars file")

    # -- the merge -----------------------------------------------------------------------

    def hosts_merged(self, extra: ExtraVars) -> tuple[Host, ...]:
        depths = self._depths()
        conflicts: dict[tuple[Origin, str, str], list[str]] = {}
        merged = []
        for name, host in self.hosts.items():
            groups = self._lineage(host.direct)
            layered = set(groups) | ({ALL} if ALL in self.groups else set())
            levels = [
                level
                for group in sorted(layered, key=lambda g: (-1 if g == ALL else depths[g], g))
                for level in (self.groups[group].inline, self.groups[group].files)
            ]
            levels += [host.inline, host.files, {s.key: s for s in extra.settings}]
            values: dict[str, Any] = {}
            origins: dict[str, Origin] = {}
            for level in levels:
                for setting in level.values():
                    if setting.value is None:  # empty: back to the default
                        values.pop(setting.key, None)
                        origins.pop(setting.key, None)
                    else:
                        values[setting.key] = setting.value
                        origins[setting.key] = setting.origin
            for key, text in hostvars.host_problems(values, host=name):
                conflicts.setdefault((origins.get(key, host.origin), key, text), []).append(name)
            merged.append(Host(name=name, groups=tuple(groups), vars=values, origins=origins))
        for (origin, key, text), names in conflicts.items():
            hosts = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            self.problems.add(origin, key, f"{text} (host{'s' if len(names) > 1 else ''} {hosts})")
        return tuple(merged)

    def _lineage(self, direct: Iterable[str]) -> list[str]:
        """The groups a host is in: each direct group after its ancestors, outermost first."""
        found: list[str] = []

        def visit(name: str, stack: tuple[str, ...]) -> None:
            if name in stack:
                return
            for parent in self.groups[name].parents:
                visit(parent, (*stack, name))
            if name not in found:
                found.append(name)

        for name in direct:
            visit(name, ())
        return found

    def _depths(self) -> dict[str, int]:
        """Each group's depth below the top (Ansible's order of group vars); loops reported."""
        depths: dict[str, int] = {}

        def depth(name: str, stack: tuple[str, ...]) -> int:
            if name in depths:
                return depths[name]
            if name in stack:
                chain = " > ".join((*stack[stack.index(name) :], name))
                self.problems.add(
                    self.groups[name].origin, name, f"group {name!r} contains itself ({chain})"
                )
                return 0
            parents = self.groups[name].parents
            depths[name] = max((depth(p, (*stack, name)) + 1 for p in parents), default=0)
            return depths[name]

        for name in self.groups:
            depth(name, ())
        return depths

    def secrets(self, extra: ExtraVars | None) -> frozenset[str]:
        settings = [*self.settings, *(extra.settings if extra else ())]
        found = set(self.keys.decrypted) | set(extra.decrypted if extra else ())
        for setting in settings:
            if setting.key in hostvars.SECRET_VARS:
                found.update(_secret_strings(setting.key, setting.value))
        return frozenset(s for s in found if s)


def _secret_strings(key: str, value: Any) -> Iterator[str]:
    """The secrets in a secret variable's value: every string, but of gateway_api_keys only
    the keys (its names, roles and model globs show in output as they are)."""
    if key != "gateway_api_keys" or not isinstance(value, list):
        yield from strings(value)
        return
    for entry in value:
        yield from strings(entry.get("key") if isinstance(entry, Mapping) else entry)


def _group_key_problem(key: str, group: str) -> str:
    near = get_close_matches(key, GROUP_KEYS, n=1)
    if near:
        return f"unknown key in group {group}; did you mean {near[0]}?"
    if key in hostvars.BY_NAME:
        return f"a variable directly in group {group}; put it under {group}: vars:"
    return f"unknown key in group {group} (a group has hosts, vars, children)"
