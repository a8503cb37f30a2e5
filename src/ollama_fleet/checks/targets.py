"""Build check targets from `--url` options or from an inventory's host variables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ollama_fleet.checks.model import PublicAccess, RequiredModel, Target, TlsPolicy
from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import Inventory

DEFAULT_OLLAMA_PORT = 11434


def validate_url(url: str, *, where: str) -> str:
    """The URL without a trailing slash; ConfigError naming `where` if it is not http(s)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: invalid URL {url!r}: expected http(s)://HOST[:PORT]")
    if port == 0:
        raise ConfigError(f"{where}: invalid URL {url!r}: port 0")
    if parts.username is not None or parts.password is not None:
        # they would end up in every report; keys go in api_key (or --api-key-env)
        raise ConfigError(f"{where}: the URL must not carry a user name or password")
    return url.rstrip("/")


def target_from_url(
    url: str,
    *,
    ca_file: str | None = None,
    required_models: Iterable[str] = (),
    api_key: str | None = None,
    public_access: PublicAccess = PublicAccess.CLOSED,
) -> Target:
    """A target for an ad-hoc `--url`: the closed-port check covers Ollama's 11434."""
    clean = validate_url(url, where="--url")
    return Target(
        name=urlsplit(clean).netloc,
        url=clean,
        required_models=tuple(_required_models(list(required_models), where="--model")),
        tls=TlsPolicy(ca_file=ca_file),
        api_key=api_key,
        public_access=public_access,
    )


def targets_from_inventory(inventory: Inventory) -> tuple[Target, ...]:
    """One target per host that has a `public_url`; ConfigError if none has one."""
    targets = tuple(
        _target(host.name, host.vars, inventory.path)
        for host in inventory.hosts
        if host.vars.get("public_url") is not None
    )
    if not targets:
        raise ConfigError(f"{inventory.path}: no host has a public_url to check")
    return targets


def _target(name: str, hostvars: Mapping[str, Any], path: Path) -> Target:
    def where(key: str) -> str:
        return f"{path}: host {name}: {key}"

    def typed(key: str, kind: type, default: Any) -> Any:
        value = hostvars.get(key)
        if value is None:  # absent, or written with nothing after it (`closed_ports:`)
            return default
        bool_for_number = isinstance(value, bool) and kind is not bool
        if value is not None and (bool_for_number or not isinstance(value, kind)):
            raise ConfigError(f"{where(key)}: expected {kind.__name__}, got {value!r}")
        return value

    ca_file = typed("tls_ca_file", str, None)
    if ca_file is not None:
        resolved = (path.parent / Path(ca_file).expanduser()).resolve()
        if not resolved.is_file():
            raise ConfigError(f"{where('tls_ca_file')}: no such file {str(resolved)!r}")
        ca_file = str(resolved)
    ollama_port = _port(typed("ollama_port", int, DEFAULT_OLLAMA_PORT), where("ollama_port"))
    http_url = typed("http_url", str, None)
    defaults = TlsPolicy()
    tls = TlsPolicy(
        ca_file=ca_file,
        warn_days=typed("tls_warn_days", int, defaults.warn_days),
        fail_days=typed("tls_fail_days", int, defaults.fail_days),
        http_url=None if http_url is None else validate_url(http_url, where=where("http_url")),
        require_hsts=typed("require_hsts", bool, defaults.require_hsts),
    )
    if tls.fail_days > tls.warn_days:
        raise ConfigError(f"{where('tls_fail_days')}: must not exceed tls_warn_days")
    return Target(
        name=name,
        url=validate_url(typed("public_url", str, None), where=where("public_url")),
        required_models=tuple(
            _required_models(typed("required_models", list, []), where=where("required_models"))
        ),
        chat_model=typed("chat_model", str, None),
        tls=tls,
        closed_ports=_ports(typed("closed_ports", list, [ollama_port]), where("closed_ports")),
        open_ports=_ports(typed("open_ports", list, []), where("open_ports")),
        public_access=_public_access(
            typed("public_access", str, None), typed("auth_required", bool, None), where
        ),
        check_write_endpoints=typed("check_write_endpoints", bool, True),
        expect_gpu=typed("expect_gpu", bool, False),
        port_forwarder=typed("port_forwarder", bool, False),
        api_key=typed("api_key", str, None),
    )


def _public_access(
    value: str | None, auth_required: bool | None, where: Callable[[str], str]
) -> PublicAccess:
    """`public_access`, or the deprecated `auth_required: true` (which now is the default)."""
    if auth_required is False:
        # it used to turn the auth check off; now that check always runs
        raise ConfigError(
            f"{where('auth_required')}: false no longer turns the auth check off; remove it, "
            "and write public_access: open if the host is open on purpose"
        )
    if value is None:
        return PublicAccess.CLOSED
    try:
        access = PublicAccess(value)
    except ValueError:
        choices = " or ".join(repr(a.value) for a in PublicAccess)
        raise ConfigError(f"{where('public_access')}: expected {choices}, got {value!r}") from None
    if auth_required and access is PublicAccess.OPEN:
        raise ConfigError(
            f"{where('public_access')}: open contradicts auth_required: true (remove auth_required)"
        )
    return access


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(f"{where}: {value!r} is not a TCP port (1-65535)")
    return value


def _ports(values: list[Any], where: str) -> tuple[int, ...]:
    return tuple(_port(value, where) for value in values)


def _required_models(values: list[Any], *, where: str) -> list[RequiredModel]:
    models = []
    for value in values:
        if isinstance(value, str) and value.strip():
            models.append(RequiredModel(name=value.strip()))
        elif isinstance(value, dict) and isinstance(value.get("name"), str):
            digest = value.get("digest")
            if digest is not None and not isinstance(digest, str):
                raise ConfigError(f"{where}: digest of {value['name']!r} must be a string")
            models.append(RequiredModel(name=value["name"], digest=digest))
        else:
            raise ConfigError(f"{where}: {value!r} is neither a model name nor {{name, digest}}")
    return models
