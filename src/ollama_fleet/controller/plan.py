"""Choose, validate and prepare everything a deploy needs before any host is contacted."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_fleet import hostvars
from ollama_fleet.controller.bundle import Bundle, build_bundle
from ollama_fleet.controller.outcome import DeployResult
from ollama_fleet.controller.release import resolve_release
from ollama_fleet.errors import ConfigError
from ollama_fleet.hostpatterns import select_hosts
from ollama_fleet.inventory import Host, Inventory
from ollama_fleet.lab.image import default_cache_dir
from ollama_fleet.values import split_names

PREPARED_KEY = "fleet_prepared"  # the runner reads it back (ollama_fleet.deploys.common)


def select_roles(roles: Sequence[str]) -> tuple[str, ...]:
    names = split_names(roles)
    unknown = sorted(set(names) - set(hostvars.ROLES))
    if unknown:
        raise ConfigError(
            f"--roles: unknown role {unknown[0]!r}; roles: {', '.join(hostvars.ROLES)}"
        )
    return tuple(r for r in hostvars.ROLES if r in names) if names else hostvars.ROLES


def read_controller_file(
    value: str, *, where: str, inventory_dir: Path, decrypt: Callable[[str, Path], str]
) -> str:
    path = hostvars.controller_path(value, inventory_dir / "x")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {str(path)!r} is not a PEM (text) file") from None
    return decrypt(text, path)


def host_entry(host: Host, prepared: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": host.name,
        "groups": list(host.groups),
        "data": {**dict(host.vars), PREPARED_KEY: dict(prepared)},
    }


# -- the whole deploy --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployOptions:
    limit: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    dry: bool = False
    diff: bool = False
    checks: str = "changed"  # "changed", "all" or "none"
    report: Path = Path("out/deploy/checks.html")
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    verbose: bool = False
    snapshot: bool = True  # False: every role runs its operations, converged or not


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Everything decided on the controller before any host is contacted."""

    inventory: Inventory
    hosts: tuple[Host, ...]
    roles: tuple[str, ...]
    spec: dict[str, Any]
    secrets: frozenset[str]
    notes: tuple[str, ...]
    targets: tuple[Any, ...] = ()  # the checks' targets, validated with everything else
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())


def make_plan(
    inventory: Inventory, options: DeployOptions, *, decrypt: Callable[[str, Path], str]
) -> Plan:
    """Choose, validate and prepare: every ConfigError surfaces here, before any SSH."""
    hosts = select_hosts(inventory, options.limit)  # load_inventory validated every value
    roles = select_roles(options.roles)
    secrets = set(inventory.secrets)
    notes: list[str] = []
    entries = []
    bundle: Bundle | None = None
    unfetched: dict[tuple[str, str], list[str]] = {}  # (version, sums URL): hosts
    inventory_dir = inventory.path.parent
    for host in hosts:
        where = f"{inventory.path}: host {host.name}"
        _check_ssh_key(host)
        prepared: dict[str, Any] = {}
        if "ollama" in roles and hostvars.enabled(host.vars, "ollama"):
            release = resolve_release(
                hostvars.resolved(host.vars, "ollama"),
                where=where,
                inventory_dir=inventory_dir,
                cache_dir=options.cache_dir,
                offline=options.dry,
            )
            prepared["ollama"] = release.as_data()
            if not release.sha256:
                sums = f"{release.url.rsplit('/', 1)[0]}/sha256sum.txt"
                unfetched.setdefault((release.version, sums), []).append(host.name)
            if release.simulator:
                notes.append(
                    f"{host.name}: Ollama comes from the SIMULATOR artifact (a test double of "
                    "Ollama's API, not Ollama): the real binary cannot be downloaded here"
                )
        services = hostvars.resolved(host.vars, "services")
        if "services" in roles and hostvars.enabled(services, "services"):
            if bundle is None:
                bundle = build_bundle(options.cache_dir, build=not options.dry)
                if not bundle.sha256:
                    notes.append(
                        "dry run: the services bundle (this project's wheel and its "
                        "dependencies) is not built yet; the apply builds it, then pushes it"
                    )
            prepared["bundle"] = bundle.as_data()
        caddy = hostvars.resolved(host.vars, "caddy")
        if (
            "caddy" in roles
            and caddy["caddy_tls"] == "files"
            and hostvars.enabled(host.vars, "caddy")
        ):
            for key, name in (
                ("caddy_cert", "caddy_tls_cert_file"),
                ("caddy_key", "caddy_tls_key_file"),
            ):  # noqa: E501
                prepared[key] = read_controller_file(
                    str(caddy[name]),
                    where=f"{where}: {name}",
                    inventory_dir=inventory_dir,
                    decrypt=decrypt,
                )
            secrets.add(prepared["caddy_key"])
        entries.append(host_entry(host, prepared))
    for (version, sums), names in unfetched.items():
        notes.append(
            f"dry run: Ollama {version}'s sha256 is read from {sums} on apply, not now "
            f"({_hosts(names)})"
        )
    spec = {
        "hosts": entries,
        "roles": list(roles),
        "dry": options.dry,
        "diff": options.diff,
        "verbose": options.verbose,
        "redact": sorted(secrets),
        "snapshot": options.snapshot,
    }
    targets: tuple[Any, ...] = ()
    if options.checks != "none" and any(h.vars.get("public_url") for h in hosts):
        from ollama_fleet.checks.targets import targets_from_inventory

        chosen = {h.name for h in hosts}
        targets = tuple(t for t in targets_from_inventory(inventory) if t.name in chosen)
    return Plan(
        inventory=inventory,
        hosts=hosts,
        roles=roles,
        spec=spec,
        secrets=frozenset(secrets),
        notes=tuple(notes),
        targets=targets,
        cache_dir=options.cache_dir,
    )


def hosts_to_check(result: DeployResult, plan: Plan, mode: str) -> tuple[str, ...]:
    """Hosts whose endpoints are checked after the deploy (only those with a public_url)."""
    if mode == "none" or result.dry:
        return ()
    names = {h.name for h in (result.hosts if mode == "all" else result.changed)}
    return tuple(h.name for h in plan.hosts if h.name in names and h.vars.get("public_url"))


def _check_ssh_key(host: Host) -> None:
    """A missing ssh_key is named at its line here, not as pyinfra's traceback from each host.

    pyinfra reads the key as given (with ~ expanded), else relative to the working directory.
    """
    value = host.vars.get("ssh_key")
    if not value or host.name.startswith("@"):  # @connector/NAME hosts do not use SSH
        return
    path = Path(str(value)).expanduser()
    if path.is_file() and os.access(path, os.R_OK):
        return
    origin = host.origins.get("ssh_key")
    where = str(origin) if origin is not None else f"host {host.name}"
    why = "cannot be read" if path.exists() else "no such file"
    raise ConfigError(f"{where}: ssh_key: {why}: {str(path)!r} (host {host.name})")


def _hosts(names: list[str]) -> str:
    """'gpu-1', 'gpu-1, gpu-2' or 'gpu-1, gpu-2 and 8 more': a note stays one short line."""
    shown = ", ".join(names[:3])
    return f"{shown} and {len(names) - 3} more" if len(names) > 3 else shown
