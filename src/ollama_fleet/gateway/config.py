"""Read gateway.yml into a GatewayConfig, strictly: every problem at once, each where it is written.

An unknown key gets a did-you-mean, a bad value names the file, the line and the key
(`gateway.yml:7: nodes[0].url: ...`), and all problems of the file are raised together (an
InventoryError, a ConfigError). A key's hash, or a key pasted where its hash belongs, is never
quoted in a message. Values are read by monitor.config_reader; the sections by config_sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import yaml

from ollama_fleet.gateway.config_sections import (
    BALANCING_KEYS,
    BREAKER_KEYS,
    HEALTH_KEYS,
    KEY_KEYS,
    LIMIT_KEYS,
    NODE_KEYS,
    TIMEOUT_KEYS,
    balancing,
    breaker,
    health,
    keys,
    limits,
    nodes,
    timeouts,
)
from ollama_fleet.gateway.config_sessions import (
    REDIS_KEYS,
    SESSION_KEYS,
    sessions,
    shared_limits,
)
from ollama_fleet.gateway.sessions.urls import safe_url
from ollama_fleet.gateway.settings import GatewayConfig
from ollama_fleet.inventory_errors import Origin, Problems
from ollama_fleet.inventory_yaml import VaultKeys, read_yaml
from ollama_fleet.monitor.config_reader import Reader, flag, listen_address, parse_listen

__all__ = ["SECTIONS", "describe", "load_config", "parse_listen"]

TOP_KEYS = (
    *("listen", "nodes", "keys", "limits", "balancing", "health", "breaker", "timeouts"),
    *("sessions", "redis", "access_log"),
)
# every key load_config accepts, by where it is written (docs/gateway.md has a row for each)
SECTIONS: Mapping[str, tuple[str, ...]] = {
    "": TOP_KEYS,
    "nodes[]": NODE_KEYS,
    "keys[]": KEY_KEYS,
    "limits": LIMIT_KEYS,
    "balancing": BALANCING_KEYS,
    "health": HEALTH_KEYS,
    "breaker": BREAKER_KEYS,
    "timeouts": TIMEOUT_KEYS,
    "sessions": SESSION_KEYS,
    "redis": REDIS_KEYS,
}


def load_config(path: Path) -> GatewayConfig:
    """gateway.yml at `path`, checked; every problem raised at once (an InventoryError)."""
    problems = Problems()
    document = read_yaml(path, VaultKeys(None), problems, what="gateway config")
    if document is None:
        _raise(problems)
    if not isinstance(document.root, yaml.MappingNode):
        text = "expected a mapping of settings (listen:, nodes:, keys:, ...) at the top"
        problems.add(document.origin(document.root), None, text)
        _raise(problems)
    reader = Reader(document, VaultKeys(None), problems, doc="docs/gateway.md")
    top = reader.fields(document.root, "", TOP_KEYS)
    listen = reader.get(top, "", "listen", listen_address)
    access_log = reader.get(top, "", "access_log", flag)
    config = GatewayConfig(
        nodes=nodes(reader, top.get("nodes")),
        keys=keys(reader, top.get("keys")),
        limits=limits(reader, top.get("limits")),
        balancing=balancing(reader, top.get("balancing")),
        health=health(reader, top.get("health")),
        breaker=breaker(reader, top.get("breaker")),
        timeouts=timeouts(reader, top.get("timeouts")),
        sessions=sessions(reader, top.get("sessions")),
        shared_limits=shared_limits(reader, top.get("redis")),
        source=str(path),
        **({} if listen is None else {"listen": listen}),
        **({} if access_log is None else {"access_log": access_log}),
    )
    if not config.nodes and not problems.found:
        where = top.get("nodes")
        text = "no nodes: list at least one under nodes: (- name: gpu-1, url: http://HOST:PORT)"
        problems.add(Origin(str(path), where.line if where else None), None, text)
    problems.raise_any()
    return config


def describe(config: GatewayConfig) -> str:
    """One line for `--check-config`: nodes, keys by role (names only, never a hash), listen,
    where sessions are kept and whether limits are shared (URLs without their passwords)."""
    host, port = config.listen
    shown_host = f"[{host}]" if ":" in host else host
    roles = [spec.role.value for spec in config.keys]
    by_role = ", ".join(f"{roles.count(r)} {r}" for r in dict.fromkeys(roles)) or "none"
    return (
        f"{config.source}: ok: {len(config.nodes)} node(s) "
        f"({', '.join(n.name for n in config.nodes)}), {len(config.keys)} key(s) ({by_role}), "
        f"strategy {config.balancing.strategy.value}; sessions {_database(config)}; "
        f"limits {_limits(config)}; listen {shown_host}:{port}"
    )


def _database(config: GatewayConfig) -> str:
    url = config.sessions.database_url
    return "in SQLite (default file)" if url is None else f"in {safe_url(url)}"


def _limits(config: GatewayConfig) -> str:
    shared = config.shared_limits
    if shared.redis_url is None:
        return "in memory"
    return f"shared in {safe_url(shared.redis_url)} (on error: {shared.on_error})"


def _raise(problems: Problems) -> NoReturn:
    problems.raise_any()
    raise AssertionError("no problem was recorded")  # pragma: no cover
