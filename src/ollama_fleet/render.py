"""Render the files the deploy roles put on hosts: Caddyfile, nftables.conf, units, service configs.

Pure functions: each takes one role's resolved variables (`hostvars.resolved(hostvars, role)`),
already validated, plus the role's own keyword parameters, and returns the file's text. The
validation is its own step, before anything renders: the rules of every variable, and those that
tie variables together, are in ollama_fleet.hostvars, which the inventory loader runs where each
value is set. Here values are only quoted for the syntax of the file they land in. A parameter
the file's syntax cannot hold raises ValueError: that is a bug in the role that passed it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import PurePosixPath
from typing import Any

import jinja2
import yaml

from ollama_fleet.hostvars import GATEWAY_DATABASE_FILE, GATEWAY_STATE_DIR, OLLAMA_ENV
from ollama_fleet.values import port_problem
from ollama_fleet.varchecks import key_sha256

CONFIG_DIR = "/etc/ollama-fleet"
STATE_DIR = "/var/lib/ollama-fleet"
CHECKS_INVENTORY = f"{CONFIG_DIR}/checks.yml"
LAST_CHECK_REPORT = f"{STATE_DIR}/last-check.json"
MONITOR_CONFIG = f"{CONFIG_DIR}/monitor.yml"
MONITOR_STATE_DIR = f"{STATE_DIR}/monitor"
GATEWAY_CONFIG = f"{CONFIG_DIR}/gateway.yml"
# gateway.yml's sessions and redis settings that no variable sets: written out all the same, so
# the file says what the gateway runs with
GATEWAY_FLUSH_INTERVAL = "500ms"
GATEWAY_MAX_MESSAGE_CHARS = 32_000
GATEWAY_REDIS_TIMEOUT = "250ms"
FLEET_USER = "ollama-fleet"
OLLAMA_HOME = "/usr/share/ollama"
# Ollama on loopback answers 403 to other Host headers; the port is not checked, the name is.
OLLAMA_HOST_HEADER = "localhost:11434"
MANAGED = "# Managed by ollama-fleet (the services role): overwritten on the next deploy.\n"

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
# Requests are buffered up to this size before they reach Ollama (a chat is a few kB; an
# image prompt above it is streamed as before); small, as every concurrent request may hold it.
REQUEST_BUFFER = "1MB"
# Directories that systemd's ProtectHome= hides or makes read-only.
HOME_DIRS = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters that need no quoting in ExecStart=, a Caddyfile, or anywhere else we put a path.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
_CADDY_PLAIN = re.compile(r"[A-Za-z0-9._/:@+=,~-]+")
# What a site address may be written as: a name, a wildcard, an address with a port.
_CADDY_SITE = re.compile(r"[A-Za-z0-9*._:\[\]-]+")
_CADDY_UNQUOTABLE = re.compile(r'[\x00-\x1f\x7f"\\{}`]')
_UPSTREAM = re.compile(r"(?:http://)?(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})")
_HOST_PORT = re.compile(r"(?:https?://)?(.*):([0-9]{1,5})")
_NODE_NAME_OTHER = re.compile(r"[^A-Za-z0-9._-]+")


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
    legacy_buffering: bool = True,
) -> str:
    """/etc/caddy/Caddyfile: one HTTPS site for all `site_names`, streaming to `upstream`.

    `cert_file`/`key_file` are the host paths of the certificate files (caddy_tls: files).
    Requests are read (up to REQUEST_BUFFER) before they go to the upstream: Caddy 2.6.2
    otherwise drops its upstream connection when a fast answer comes before Go has read the
    request body's end, and ends the client's answer as if it were complete.
    `legacy_buffering`: 2.6.2's `buffer_requests`; 2.6.4 and later name it `request_buffers`.
    Ollama's write and admin endpoints get 403 unless caddy_open_admin_endpoints is true.
    """
    names = list(dict.fromkeys(site_names))
    if not names:
        raise ValueError("site_names: none given (deploys/caddy.py always derives one)")
    for name in names:
        if not _CADDY_SITE.fullmatch(name):
            raise ValueError(f"site_names: {name!r} cannot be written as a Caddyfile site address")
    tls_mode = _value(caddy_vars, "caddy_tls")
    if (tls_mode == "files") != bool(cert_file and key_file):
        raise ValueError(
            f"caddy_tls is {tls_mode}: cert_file and key_file go with files, and only with files"
        )
    global_options = []
    tls = ""
    if tls_mode == "acme":
        global_options.append(f"email {_value(caddy_vars, 'caddy_acme_email')}")
    elif tls_mode == "internal":
        # Caddy cannot add its root to the host's trust store as the caddy user; don't try.
        global_options.append("skip_install_trust")
        tls = "internal"
    else:
        tls = " ".join(
            _caddy_token(_absolute_path(path, name), name)
            for path, name in ((cert_file, "cert_file"), (key_file, "key_file"))
        )
    match = _UPSTREAM.fullmatch(upstream)
    if not match or port_problem(int(match.group(1))):
        raise ValueError(f"upstream: {upstream!r} is not HOST:PORT")
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
        extra_directives=_value(caddy_vars, "caddy_extra_directives").strip("\n"),
        legacy_buffering=legacy_buffering,
        request_buffer=REQUEST_BUFFER,
    )


def _caddy_duration(caddy_vars: Mapping[str, Any]) -> str:
    value = str(_value(caddy_vars, "caddy_response_timeout"))
    # Caddy wants a unit; a bare number in the table means seconds.
    return value if value[-1].isalpha() else f"{value}s"


def _caddy_token(value: str, name: str) -> str:
    """One Caddyfile token: as it is when plain, else double-quoted."""
    if _CADDY_PLAIN.fullmatch(value):
        return value
    if _CADDY_UNQUOTABLE.search(value):
        raise ValueError(f'{name}: {value!r} has a character a Caddyfile cannot hold (" \\ {{ }})')
    return f'"{value}"'


# -- nftables ----------------------------------------------------------------------------------


def plan_firewall(
    firewall_vars: Mapping[str, Any],
    *,
    ollama_port: int,
    http_ports: Iterable[int] = (80, 443),
    monitor_port: int | None = None,
) -> tuple[FirewallRule, ...]:
    """The input chain's accept rules, in order: sshd first, then HTTP(S), then the rest.

    `monitor_port`, where the monitor runs, is opened with the metrics ports: to
    firewall_allow_metrics only.
    """
    _port(ollama_port, "ollama_port")
    web = tuple(sorted({_port(port, "http_ports") for port in http_ports}))
    extra = tuple(sorted(set(_value(firewall_vars, "firewall_extra_tcp_ports"))))
    monitor = {_port(monitor_port, "monitor_port")} if monitor_port is not None else set()
    metrics = tuple(sorted(set(_value(firewall_vars, "firewall_metrics_ports")) | monitor))
    rules = [FirewallRule((_value(firewall_vars, "sshd_port"),), "sshd_port")]
    rules += [FirewallRule(web, "http_ports")] if web else []
    rules += [FirewallRule(extra, "firewall_extra_tcp_ports")] if extra else []
    rules += _restricted(firewall_vars, "firewall_allow_ollama", (ollama_port,))
    rules += _restricted(firewall_vars, "firewall_allow_metrics", metrics) if metrics else []
    return tuple(rules)


def render_nftables(
    firewall_vars: Mapping[str, Any],
    *,
    ollama_port: int,
    http_ports: Iterable[int] = (80, 443),
    monitor_port: int | None = None,
) -> str:
    """The firewall's one table, inet ollama_fleet, swapped atomically; other tables untouched.

    Inbound: drop what is not allowed. Forwarding is left to others (Docker, libvirt) unless
    firewall_manage_forward adds a chain that drops it all. `monitor_port`: see plan_firewall.
    """
    rules = plan_firewall(
        firewall_vars, ollama_port=ollama_port, http_ports=http_ports, monitor_port=monitor_port
    )
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
    extra = _value(ollama_vars, "ollama_extra_env")
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
    return _template("ollama-fleet-check.timer.j2").render(interval=interval)


def render_monitor_service(services_vars: Mapping[str, Any], *, gpu: bool = False) -> str:
    """ollama-fleet-monitor.service: `ollama-fleet monitor` on monitor.yml, checked before start.

    `gpu`: the host has NVIDIA GPUs for the monitor to read through NVML; its unit then sees
    /dev (PrivateDevices= would hide /dev/nvidia*), closed to all but NVIDIA's devices.
    """
    return _template("ollama-fleet-monitor.service.j2").render(
        **_service_context(services_vars),
        config=MONITOR_CONFIG,
        monitor_state=MONITOR_STATE_DIR.removeprefix("/var/lib/"),
        gpu=gpu,
    )


def render_gateway_service(services_vars: Mapping[str, Any]) -> str:
    """ollama-fleet-gateway.service: `ollama-fleet gateway` on gateway.yml, checked before start;
    a reload (SIGHUP) re-reads the config and keeps the streams in flight. Its state directory
    holds the sessions' SQLite file."""
    return _template("ollama-fleet-gateway.service.j2").render(
        **_service_context(services_vars),
        config=GATEWAY_CONFIG,
        listen=_gateway_listen(services_vars),
        gateway_state=GATEWAY_STATE_DIR.removeprefix("/var/lib/"),
    )


