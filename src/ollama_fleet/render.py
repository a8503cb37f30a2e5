"""Render the files the deploy roles put on hosts: Caddyfile, nftables.conf, units, service configs.

Pure functions: each takes one role's resolved variables (`hostvars.resolved(hostvars, role)`)
plus explicit keyword parameters and returns the file's text. Every value is checked again here
and quoted for the syntax of the file it lands in; a bad one raises ConfigError naming the
variable (never echoing a secret).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import jinja2
import yaml

from ollama_fleet import hostvars
from ollama_fleet.errors import ConfigError
from ollama_fleet.values import port_problem

CONFIG_DIR = "/etc/ollama-fleet"
STATE_DIR = "/var/lib/ollama-fleet"
CHECKS_INVENTORY = f"{CONFIG_DIR}/checks.yml"
LAST_CHECK_REPORT = f"{STATE_DIR}/last-check.json"
MONITOR_CONFIG = f"{CONFIG_DIR}/monitor.yml"
GATEWAY_CONFIG = f"{CONFIG_DIR}/gateway.yml"
FLEET_USER = "ollama-fleet"
OLLAMA_HOME = "/usr/share/ollama"
# Ollama on loopback answers 403 to other Host headers; the port is not checked, the name is.
OLLAMA_HOST_HEADER = "localhost:11434"
MANAGED = "# Managed by ollama-fleet (the services role): overwritten on the next deploy.\n"

SECRET_VARS = hostvars.SECRET_VARS
# Ollama's endpoints that change the server (models pulled, pushed, deleted, created, copied,
# blobs uploaded): Caddy refuses them from outside unless caddy_open_admin_endpoints is set.
OLLAMA_ADMIN_PATHS = (
    "/api/pull",
    "/api/push",
    "/api/delete",
    "/api/create",
    "/api/copy",
    "/api/blobs",
)
CADDY_ADMIN_SOCKET = "/run/caddy/admin.sock"
# Directories that systemd's ProtectHome= hides or makes read-only.
HOME_DIRS = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))
# Environment the ollama role sets from its own variables; ollama_extra_env may not repeat them.
OLLAMA_ENV = {
    "OLLAMA_HOST": "ollama_host",
    "OLLAMA_MODELS": "ollama_models_dir",
    "OLLAMA_KEEP_ALIVE": "ollama_keep_alive",
    "OLLAMA_NUM_PARALLEL": "ollama_num_parallel",
    "OLLAMA_MAX_LOADED_MODELS": "ollama_max_loaded_models",
    "OLLAMA_MAX_QUEUE": "ollama_max_queue",
    "OLLAMA_FLASH_ATTENTION": "ollama_flash_attention",
    "OLLAMA_ORIGINS": "ollama_origins",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters that need no quoting in ExecStart=, a Caddyfile, or anywhere else we put a path.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
_CADDY_PLAIN = re.compile(r"[A-Za-z0-9._/:@+=,~-]+")
# Quoted strings and comments first, so their braces do not count; then the braces themselves.
_CADDY_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|(?:^|(?<=\s))#[^\n]*|[{}]')
_CADDY_UNQUOTABLE = re.compile(r'[\x00-\x1f\x7f"\\{}`]')
_UPSTREAM = re.compile(r"(?:http://)?(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})")
_HOST_PORT = re.compile(r"(?:https?://)?(.*):([0-9]{1,5})")
_EMAIL = re.compile(r"[^\s@\"\\{}`]+@[^\s@\"\\{}`]+\.[^\s@\"\\{}`]+")
_URL = re.compile(r"https?://[^\s\"\\{}`]+")
_TIMESPAN = hostvars.TIMESPAN
_SHA256_KEY = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class FirewallRule:
    """One accept rule of the input chain: TCP ports, open to all or to some networks only."""

    ports: tuple[int, ...]
    variable: str  # the variable that opened the ports; the rule's comment on the host
    family: str = ""  # "ip" or "ip6" when only `networks` may connect
    networks: tuple[str, ...] = ()


# -- Caddy -------------------------------------------------------------------------------------


def render_caddyfile(
    caddy_vars: Mapping[str, Any],
    *,
    site_names: Sequence[str],
    upstream: str,
    upstream_is_ollama: bool,
    cert_file: str | None = None,
    key_file: str | None = None,
    log_file: str = "/var/log/caddy/access.log",
    admin_socket: str = CADDY_ADMIN_SOCKET,
) -> str:
    """/etc/caddy/Caddyfile: one HTTPS site for all `site_names`, streaming to `upstream`.

    `cert_file`/`key_file` are the host paths of the certificate files (caddy_tls: files).
    Ollama's write and admin endpoints get 403 unless caddy_open_admin_endpoints is true.
    """
    names = list(dict.fromkeys(site_names))
    if not names:
        raise ConfigError("caddy_site_names: no site name (set it or public_url)")
    _check("caddy_site_names", names)
    tls_mode = _value(caddy_vars, "caddy_tls")
    if (tls_mode == "files") != bool(cert_file and key_file):
        raise ConfigError(
            f"caddy_tls is {tls_mode}: cert_file and key_file go with files, and only with files"
        )
    global_options = []
    tls = ""
    if tls_mode == "acme":
        email = _value(caddy_vars, "caddy_acme_email")
        if not _EMAIL.fullmatch(email):
            raise ConfigError(f"caddy_acme_email: {email!r} is not an e-mail address")
        global_options.append(f"email {email}")
    elif tls_mode == "internal":
        # Caddy cannot add its root to the host's trust store as the caddy user; don't try.
        global_options.append("skip_install_trust")
        tls = "internal"
    else:
        tls = " ".join(
            _caddy_token(_absolute_path(path, name), name)
            for path, name in ((cert_file, "caddy_tls_cert_file"), (key_file, "caddy_tls_key_file"))
        )
    match = _UPSTREAM.fullmatch(upstream)
    if not match or not 0 < int(match.group(1)) < 65536:
        raise ConfigError(f"upstream: {upstream!r} is not HOST:PORT")
    extra = _value(caddy_vars, "caddy_extra_directives").strip("\n")
    _check_braces(extra, "caddy_extra_directives")
    return _template("Caddyfile.j2").render(
        global_options=global_options,
        hsts=_value(caddy_vars, "caddy_hsts"),
        site_names=names,
        tls=tls,
        log_file=_caddy_token(_absolute_path(log_file, "log_file"), "log_file"),
        upstream=upstream,
        upstream_is_ollama=upstream_is_ollama,
        admin_socket=_caddy_token(_absolute_path(admin_socket, "admin_socket"), "admin_socket"),
        block_admin=not _value(caddy_vars, "caddy_open_admin_endpoints"),
        admin_paths=[f"{path}{tail}" for path in OLLAMA_ADMIN_PATHS for tail in ("", "/*")],
        ollama_host_header=OLLAMA_HOST_HEADER,
        response_timeout=_caddy_duration(caddy_vars),
        extra_directives=extra,
    )


def _caddy_duration(caddy_vars: Mapping[str, Any]) -> str:
    value = str(_value(caddy_vars, "caddy_response_timeout"))
    if value.startswith("-"):
        raise ConfigError(f"caddy_response_timeout: {value!r} is negative")
    # Caddy wants a unit; a bare number in the table means seconds.
    return value if value[-1].isalpha() else f"{value}s"


def _check_braces(directives: str, name: str) -> None:
    """Refuse unbalanced braces: Caddy 2.6 silently accepts a site block left open at the end."""
    depth = 0
    for token in _CADDY_TOKENS.findall(directives):
        depth += {"{": 1, "}": -1}.get(token, 0)
        if depth < 0:
            raise ConfigError(f"{name}: a }} closes the site block; its braces must balance")
    if depth:
        raise ConfigError(f"{name}: a {{ is never closed; its braces must balance")


def _caddy_token(value: str, name: str) -> str:
    if _CADDY_PLAIN.fullmatch(value):
        return value
    if _CADDY_UNQUOTABLE.search(value):
        raise ConfigError(f'{name}: {value!r} has a character a Caddyfile cannot hold (" \\ {{ }})')
    return f'"{value}"'


# -- nftables ----------------------------------------------------------------------------------


def plan_firewall(
    firewall_vars: Mapping[str, Any], *, ollama_port: int, http_ports: Iterable[int] = (80, 443)
) -> tuple[FirewallRule, ...]:
    """The input chain's accept rules, in order: sshd first, then HTTP(S), then the rest."""
    _check_port(ollama_port, "ollama_port")
    web = tuple(sorted({_check_port(port, "http_ports") for port in http_ports}))
    extra = tuple(sorted(set(_value(firewall_vars, "firewall_extra_tcp_ports"))))
    metrics = tuple(sorted(set(_value(firewall_vars, "firewall_metrics_ports"))))
    rules = [FirewallRule((_value(firewall_vars, "sshd_port"),), "sshd_port")]
    rules += [FirewallRule(web, "http_ports")] if web else []
    rules += [FirewallRule(extra, "firewall_extra_tcp_ports")] if extra else []
    rules += _restricted(firewall_vars, "firewall_allow_ollama", (ollama_port,))
    rules += _restricted(firewall_vars, "firewall_allow_metrics", metrics) if metrics else []
    return tuple(rules)


