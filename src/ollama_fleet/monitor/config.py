"""Read monitor.yml (or, for a quick start, an inventory) into a MonitorConfig, strictly.

Every key is checked where it is written: an unknown one gets a did-you-mean, a bad value
names the file, the line and the key (`monitor.yml:12: intervals.chat: ...`), and every
problem of the file is raised at once (an InventoryError, a ConfigError). A secret (a
receiver's URL and headers, an API key, any vault value) is never quoted in a message.
The sections are read by config_sections and config_targets, values by config_reader.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import yaml

from ollama_fleet.checks.model import CHECK_NAMES
from ollama_fleet.checks.targets import targets_from_inventory
from ollama_fleet.errors import ConfigError
from ollama_fleet.extravars import ExtraVars
from ollama_fleet.hostpatterns import select_hosts
from ollama_fleet.inventory import load_inventory
from ollama_fleet.inventory_errors import Origin, Problems
from ollama_fleet.inventory_yaml import VaultKeys, read_yaml
from ollama_fleet.monitor.config_reader import Reader, parse_listen
from ollama_fleet.monitor.config_sections import (
    ALERT_KEYS,
    RECEIVER_KEYS,
    TIMEOUT_KEYS,
    settings,
)
from ollama_fleet.monitor.config_targets import TARGET_KEYS, all_targets
from ollama_fleet.monitor.settings import MonitorConfig
from ollama_fleet.vault import PasswordSource, VaultPassword

__all__ = [
    "SECTIONS",
    "config_from_inventory",
    "default_state_dir",
    "describe",
    "load_config",
    "parse_listen",
]

Vault = VaultPassword | PasswordSource | None

TOP_KEYS = (
    *("listen", "state_dir", "title", "refresh", "inventory", "vault_password_file", "targets"),
    *("checks", "intervals", "jitter", "concurrency", "timeouts", "shutdown_grace"),
    *("retention", "rollup_retention", "alerts", "receivers", "gpu"),
)
# every key load_config accepts, by where it is written (docs/monitor.md has a row for each)
SECTIONS: Mapping[str, tuple[str, ...]] = {
    "": TOP_KEYS,
    "targets[]": TARGET_KEYS,
    "intervals": CHECK_NAMES,
    "timeouts": TIMEOUT_KEYS,
    "alerts": ALERT_KEYS,
    "receivers[]": RECEIVER_KEYS,
}
STATE_ENV = "STATE_DIRECTORY"  # set by systemd's StateDirectory=
DEFAULT_STATE_DIR = "monitor-state"


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """$STATE_DIRECTORY/monitor under systemd (its first path), else ./monitor-state."""
    given = environ.get(STATE_ENV, "").split(":")[0]
    return Path(given) / "monitor" if given else Path(DEFAULT_STATE_DIR).resolve()


def load_config(
    path: Path, *, vault_password: Vault = None, environ: Mapping[str, str] | None = None
) -> MonitorConfig:
    """monitor.yml at `path`, checked; every problem raised at once (an InventoryError).

    `!vault` values are opened with `vault_password`, else with the file's own
    `vault_password_file`, else $OLLAMA_FLEET_VAULT_PASSWORD or a prompt (read only if
    needed). `environ` (default os.environ) gives $STATE_DIRECTORY and `api_key_env`.
    """
    environ = os.environ if environ is None else environ
    problems = Problems()
    keys = VaultKeys(vault_password if vault_password is not None else PasswordSource())
    document = read_yaml(path, keys, problems, what="monitor config")
    if document is None:
        _raise(problems)
    reader = Reader(document, keys, problems)
    if not isinstance(document.root, yaml.MappingNode):
        text = "expected a mapping of settings (listen:, targets:, ...) at the top"
        problems.add(document.origin(document.root), None, text)
        _raise(problems)
    top = reader.fields(document.root, "", TOP_KEYS)
    password_file = reader.get(top, "", "vault_password_file", reader.path)
    if vault_password is None and password_file is not None:
        keys.given = PasswordSource(file=password_file)  # before any value is decrypted
    found = settings(reader, top)
    state_dir = reader.get(top, "", "state_dir", reader.path)
    found["state_dir"] = state_dir.resolve() if state_dir else default_state_dir(environ)
    targets = all_targets(reader, top, environ)
    if not targets and not problems.found:
        text = "no targets: list them under targets:, or name an inventory:"
        problems.add(Origin(str(path)), None, text)
    problems.raise_any()
    return MonitorConfig(source=path, targets=tuple(targets), **found)


def config_from_inventory(
    path: Path,
    *,
    vault_password: Vault = None,
    extra_vars: ExtraVars | None = None,
    limit: Sequence[str] = (),
    state_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> MonitorConfig:
    """The quick start: every host of the inventory with a public_url (those `limit`
    selects), with every other setting at its default."""
    inventory = load_inventory(path, vault=vault_password, extra_vars=extra_vars)
    chosen = {host.name for host in select_hosts(inventory, limit)}
    targets = tuple(t for t in targets_from_inventory(inventory) if t.name in chosen)
    if not targets:
        raise ConfigError(f"{path}: no host that --limit selects has a public_url to monitor")
    environ = os.environ if environ is None else environ
    return MonitorConfig(
        source=path, targets=targets, state_dir=state_dir or default_state_dir(environ)
    )


def describe(config: MonitorConfig) -> str:
    """One line for `--check-config`: targets, check runs, receivers (names only), listen."""
    from ollama_fleet.checks.runner import plan_checks

    runs = sum(len(plan_checks(target, config.checks)) for target in config.targets)
    host = f"[{config.listen_host}]" if ":" in config.listen_host else config.listen_host
    receivers = ", ".join(r.name for r in config.receivers) or "none"
    return (
        f"{config.source}: ok: {len(config.targets)} target(s), {runs} check(s) "
        f"({', '.join(config.checks)}), receivers: {receivers}; "
        f"listen {host}:{config.listen_port}, state in {config.state_dir}"
    )


def _raise(problems: Problems) -> NoReturn:
    problems.raise_any()
    raise AssertionError("no problem was recorded")  # pragma: no cover
