"""monitor.yml's targets: by URL, with the inventory's check variables, and from an inventory.

A target means what it means for `ollama-fleet check`: its keys are the inventory's check
variables (ollama_fleet.hostvars), checked by the same rules, and it is built as `check --url`
builds one (ollama_fleet.checks.targets), with every variable on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ollama_fleet import hostvars
from ollama_fleet.checks.model import PublicAccess, RequiredModel, Target
from ollama_fleet.checks.targets import latency_policy, target_from_url, targets_from_inventory
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import load_inventory
from ollama_fleet.inventory_errors import InventoryError
from ollama_fleet.inventory_yaml import Entry
from ollama_fleet.monitor.config_reader import Reader, env_name, one_line, sequence

# a target's key and the inventory variable whose rule and meaning it has
TARGET_VARS: Mapping[str, str] = {
    "url": "public_url",
    "ca_file": "tls_ca_file",
    **{
        name: name
        for name in (
            *("required_models", "chat_model", "closed_ports", "open_ports", "public_access"),
            *("check_write_endpoints", "expect_gpu", "api_key", "tls_warn_days", "tls_fail_days"),
            *("http_url", "require_hsts", "port_forwarder", "latency_thresholds"),
        )
    },
}
TARGET_KEYS = ("name", *TARGET_VARS, "api_key_env")


def all_targets(
    reader: Reader, top: Mapping[str, Entry], environ: Mapping[str, str]
) -> list[Target]:
    """The inventory's targets, then those under targets:; a name twice is refused."""
    targets: list[Target] = []
    first: dict[str, str] = {}
    inventory = top.get("inventory")
    if inventory is not None:
        path = reader.get(top, "", "inventory", reader.path)
        for target in [] if path is None else _inventory_targets(reader, inventory, path):
            targets.append(target)
            first[target.name] = f"a host of the inventory {path}"
    for index, node in enumerate(sequence(reader, top.get("targets"), "targets (- url: ...)")):
        where = f"targets[{index}]"
        found = _target(reader, node, where, environ)
        if found is None:
            continue
        target, line, named = found
        if target.name in first:
            text = f"target {target.name!r} is listed twice (also {first[target.name]})"
            if not named:
                text += "; give each a name"
            reader.add(line, f"{where}.name", text)
            continue
        first[target.name] = f"line {line}"
        targets.append(target)
    return targets


def _inventory_targets(reader: Reader, entry: Entry, path: Path) -> list[Target]:
    """The hosts of the inventory with a public_url, as `ollama-fleet check` sees them."""
    try:
        # the password read for monitor.yml's own vault values (if any) opens the inventory
        return list(targets_from_inventory(load_inventory(path, vault=reader.keys.given)))
    except InventoryError as exc:
        for problem in exc.problems:
            reader.problems.add(problem.origin, problem.key, problem.text)
    except ConfigError as exc:
        reader.add(entry.line, "inventory", str(exc))
    return []


def _target(
    reader: Reader, node: yaml.Node, where: str, environ: Mapping[str, str]
) -> tuple[Target, int, bool] | None:
    """One target by URL, the line of its name and whether it has one; None when it has
    problems (reported)."""
    fields = reader.fields(node, where, TARGET_KEYS)
    if not fields:
        if reader.document.is_null(node):
            reader.add(reader.line(node), where, "empty; a target needs a url")
        return None
    values: dict[str, Any] = {}  # by inventory variable
    bad = False
    for key, var in TARGET_VARS.items():
        entry = fields.get(key)
        if entry is None:
            continue
        ok, value = reader.value(entry)
        problem = hostvars.value_problem(var, value, secret=reader.secret(value)) if ok else None
        if problem:
            reader.add(entry.line, f"{where}.{key}", problem)
        if not ok or problem:
            bad = True
        elif value is not None:
            values[var] = value
    name = reader.get(fields, where, "name", one_line)
    key_env = reader.get(fields, where, "api_key_env", env_name)
    bad = bad or ("name" in fields and name is None) or ("api_key_env" in fields and not key_env)
    if key_env is not None:
        line = fields["api_key_env"].line
        if "api_key" in fields:
            reader.add(line, f"{where}.api_key_env", "give api_key or api_key_env, not both")
            bad = True
        elif not environ.get(key_env):
            reader.add(line, f"{where}.api_key_env", f"environment variable {key_env} is not set")
            bad = True
        else:
            values["api_key"] = environ[key_env]
    if "url" not in fields:
        reader.add(reader.line(node), where, "no url; a target needs one (url: https://...)")
        return None
    for var, text in hostvars.host_problems({k: v for k, v in values.items() if k != "public_url"}):
        key = next(k for k, v in TARGET_VARS.items() if v == var)
        reader.add(fields[key].line if key in fields else reader.line(node), f"{where}.{key}", text)
        bad = True
    ca_file = values.get("tls_ca_file")
    if ca_file is not None:
        resolved = hostvars.controller_path(ca_file, reader.document.path)
        if not resolved.is_file():
            reader.add(
                fields["ca_file"].line, f"{where}.ca_file", f"no such file {str(resolved)!r}"
            )
            bad = True
        ca_file = str(resolved)
    if bad or "public_url" not in values:
        return None
    target = _built(values, ca_file)
    line = fields["name"].line if "name" in fields else reader.line(node)
    return (target if name is None else replace(target, name=name)), line, name is not None


def _built(values: Mapping[str, Any], ca_file: str | None) -> Target:
    """The Target of checked values: `check --url`'s target plus the inventory's variables."""

    def get(var: str) -> Any:
        return values.get(var, hostvars.BY_NAME[var].default)

    target = target_from_url(
        values["public_url"],
        ca_file=ca_file,
        api_key=values.get("api_key"),
        public_access=PublicAccess(get("public_access")),
        closed_ports=values.get("closed_ports", ()),  # as --url: only the ports it is given
        open_ports=get("open_ports"),
        latency=latency_policy(get("latency_thresholds")),
    )
    http = get("http_url")
    return replace(
        target,
        required_models=tuple(
            RequiredModel(name=m["name"].strip(), digest=m.get("digest"))
            if isinstance(m, dict)
            else RequiredModel(name=m.strip())
            for m in get("required_models")
        ),
        chat_model=get("chat_model"),
        tls=replace(
            target.tls,
            warn_days=get("tls_warn_days"),
            fail_days=get("tls_fail_days"),
            http_url=None if http is None else http.rstrip("/"),
            require_hsts=get("require_hsts"),
        ),
        check_write_endpoints=get("check_write_endpoints"),
        expect_gpu=get("expect_gpu"),
        port_forwarder=get("port_forwarder"),
    )
