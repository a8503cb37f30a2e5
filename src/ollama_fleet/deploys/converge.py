"""One round trip to tell whether a role has anything to do: the host's state in one snapshot.

Every role declares what it establishes (files with content and mode, marker lines, packages,
enabled and running services, users, models) as a `Want`. Before any role runs, one shell
command reads all of it from the host. A role whose `Want` is met does nothing more; one that
drifted runs its operations as usual, which fix exactly what differs. A no-op re-deploy is then
a single command on the host instead of one command per fact, which matters on slow hosts.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import FactBase


@dataclass(frozen=True, slots=True, kw_only=True)
class FileWant:
    sha256: str
    mode: str
    user: str = "root"
    group: str = "root"


@dataclass(frozen=True, slots=True, kw_only=True)
class DirWant:
    mode: str
    user: str = "root"
    group: str = "root"


@dataclass(slots=True, kw_only=True)
class Want:
    """What a role leaves on a host when it has converged."""

    files: dict[str, FileWant] = field(default_factory=dict)
    dirs: dict[str, DirWant] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)  # marker file -> its first line
    packages: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)  # enabled and active
    users: dict[str, set[str]] = field(default_factory=dict)  # user -> groups it must be in
    models_url: str | None = None
    models: tuple[str, ...] = ()  # required, in Ollama's full names
    prune: bool = False

    def file(
        self, path: str, content: str, mode: str = "644", user: str = "root", group: str = "root"
    ) -> None:
        digest = hashlib.sha256(content.encode()).hexdigest()
        self.files[path] = FileWant(sha256=digest, mode=mode.lstrip("0"), user=user, group=group)


def merged(wants: Iterable[Want]) -> dict[str, Any]:
    """The Snapshot fact's arguments covering every want."""
    files: set[str] = set()
    dirs: set[str] = set()
    lines: set[str] = set()
    packages: set[str] = set()
    services: set[str] = set()
    users: set[str] = set()
    url = None
    for want in wants:
        files |= set(want.files)
        dirs |= set(want.dirs)
        lines |= set(want.lines)
        packages |= want.packages
        services |= want.services
        users |= set(want.users)
        url = url or want.models_url
    return {
        "files": sorted(files),
        "dirs": sorted(dirs),
        "lines": sorted(lines),
        "packages": sorted(packages),
        "services": sorted(services),
        "users": sorted(users),
        "models_url": url,
    }


def snapshot_script(
    files: list[str],
    dirs: list[str],
    lines: list[str],
    packages: list[str],
    services: list[str],
    users: list[str],
    models_url: str | None,
) -> str:
    """A POSIX shell script printing the state of all of these, with few processes."""
    q = shlex.quote
    parts = []
    if files:
        parts.append(f"sha256sum -- {' '.join(map(q, files))} 2>/dev/null | sed 's/^/sha /'")
    if files or dirs:
        targets = " ".join(map(q, files + dirs))
        parts.append(f"stat -c 'meta %a %U %G %n' -- {targets} 2>/dev/null")
    if lines:
        parts.append(
            f"for f in {' '.join(map(q, lines))}; do "
            '[ -f "$f" ] && { IFS= read -r l < "$f"; echo "line $f $l"; }; done'
        )
    if packages:
        parts.append(
            "dpkg-query -W -f='pkg ${db:Status-Abbrev} ${Package}\\n' "
            f"{' '.join(map(q, packages))} 2>/dev/null"
        )
    if services:
        names = " ".join(map(q, services))
        parts.append(
            f"systemctl show -p Id,UnitFileState,ActiveState -- {names} 2>/dev/null"
            " | sed 's/^/svc /'"
        )
    for user in users:
        parts.append(f'echo "user {q(user)} $(id -nG {q(user)} 2>/dev/null)"')
    if models_url:
        parts.append(
            f'echo "tags $(curl -fsS --max-time 5 {q(models_url + "/api/tags")} 2>/dev/null)"'
        )
    return "; ".join(parts) + "; true"


class Snapshot(FactBase[dict[str, Any]]):
    """The state of many files, packages, services, users and Ollama's models, in one command."""

    def command(
        self,
        files: list[str],
        dirs: list[str],
        lines: list[str],
        packages: list[str],
        services: list[str],
        users: list[str],
        models_url: str | None,
    ) -> str:
        return snapshot_script(files, dirs, lines, packages, services, users, models_url)

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_snapshot(output)


def unit_name(name: str) -> str:
    """systemd's full unit name: "caddy" is "caddy.service"."""
    return name if "." in name else f"{name}.service"


def parse_snapshot(output: list[str]) -> dict[str, Any]:
    state: dict[str, Any] = {
        "sha": {},
        "meta": {},
        "lines": {},
        "packages": set(),
        "enabled": {},
        "active": {},
        "users": {},
        "models": None,
    }
    unit = ""
    for raw in output:
        kind, _, rest = raw.partition(" ")
        if kind == "sha":
            digest, _, path = rest.partition("  ")
            state["sha"][path] = digest
        elif kind == "meta":
            fields = rest.split(" ", 3)
            if len(fields) == 4:
                state["meta"][fields[3]] = (fields[0], fields[1], fields[2])
        elif kind == "line":
            path, _, value = rest.partition(" ")
            state["lines"][path] = value.strip()
        elif kind == "pkg":
            status, _, name = rest.partition(" ")
            if status.strip() == "ii":
                state["packages"].add(name.strip().split(":")[0])
        elif kind == "svc":
            key, _, value = rest.partition("=")
            if key == "Id":
                unit = value.strip()
            elif key == "UnitFileState":
                state["enabled"][unit] = value.strip()
            elif key == "ActiveState":
                state["active"][unit] = value.strip()
        elif kind == "user":
            name, _, groups = rest.partition(" ")
            state["users"][name] = set(groups.split())
        elif kind == "tags":
            try:
                state["models"] = sorted(str(m["name"]) for m in json.loads(rest)["models"])
            except (ValueError, KeyError, TypeError):
                state["models"] = None
    return state


def drift(want: Want, state: dict[str, Any]) -> list[str]:
    """What differs between `want` and the host's snapshot; empty when the role has converged."""
    found = []
    for path, wanted in want.files.items():
        if state["sha"].get(path) != wanted.sha256:
            found.append(f"{path}: content")
        elif state["meta"].get(path) != (wanted.mode, wanted.user, wanted.group):
            found.append(f"{path}: mode or owner")
    for path, wanted_dir in want.dirs.items():
        if state["meta"].get(path) != (wanted_dir.mode, wanted_dir.user, wanted_dir.group):
            found.append(f"{path}: missing, or its mode or owner")
    for path, line in want.lines.items():
        if state["lines"].get(path) != line:
            found.append(f"{path}: another release")
    found += [f"package {p}" for p in sorted(want.packages - state["packages"])]
    for service in sorted(map(unit_name, want.services)):
        if state["enabled"].get(service) != "enabled" or state["active"].get(service) != "active":
            found.append(f"service {service}: not enabled and running")
    for user, groups in want.users.items():
        have = state["users"].get(user)
        if have is None or not groups <= have:
            found.append(f"user {user}")
    if want.models_url is not None:
        present = state["models"]
        if present is None:
            found.append("Ollama's model list")
        else:
            missing = set(want.models) - set(present)
            extra = set(present) - set(want.models) if want.prune else set()
            found += [f"model {m} missing" for m in sorted(missing)]
            found += [f"model {m} not required" for m in sorted(extra)]
    return found