def render_nftables(
    firewall_vars: Mapping[str, Any], *, ollama_port: int, http_ports: Iterable[int] = (80, 443)
) -> str:
    """The firewall's one table, inet ollama_fleet, swapped atomically; other tables untouched.

    Inbound: drop what is not allowed. Forwarding is left to others (Docker, libvirt) unless
    firewall_manage_forward adds a chain that drops it all.
    """
    rules = plan_firewall(firewall_vars, ollama_port=ollama_port, http_ports=http_ports)
    manage_forward = _value(firewall_vars, "firewall_manage_forward")
    return _template("nftables.conf.j2").render(rules=rules, manage_forward=manage_forward)


def render_firewall_unit(*, ruleset: str) -> str:
    """ollama-fleet-firewall.service: loads `ruleset` at boot; stopping deletes only our table."""
    return _template("ollama-fleet-firewall.service.j2").render(
        ruleset=_exec_path(ruleset, "ruleset")
    )


def _restricted(
    firewall_vars: Mapping[str, Any], name: str, ports: tuple[int, ...]
) -> list[FirewallRule]:
    networks = [ipaddress.ip_network(str(net), strict=False) for net in _value(firewall_vars, name)]
    v4 = [net for net in networks if isinstance(net, ipaddress.IPv4Network)]
    v6 = [net for net in networks if isinstance(net, ipaddress.IPv6Network)]
    # Collapsed, because nft refuses overlapping elements in one set.
    by_family = {
        "ip": [str(net) for net in ipaddress.collapse_addresses(v4)],
        "ip6": [str(net) for net in ipaddress.collapse_addresses(v6)],
    }
    return [FirewallRule(ports, name, fam, tuple(nets)) for fam, nets in by_family.items() if nets]