def render_gateway_config(
    services_vars: Mapping[str, Any],
    *,
    ollama_host: str,
    num_parallel: int = 1,
    local_name: str = "local",
) -> str:
    """gateway.yml (docs/gateway.md's schema): listen on loopback, the nodes, the keys as
    sha256 hashes only, the limits, the balancing, the sessions' database (always named: the
    SQLite file in the unit's state directory when gateway_database_url is unset) and, with
    gateway_redis_url, the Redis the limits are shared through. The URLs may hold passwords:
    the file is mode 0640 root:ollama-fleet, and the deploy's --diff never shows it.

    `gateway_nodes` must be resolved already (mappings with name and url: the controller
    resolves host and group names, ollama_fleet.deploys.gateway_fleet); empty, or the gateway
    disabled, means this host's own Ollama at `ollama_host`, as node `local_name` with
    `num_parallel` slots.
    A key already written as `sha256:<64 hex digits>` is taken as its hash.
    """
    document: dict[str, Any] = {
        "listen": _gateway_listen(services_vars),
        "nodes": _gateway_nodes(services_vars, ollama_host, num_parallel, local_name),
        "keys": [
            _gateway_key(entry, index)
            for index, entry in enumerate(_value(services_vars, "gateway_api_keys"), start=1)
        ],
    }
    limits = {k: v for k, v in _value(services_vars, "gateway_limits").items() if v is not None}
    if limits:
        document["limits"] = limits
    document["balancing"] = {
        "strategy": _value(services_vars, "gateway_strategy"),
        "queue_timeout": _value(services_vars, "gateway_queue_timeout"),
    }
    document["sessions"] = {
        "database_url": _value(services_vars, "gateway_database_url")
        or f"sqlite:///{GATEWAY_DATABASE_FILE}",
        "history_messages": _value(services_vars, "gateway_history_messages"),
        "history_tokens": _value(services_vars, "gateway_history_tokens"),
        "flush_interval": GATEWAY_FLUSH_INTERVAL,
        "max_message_chars": GATEWAY_MAX_MESSAGE_CHARS,
    }
    redis_url = _value(services_vars, "gateway_redis_url")
    if redis_url:
        document["redis"] = {
            "url": redis_url,
            "on_error": _value(services_vars, "gateway_redis_on_error"),
            "timeout": GATEWAY_REDIS_TIMEOUT,
        }
    document["access_log"] = True
    running = (
        "# Run by ollama-fleet-gateway.service on this host.\n"
        if _value(services_vars, "gateway_enabled")
        else "# Not run on this host (gateway_enabled: false).\n"
    )
    note = "# API keys are kept here as sha256 hashes only; the keys stay in the vault.\n"
    if _value(services_vars, "gateway_database_url") or redis_url:
        note += "# The database and Redis URLs may hold passwords: mode 0640, root:ollama-fleet.\n"
    return MANAGED + running + note + _yaml(document)


