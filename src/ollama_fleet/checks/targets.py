"""Build check targets from `--url` options or from an inventory's host variables.

The inventory loader has checked every value against the schema (ollama_fleet.hostvars)
where it was set; here they become Targets, and what only a whole host can say (a CA file
that does not exist) is reported at the line that set it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ollama_fleet import hostvars
from ollama_fleet.checks.model import (
    LATENCY_NAMES,
    LatencyPolicy,
    PublicAccess,
    RequiredModel,
    Target,
    Threshold,
    TlsPolicy,
)
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import Host, Inventory
from ollama_fleet.inventory_errors import Origin, Problems
from ollama_fleet.values import parse_port
from ollama_fleet.varchecks import model_list, url_problem

DEFAULT_OLLAMA_PORT = 11434
_PORT_AT_END = re.compile(r":([0-9]{1,5})$")


def validate_url(url: str, *, where: str) -> str:
    """The URL without a trailing slash; ConfigError naming `where` if it is not http(s)."""
    problem = url_problem(url)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return url.rstrip("/")


def target_from_url(
    url: str,
    *,
    ca_file: str | None = None,
    required_models: Iterable[str] = (),
    api_key: str | None = None,
    public_access: PublicAccess = PublicAccess.CLOSED,
    closed_ports: Iterable[int] = (),
    open_ports: Iterable[int] = (),
    latency: LatencyPolicy | None = None,
) -> Target:
    """A target for an ad-hoc `--url`: it checks only the ports it is given."""
    clean = validate_url(url, where="--url")
    models = list(required_models)
    problem = model_list(models)
    if problem:
        raise ConfigError(f"--model: {problem}")
    return Target(
        name=urlsplit(clean).netloc,
        url=clean,
        required_models=tuple(RequiredModel(name=name.strip()) for name in models),
        tls=TlsPolicy(ca_file=ca_file),
        api_key=api_key,
        public_access=public_access,
        closed_ports=tuple(parse_port(p, where="--closed-port") for p in closed_ports),
        open_ports=tuple(parse_port(p, where="--open-port") for p in open_ports),
        latency=latency if latency is not None else LatencyPolicy(),
    )


def targets_from_inventory(inventory: Inventory) -> tuple[Target, ...]:
    """One target per host that has a `public_url`; ConfigError if none has one.

    Every problem of every host is raised at once (an InventoryError).
    """
    problems = Problems()
    targets = []
    for host in inventory.hosts:
        if host.vars.get("public_url") is not None:
            target = _target(host, inventory.path, problems)
            if target is not None:
                targets.append(target)
    problems.raise_any()
    if not targets:
        raise ConfigError(f"{inventory.path}: no host has a public_url to check")
    return tuple(targets)


def latency_policy(value: Mapping[str, Any] | None) -> LatencyPolicy:
    """`latency_thresholds` (already checked) as a policy; keys not given keep the defaults."""
    levels = {
        name: Threshold(warn=float(warn), fail=float(fail))
        for name, (warn, fail) in (value or {}).items()
        if name in LATENCY_NAMES
    }
    return LatencyPolicy(**levels)


def _target(host: Host, path: Path, problems: Problems) -> Target | None:
    values = host.vars

    def origin(key: str) -> Origin:
        return host.origins.get(key, Origin(str(path)))

    def typed(key: str) -> Any:
        value = values.get(key)
        if value is None:
            return hostvars.BY_NAME[key].default
        problem = hostvars.value_problem(key, value) or hostvars.name_problem(key)
        if problem:  # an Inventory made without the loader
            problems.add(origin(key), key, f"{problem} (host {host.name})")
            return hostvars.BY_NAME[key].default
        return value

    for key, text in hostvars.host_problems(values):
        problems.add(origin(key), key, f"{text} (host {host.name})")
    url = typed("public_url")
    if url is None:
        return None
    ca_file = typed("tls_ca_file")
    if ca_file is not None:
        resolved = hostvars.controller_path(ca_file, path / "x" if path.is_dir() else path)
        if not resolved.is_file():
            problems.add(
                origin("tls_ca_file"),
                "tls_ca_file",
                f"no such file {str(resolved)!r} (host {host.name})",
            )
        ca_file = str(resolved)
    http_url, closed = typed("http_url"), typed("closed_ports")
    return Target(
        name=host.name,
        url=url.rstrip("/"),
        groups=host.groups,
        required_models=tuple(_required_models(typed("required_models"))),
        chat_model=typed("chat_model"),
        tls=TlsPolicy(
            ca_file=ca_file,
            warn_days=typed("tls_warn_days"),
            fail_days=typed("tls_fail_days"),
            http_url=None if http_url is None else http_url.rstrip("/"),
            require_hsts=typed("require_hsts"),
        ),
        latency=latency_policy(typed("latency_thresholds")),
        closed_ports=tuple(closed) if closed is not None else (_ollama_port(values, typed),),
        open_ports=tuple(typed("open_ports")),
        public_access=PublicAccess(typed("public_access")),
        check_write_endpoints=typed("check_write_endpoints"),
        expect_gpu=typed("expect_gpu"),
        port_forwarder=typed("port_forwarder"),
        api_key=typed("api_key"),
    )


def _ollama_port(values: Mapping[str, Any], typed: Callable[[str], Any]) -> int:
    """Ollama's port, which must be closed from outside: `ollama_port`, else `ollama_host`'s."""
    if values.get("ollama_port") is not None:
        return int(typed("ollama_port"))
    match = _PORT_AT_END.search(str(values.get("ollama_host") or ""))
    return int(match.group(1)) if match else DEFAULT_OLLAMA_PORT


def _required_models(values: list[Any]) -> list[RequiredModel]:
    """The required models as written (checked already: names, digests, no model twice)."""
    return [
        RequiredModel(name=v["name"].strip(), digest=v.get("digest"))
        if isinstance(v, dict)
        else RequiredModel(name=v.strip())
        for v in values
    ]