def _nft_set(items: Sequence[object]) -> str:
    return str(items[0]) if len(items) == 1 else "{ " + ", ".join(map(str, items)) + " }"


# -- Ollama ------------------------------------------------------------------------------------


def render_ollama_unit(
    *,
    binary: str = "/usr/local/bin/ollama",
    models_dir: str = "/usr/share/ollama/.ollama/models",
    nvidia_modprobe: str | None = None,
) -> str:
    """/etc/systemd/system/ollama.service, as Ollama's install.sh writes it, hardened.

    `nvidia_modprobe`, the path of nvidia-modprobe on a host with the NVIDIA driver, creates
    /dev/nvidia-uvm before Ollama starts.
    """
    models = _absolute_path(models_dir, "ollama_models_dir")
    under_home = any(PurePosixPath(models).is_relative_to(home) for home in HOME_DIRS)
    writable = dict.fromkeys([OLLAMA_HOME, models])
    return _template("ollama.service.j2").render(
        binary=_exec_path(binary, "binary"),
        protect_home=not under_home,
        nvidia_modprobe=nvidia_modprobe and _exec_path(nvidia_modprobe, "nvidia_modprobe"),
        writable_paths=[_systemd_quote(path, "ollama_models_dir") for path in writable],
    )


def render_ollama_dropin(ollama_vars: Mapping[str, Any]) -> str:
    """/etc/systemd/system/ollama.service.d/ollama-fleet.conf: Ollama's settings as Environment=."""
    env: dict[str, Any] = {key: _value(ollama_vars, name) for key, name in OLLAMA_ENV.items()}
    for origin in env["OLLAMA_ORIGINS"]:
        if "," in origin or not origin.strip():
            raise ConfigError(f"ollama_origins: {origin!r} is not one origin (list each one)")
    extra = _value(ollama_vars, "ollama_extra_env")
    for key in extra:
        if key in OLLAMA_ENV:
            raise ConfigError(f"ollama_extra_env: {key} is set by {OLLAMA_ENV[key]}; use that")
    env["OLLAMA_MODELS"] = _absolute_path(env["OLLAMA_MODELS"], "ollama_models_dir")
    # Left out when off or empty, so Ollama's own default applies.
    env["OLLAMA_FLASH_ATTENTION"] = 1 if env["OLLAMA_FLASH_ATTENTION"] else None
    env["OLLAMA_ORIGINS"] = ",".join(env["OLLAMA_ORIGINS"]) or None
    env.update(sorted(extra.items()))
    assignments = [
        _systemd_quote(f"{key}={value}", OLLAMA_ENV.get(key, "ollama_extra_env"))
        for key, value in env.items()
        if value is not None
    ]
    return _template("ollama-fleet.conf.j2").render(environment=assignments)


