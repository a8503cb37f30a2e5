"""Choose hosts by Ansible's host patterns: `gpu-*`, `gpu:!gpu-3`, `web:&eu`, `@retry-file`.

A pattern is a list of parts separated by commas or colons. A part is `all` or `*`, a host
or group name, a shell glob over both (`gpu-*`), or `~REGEX`; `!part` takes hosts out and
`&part` keeps only hosts also in it; `@FILE` reads more parts from a file, one per line
(what a retry file holds). The result keeps the inventory's order.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from difflib import get_close_matches
from pathlib import Path

from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import Host, Inventory

__all__ = ["host_list", "select_hosts"]

_SEPARATORS = re.compile(r"[,:]")
_GLOB = re.compile(r"[*?\[]")


def select_hosts(
    inventory: Inventory, patterns: Sequence[str], *, option: str = "--limit"
) -> tuple[Host, ...]:
    """The hosts `patterns` choose (every host for no pattern); ConfigError naming `option`.

    Every part must match something, exclusions too (a misspelt `!gpu-3` would otherwise
    deploy to gpu-3): one that matches nothing is an error with the closest name.
    """
    parts = [part for pattern in patterns for part in _parts(pattern, option)]
    if not parts:
        return inventory.hosts
    add = [p for p in parts if not p.startswith(("!", "&"))]
    keep = [p for p in parts if p.startswith("&")]
    drop = [p for p in parts if p.startswith("!")]
    chosen = set().union(*(_match(inventory, p, option) for p in add)) if add else _names(inventory)
    for part in keep:
        chosen &= _match(inventory, part[1:], option, shown=part)
    for part in drop:
        chosen -= _match(inventory, part[1:], option, shown=part)
    if not chosen:
        typed = " ".join(f"{option} {pattern}" for pattern in patterns)
        raise ConfigError(f"{typed}: no host is left")
    return tuple(host for host in inventory.hosts if host.name in chosen)


def host_list(hosts: Sequence[Host]) -> str:
    """What `--list-hosts` prints, as Ansible does: a count, then one name a line."""
    return "\n".join([f"  hosts ({len(hosts)}):", *(f"    {host.name}" for host in hosts)])


def _parts(pattern: str, option: str) -> list[str]:
    parts = []
    for part in (p.strip() for p in _SEPARATORS.split(pattern)):
        if part.startswith("@"):
            parts += _from_file(Path(part[1:]), option)
        elif part and part not in ("!", "&"):
            parts.append(part)
        elif part:
            raise ConfigError(f"{option} {pattern}: {part!r} needs a name after it")
    return parts


def _from_file(path: Path, option: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{option} @{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{option} @{path}: cannot read: {exc}") from None
    lines = [line.strip() for line in text.splitlines()]
    found = [p for line in lines if line and not line.startswith("#") for p in _parts(line, option)]
    if not found:
        raise ConfigError(f"{option} @{path}: the file names no host")
    return found


def _names(inventory: Inventory) -> set[str]:
    return {host.name for host in inventory.hosts}


def _match(inventory: Inventory, part: str, option: str, *, shown: str = "") -> set[str]:
    """The names of the hosts one part (without its ! or &) stands for; never empty.

    `shown`: the part as typed (with its ! or &), for the messages.
    """
    shown = shown or part
    if part in ("all", "*"):
        return _names(inventory)
    groups = set(inventory.groups) | {g for host in inventory.hosts for g in host.groups}
    if part.startswith("~"):
        try:
            regex = re.compile(part[1:])
        except re.error as exc:
            raise ConfigError(f"{option} {shown}: not a regular expression: {exc}") from None
        hosts = {h.name for h in inventory.hosts if regex.match(h.name)}
        hosts |= {h.name for h in inventory.hosts if any(regex.match(g) for g in h.groups)}
    elif _GLOB.search(part):
        hosts = {h.name for h in inventory.hosts if fnmatch.fnmatchcase(h.name, part)}
        hosts |= {
            h.name for h in inventory.hosts if any(fnmatch.fnmatchcase(g, part) for g in h.groups)
        }
    else:
        hosts = {h.name for h in inventory.hosts if h.name == part or part in h.groups}
        if not hosts and part in groups:
            raise ConfigError(f"{option} {shown}: group {part} has no hosts")
    if not hosts:
        near = get_close_matches(part.lstrip("~"), sorted(_names(inventory) | groups), n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise ConfigError(f"{option} {shown}: no host or group matches in {inventory.path}{hint}")
    return hosts