def monitor_listen(services_vars: Mapping[str, Any]) -> str:
    """HOST:PORT the monitor listens on, an IPv6 address in brackets."""
    address = ipaddress.ip_address(_value(services_vars, "monitor_address"))
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{host}:{_port(_value(services_vars, 'monitor_port'), 'monitor_port')}"


def _gateway_listen(services_vars: Mapping[str, Any]) -> str:
    return f"127.0.0.1:{_port(_value(services_vars, 'gateway_port'), 'gateway_port')}"


def gateway_node_name(name: str) -> str:
    """An inventory host name as a gateway node name ([A-Za-z0-9._-], as metrics label it)."""
    return _NODE_NAME_OTHER.sub("-", name).strip("-") or "local"


def _gateway_nodes(
    services_vars: Mapping[str, Any], ollama_host: str, num_parallel: int, local_name: str
) -> list[dict[str, Any]]:
    configured = _value(services_vars, "gateway_nodes")
    if not configured or not _value(services_vars, "gateway_enabled"):
        # a disabled gateway's nodes are never resolved (gateway_nodes may come from group
        # vars): its file only says it is not run, so it names this host's Ollama
        url = f"http://{dial_address(ollama_host)}"
        return [{"name": gateway_node_name(local_name), "url": url, "max_parallel": num_parallel}]
    nodes = []
    for entry in configured:
        if not isinstance(entry, Mapping) or "url" not in entry:
            raise ValueError(f"gateway_nodes: {entry!r} is not resolved to {{name, url}}")
        node = {"name": gateway_node_name(str(entry["name"])), "url": str(entry["url"])}
        node.update({k: entry[k] for k in ("weight", "max_parallel", "queue") if k in entry})
        nodes.append(node)
    return nodes