# -- this project's services -------------------------------------------------------------------


def render_fleet_check_service(services_vars: Mapping[str, Any]) -> str:
    """ollama-fleet-check.service: one run of the checks against this host, report kept as JSON."""
    return _template("ollama-fleet-check.service.j2").render(
        **_service_context(services_vars), inventory=CHECKS_INVENTORY, report=LAST_CHECK_REPORT
    )


def render_fleet_check_timer(services_vars: Mapping[str, Any]) -> str:
    """ollama-fleet-check.timer: two minutes after boot, then every fleet_check_interval."""
    interval = _value(services_vars, "fleet_check_interval").strip()
    if not _TIMESPAN.fullmatch(interval):
        raise ConfigError(f"fleet_check_interval: {interval!r} is not a time span such as 5min")
    return _template("ollama-fleet-check.timer.j2").render(interval=interval)


def render_monitor_service(services_vars: Mapping[str, Any]) -> str:
    """ollama-fleet-monitor.service: `ollama-fleet monitor` on monitor.yml."""
    _unprivileged_port(services_vars, "monitor_port")
    return _template("ollama-fleet-monitor.service.j2").render(
        **_service_context(services_vars), config=MONITOR_CONFIG
    )


def render_gateway_service(services_vars: Mapping[str, Any]) -> str:
    """ollama-fleet-gateway.service: `ollama-fleet gateway` on gateway.yml."""
    _unprivileged_port(services_vars, "gateway_port")
    return _template("ollama-fleet-gateway.service.j2").render(
        **_service_context(services_vars), config=GATEWAY_CONFIG
    )


def render_gateway_config(services_vars: Mapping[str, Any], *, ollama_host: str) -> str:
    """gateway.yml: listen on loopback, forward to Ollama; API keys as sha256 hashes only.

    A key already written as `sha256:<64 hex digits>` is taken as its hash.
    """
    hashes = set()
    for index, key in enumerate(_value(services_vars, "gateway_api_keys"), start=1):
        if not key.strip() or key != key.strip():
            raise ConfigError(f"gateway_api_keys: key {index} is empty or has blanks around it")
        digest = hashlib.sha256(key.encode()).hexdigest()
        hashes.add(key if _SHA256_KEY.fullmatch(key) else f"sha256:{digest}")
    document = {
        "listen": f"127.0.0.1:{_unprivileged_port(services_vars, 'gateway_port')}",
        "upstreams": [f"http://{dial_address(ollama_host)}"],
        "api_keys": sorted(hashes),
    }
    note = "# API keys are kept here as sha256 hashes only; the keys stay in the vault.\n"
    return MANAGED + note + _yaml(document)


def render_monitor_config(services_vars: Mapping[str, Any], *, targets_url: str) -> str:
    """monitor.yml: metrics port, what to watch and where to alert (a secret: mode 0640)."""
    if not _URL.fullmatch(targets_url):
        raise ConfigError(f"targets_url: {targets_url!r} is not an http(s) URL")
    document: dict[str, Any] = {
        "port": _value(services_vars, "monitor_port"),
        "targets_url": targets_url,
    }
    webhook = _value(services_vars, "monitor_webhook_url")
    if webhook:
        if not _URL.fullmatch(webhook):
            raise ConfigError("monitor_webhook_url: not an http(s) URL (value not shown: a secret)")
        document["webhook_url"] = webhook
    return MANAGED + _yaml(document)


def dial_address(host_port: str) -> str:
    """Where a local client reaches a listen address: wildcards become loopback, no scheme."""
    match = _HOST_PORT.fullmatch(host_port)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ConfigError(f"ollama_host: {host_port!r} is not HOST:PORT")
    host, port = match.groups()
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)
    return f"{host}:{port}"


def _service_context(services_vars: Mapping[str, Any]) -> dict[str, str]:
    return {
        "venv": _exec_path(_value(services_vars, "fleet_venv"), "fleet_venv"),
        "user": FLEET_USER,
        "state_directory": PurePosixPath(STATE_DIR).name,
    }


def _unprivileged_port(services_vars: Mapping[str, Any], name: str) -> int:
    port: int = _value(services_vars, name)
    if port < 1024:
        raise ConfigError(f"{name}: {port} needs privileges the service does not have; use >= 1024")
    return port


def _yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)


# -- shared checks and quoting -----------------------------------------------------------------


def _value(role_vars: Mapping[str, Any], name: str) -> Any:
    """A role variable, checked against the table in hostvars."""
    if name not in role_vars:
        raise ConfigError(f"{name}: missing (pass hostvars.resolved(...) for its role)")
    _check(name, role_vars[name])
    return role_vars[name]


def _check(name: str, value: Any) -> None:
    problem = hostvars.BY_NAME[name].check(value)
    if problem:
        if name in SECRET_VARS:
            problem = "invalid value (not shown: it is a secret)"
        raise ConfigError(f"{name}: {problem}")


def _check_port(value: Any, name: str) -> int:
    problem = port_problem(value)
    if problem:
        raise ConfigError(f"{name}: {problem}")
    return int(value)


def _absolute_path(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or _CONTROL.search(value):
        raise ConfigError(f"{name}: {value!r} is not an absolute path")
    return str(PurePosixPath(value))


def _exec_path(value: Any, name: str) -> str:
    """A path for ExecStart=, where systemd would expand $, % and quotes: plain characters only."""
    path = _absolute_path(value, name)
    if not _PLAIN_PATH.fullmatch(path):
        raise ConfigError(f"{name}: {path!r} may hold only letters, digits and . _ + @ / -")
    return path


def _systemd_quote(value: str, name: str) -> str:
    """One double-quoted systemd word: `\\`, `"` escaped, `%` doubled (specifiers)."""
    if _CONTROL.search(value):
        raise ConfigError(f"{name}: {value!r} holds a control character such as a newline")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("ollama_fleet", "templates"),
        # Config files, not HTML: each value is quoted for its file's syntax before it gets here.
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["nft_set"] = _nft_set
    return environment


def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)