def _gateway_key(entry: Any, index: int) -> dict[str, Any]:
    """One key as gateway.yml holds it: its name, its sha256 (never the key), role, limits."""
    fields: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {"key": entry}
    digest = key_sha256(str(fields["key"]))
    found: dict[str, Any] = {
        "name": fields.get("name") or f"key-{index}",
        "sha256": digest,
        "role": fields.get("role", "user"),
        "models": list(fields.get("models", ["*"])),
    }
    for name in ("rpm", "tpm", "max_concurrent"):
        if fields.get(name) is not None:
            found[name] = fields[name]
    expires = fields.get("expires")
    if expires is not None:
        found["expires"] = expires.isoformat() if isinstance(expires, date) else str(expires)
    return found


def render_monitor_config(
    services_vars: Mapping[str, Any], *, gpu: bool, inventory: str = CHECKS_INVENTORY
) -> str:
    """monitor.yml: where it listens, what it watches, whom it alerts (secrets: mode 0640).

    `inventory`: the targets (the host's self-check inventory); `gpu`: read the GPUs through
    NVML ("auto"), else "off". Receivers are only those whose URL is set. The first line says
    whether the monitor runs: so turning it off changes this file, which is how the deploy's
    snapshot sees that a unit installed before must go.
    """
    document: dict[str, Any] = {
        "listen": monitor_listen(services_vars),
        "state_dir": MONITOR_STATE_DIR,
        "inventory": _absolute_path(inventory, "inventory"),
    }
    receivers = [
        {"name": kind, "type": kind, "url": url}
        for kind, url in (
            ("webhook", _value(services_vars, "monitor_webhook_url")),
            ("slack", _value(services_vars, "monitor_slack_url")),
            ("alertmanager", _value(services_vars, "monitor_alertmanager_url")),
        )
        if url
    ]
    if receivers:
        document["receivers"] = receivers
    intervals = _value(services_vars, "monitor_intervals")
    if intervals:
        document["intervals"] = dict(intervals)
    document["gpu"] = "auto" if gpu else "off"
    running = (
        "# Run by ollama-fleet-monitor.service on this host.\n"
        if _value(services_vars, "monitor_enabled")
        else "# Not run on this host (monitor_enabled: false).\n"
    )
    return MANAGED + running + _yaml(document)


def dial_address(host_port: str) -> str:
    """Where a local client reaches a listen address (ollama_host, validated as HOST:PORT):
    wildcards become loopback, no scheme."""
    match = _HOST_PORT.fullmatch(host_port)
    if not match or port_problem(int(match.group(2))):
        raise ValueError(f"ollama_host: {host_port!r} is not HOST:PORT")
    host, port = match.groups()
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)
    return f"{host}:{port}"


def _service_context(services_vars: Mapping[str, Any]) -> dict[str, str]:
    return {
        "venv": _exec_path(_value(services_vars, "fleet_venv"), "fleet_venv"),
        "user": FLEET_USER,
        "state_directory": PurePosixPath(STATE_DIR).name,
    }


def _yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)


# -- reading and quoting -----------------------------------------------------------------------


def _value(role_vars: Mapping[str, Any], name: str) -> Any:
    """A role variable as it is: validated before rendering (ollama_fleet.hostvars)."""
    if name not in role_vars:
        raise ValueError(f"{name}: missing (pass hostvars.resolved(...) for its role)")
    return role_vars[name]


def _port(value: Any, name: str) -> int:
    """A port the role passes (constants, or one read from a validated ollama_host)."""
    problem = port_problem(value)
    if problem:
        raise ValueError(f"{name}: {problem}")
    return int(value)


def _absolute_path(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or _CONTROL.search(value):
        raise ValueError(f"{name}: {value!r} is not an absolute path")
    return str(PurePosixPath(value))


def _exec_path(value: Any, name: str) -> str:
    """A path for ExecStart=, where systemd would expand $, % and quotes: plain characters only
    (a path variable's rule in hostvars allows no others)."""
    path = _absolute_path(value, name)
    if not _PLAIN_PATH.fullmatch(path):
        raise ValueError(f"{name}: {path!r} may hold only letters, digits and . _ + @ / -")
    return path


def _systemd_quote(value: str, name: str) -> str:
    """One double-quoted systemd word: `\\`, `"` escaped, `%` doubled (specifiers).

    A control character has no quoting there; the variables' rules refuse them.
    """
    if _CONTROL.search(value):
        # not shown: ollama_extra_env may hold a secret
        raise ValueError(f"{name}: a value holds a control character such as a newline")
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
