"""Every inventory variable: one table (name, group, default, meaning, rule) for all of them.

The table is the single source for the roles' `data_defaults`, for the validation the inventory
loader runs on every value where it is set (so an error names its file and line), for what the
checks read, and for the tables in docs/deploy.md and docs/inventory.md. A variable belongs to a
role (gpu, ollama, ...), to the checks, to the connection (pyinfra's), or to the lab. Everything
here is pure: no pyinfra, no I/O beyond resolving controller-side file paths.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ollama_fleet import varchecks as rule
from ollama_fleet.errors import ConfigError
from ollama_fleet.store_urls import database_url, redis_url
from ollama_fleet.varchecks import BOOL, INT, STR, TIMESPAN, Check


def _latency_help() -> str:
    """The latency_thresholds text, its defaults read from the checks' own LatencyPolicy."""
    from ollama_fleet.checks.model import LatencyPolicy

    policy = LatencyPolicy()

    def pair(name: str) -> str:
        level = getattr(policy, name)
        return f"`{name}` ({level.warn:g}, {level.fail:g})"

    return (
        f"`[warn, fail]` per measure, any of {pair('connect_ms')}, {pair('first_byte_ms')}, "
        f"{pair('first_token_ms')} in ms, warn <= fail, and {pair('tokens_per_s')}, "
        "warn >= fail; unset ones keep these defaults."
    )


_LATENCY_HELP = _latency_help()

ROLES = ("gpu", "ollama", "models", "caddy", "firewall", "services")
# every table of VARS: the roles, then what the checks read, how to connect, the lab's own
GROUPS = (*ROLES, "checks", "connection", "lab")
# the operator's own variables: never read by ollama-fleet, so never checked
OWN_PREFIX = "x_"

__all__ = ["BY_NAME", "GROUPS", "ROLES", "SECRET_VARS", "TIMESPAN", "VARS", "Var"]


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    role: str  # one of GROUPS
    default: Any  # None: unset unless the inventory sets it
    meaning: str
    check: Check


def _public_access(value: Any) -> str | None:
    if value in ("closed", "open"):
        return None
    return f"expected 'closed' or 'open', got {value!r}"


# The gateway's unit may write only here (StateDirectory=); the sessions' SQLite file lives in it.
GATEWAY_STATE_DIR = "/var/lib/ollama-fleet/gateway"
GATEWAY_DATABASE_FILE = f"{GATEWAY_STATE_DIR}/sessions.sqlite3"

PORTS = rule.list_of(rule.port, "ports")
ONE_LINE = rule.one_line
# Environment the ollama role sets from its own variables; ollama_extra_env may not repeat them.
OLLAMA_ENV: Mapping[str, str] = {
    "OLLAMA_HOST": "ollama_host",
    "OLLAMA_MODELS": "ollama_models_dir",
    "OLLAMA_KEEP_ALIVE": "ollama_keep_alive",
    "OLLAMA_NUM_PARALLEL": "ollama_num_parallel",
    "OLLAMA_MAX_LOADED_MODELS": "ollama_max_loaded_models",
    "OLLAMA_MAX_QUEUE": "ollama_max_queue",
    "OLLAMA_FLASH_ATTENTION": "ollama_flash_attention",
    "OLLAMA_ORIGINS": "ollama_origins",
}

# fmt: off
VARS: tuple[Var, ...] = (
    # gpu
    Var("gpu_enabled", "gpu", True, "Run the gpu role; a host without an NVIDIA GPU is skipped anyway.", BOOL),
    Var("gpu_assume_present", "gpu", False, "Install the driver even where no NVIDIA GPU is seen (image building, the lab's tests); never reboots or runs nvidia-smi there.", BOOL),
    Var("nvidia_driver_branch", "gpu", "580", "NVIDIA driver branch to install (three digits, e.g. 570, 580).", rule.branch),
    Var("nvidia_kernel_modules", "gpu", "auto", "`open` (NVIDIA's open kernel modules), `proprietary`, or `auto`: open from branch 560 on, where NVIDIA makes them the default (Turing and newer GPUs; use proprietary for older ones).", rule.one_of("auto", "open", "proprietary")),
    Var("gpu_secure_boot_ok", "gpu", False, "Secure Boot is on and the DKMS signing key (MOK) is enrolled: install anyway. Without it a host with Secure Boot on is refused, since an unsigned module would not load.", BOOL),
    Var("nvidia_driver_source", "gpu", "vendor", "`vendor`: NVIDIA's CUDA apt repository (cuda-keyring, cuda-drivers-BRANCH, DKMS); `distro`: the distribution's packages.", rule.one_of("vendor", "distro")),
    Var("gpu_allow_reboot", "gpu", False, "Reboot when the driver changed (then wait and verify with nvidia-smi); otherwise the deploy says a reboot is needed.", BOOL),
    Var("gpu_reboot_timeout", "gpu", 600, "Seconds to wait for the host to come back after a driver reboot.", INT),
    Var("nvidia_container_toolkit", "gpu", False, "Also install the NVIDIA container toolkit.", BOOL ),
    # ollama
    Var("ollama_enabled", "ollama", True, "Install and run Ollama here; false on a gateway or monitor host (then the models role is skipped too, and caddy unless gateway_enabled).", BOOL),
    Var("ollama_version", "ollama", "0.12.0", "Ollama release to install; installed only when the host runs another version.", rule.version),
    Var("ollama_sha256", "ollama", "", "sha256 of the release archive; empty: read it from the release's sha256sum.txt on the controller.", rule.sha256),
    Var("ollama_artifact", "ollama", "", "A local archive (bin/ollama, lib/ollama) on the controller to push instead of downloading: offline hosts, and the lab's simulator.", STR),
    Var("ollama_download_base", "ollama", "https://github.com/ollama/ollama/releases/download", "Where releases are downloaded from (a mirror may be given).", rule.plain_url),
    Var("ollama_host", "ollama", "127.0.0.1:11434", "OLLAMA_HOST: the address Ollama listens on. Keep it on loopback behind Caddy.", rule.host_port),
    Var("ollama_models_dir", "ollama", "/usr/share/ollama/.ollama/models", "OLLAMA_MODELS: where models are stored; created and owned by the ollama user (letters, digits and . _ + @ / - only).", rule.host_path),
    Var("ollama_keep_alive", "ollama", "5m", "OLLAMA_KEEP_ALIVE: how long an idle model stays loaded (-1: forever).", rule.duration),
    Var("ollama_num_parallel", "ollama", 1, "OLLAMA_NUM_PARALLEL: parallel requests per model.", INT ),
    Var("ollama_max_loaded_models", "ollama", 0, "OLLAMA_MAX_LOADED_MODELS (0: Ollama's default, 3 per GPU).", INT),
    Var("ollama_max_queue", "ollama", 512, "OLLAMA_MAX_QUEUE: queued requests before 503.", INT),
    Var("ollama_flash_attention", "ollama", False, "OLLAMA_FLASH_ATTENTION.", BOOL),
    Var("ollama_origins", "ollama", [], "OLLAMA_ORIGINS: extra allowed browser origins.", rule.list_of(rule.origin, "origins")),
    Var("ollama_extra_env", "ollama", {}, "Other environment for the service, e.g. OLLAMA_CONTEXT_LENGTH; not the names the variables above set (OLLAMA_HOST...).", rule.extra_env(OLLAMA_ENV)),
    Var("ollama_wait_timeout", "ollama", 60, "Seconds to wait for Ollama to answer after a (re)start.", INT),
    # models
    Var("models_enabled", "models", True, "Pull required_models on this host (where Ollama runs).", BOOL),
    Var("required_models", "models", [], "Models to pull (names, or {name, digest}); the checks verify them too.", rule.model_list),
    Var("models_prune", "models", False, "Delete models that are not in required_models.", BOOL),
    # caddy
    Var("caddy_enabled", "caddy", True, "Run Caddy here, in front of the gateway where gateway_enabled, else of Ollama (where Ollama runs).", BOOL),
    Var("caddy_source", "caddy", "auto", "`debian`: the distribution's caddy package; `caddy-repo`: Caddy's own apt repository; `auto`: the distribution's where it has one (Debian 12, Ubuntu 24.04), else Caddy's (Ubuntu 22.04).", rule.one_of("auto", "debian", "caddy-repo")),
    Var("caddy_site_names", "caddy", [], "Site names Caddy serves; empty: the host name of public_url, else the host's inventory name.", rule.list_of(rule.site_name, "host names")),
    Var("caddy_tls", "caddy", "internal", "`acme` (needs caddy_acme_email), `internal` (Caddy's own CA) or `files` (caddy_tls_cert_file/key_file).", rule.one_of("acme", "internal", "files")),
    Var("caddy_acme_email", "caddy", "", "Account e-mail for ACME certificates.", rule.email),
    Var("caddy_tls_cert_file", "caddy", "", "Controller path of a PEM certificate chain (caddy_tls: files).", STR),
    Var("caddy_tls_key_file", "caddy", "", "Controller path of its private key; may be a vault-encrypted file.", STR),
    Var("caddy_response_timeout", "caddy", "10m", "How long Caddy waits for the first byte of an answer (model loads are slow); a bare number is seconds.", rule.wait_duration),
    Var("caddy_hsts", "caddy", True, "Send Strict-Transport-Security.", BOOL),
    Var("caddy_open_admin_endpoints", "caddy", False, "Let Ollama's write and admin endpoints (/api/pull, /api/push, /api/delete, /api/create, /api/copy, /api/blobs/*) through from outside. Off: Caddy answers them 403.", BOOL),
    Var("caddy_extra_directives", "caddy", "", "Raw Caddyfile directives added inside the site block; their braces must balance (validated on the host before use).", rule.caddy_directives),
    # firewall
    Var("firewall_enabled", "firewall", True, "Manage the firewall's own nftables table, inet ollama_fleet (other tables are left alone).", BOOL),
    Var("sshd_port", "firewall", 22, "The port sshd listens on, on the host (may differ from ssh_port behind a forward); always allowed.", rule.port),
    Var("firewall_allow_ollama", "firewall", [], "Networks (CIDRs) allowed to reach Ollama's port directly; a node in another host's gateway_nodes lets that gateway's address in as well, without being told.", rule.list_of(rule.cidr, "CIDRs")),
    Var("firewall_allow_metrics", "firewall", [], "Networks (CIDRs) allowed to reach firewall_metrics_ports.", rule.list_of(rule.cidr, "CIDRs")),
    Var("firewall_metrics_ports", "firewall", [9464], "Ports opened to firewall_allow_metrics (exporters'); with monitor_enabled, monitor_port is opened to them too.", rule.list_of(rule.port, "ports")),
    Var("firewall_extra_tcp_ports", "firewall", [], "More TCP ports open to everyone.", rule.list_of(rule.port, "ports")),
    Var("firewall_manage_forward", "firewall", False, "Drop all forwarded traffic (a forward chain, policy drop); leave false where Docker or libvirt forward for containers or guests.", BOOL),
    # services
    Var("services_enabled", "services", True, "Install this project (a wheel built on the controller) into fleet_venv with its units.", BOOL),
    Var("fleet_venv", "services", "/opt/ollama-fleet", "Where the project's venv lives on the host.", rule.host_path),
    Var("fleet_check_interval", "services", "5min", "How often the host's ollama-fleet-check.timer runs the checks against itself (systemd time span; only where Ollama runs).", rule.timespan),
    Var("monitor_enabled", "services", False, "Run the monitor (ollama-fleet-monitor.service) on this host: this host's Ollama checked on a schedule, metrics, alerts and a status page (docs/monitor.md). Needs Ollama here. Turned off again, its unit is stopped and removed.", BOOL),
    Var("monitor_address", "services", "127.0.0.1", "IP address the monitor listens on. Beyond loopback (e.g. 0.0.0.0, for Prometheus to scrape) it needs firewall_allow_metrics: the firewall opens monitor_port to those networks only.", rule.ip_address),
    Var("monitor_port", "services", 9464, "Port of the monitor's metrics and status page (1024 or above: the service runs unprivileged).", rule.unprivileged_port),
    Var("monitor_webhook_url", "services", "", "Alert webhook (the monitor's JSON), an http(s) URL (a secret: keep it in the vault).", rule.http_url),
    Var("monitor_slack_url", "services", "", "Slack-compatible incoming webhook for alerts, an http(s) URL (a secret: keep it in the vault).", rule.http_url),
    Var("monitor_alertmanager_url", "services", "", "Prometheus Alertmanager the alerts are posted to (`/api/v2/alerts` under it), an http(s) URL.", rule.http_url),
    Var("monitor_intervals", "services", {}, "How often each check runs, e.g. `{connectivity: 30s, tls: 1h}` (s, m or h); unset ones keep the monitor's defaults.", rule.check_intervals),
    Var("gateway_enabled", "services", False, "Run the gateway (ollama-fleet-gateway.service: API keys, limits, routing over gateway_nodes; docs/gateway.md) and point Caddy at it. Needs gateway_api_keys. Turned off again, its unit is stopped and removed.", BOOL),
    Var("gateway_port", "services", 8080, "Port the gateway listens on, on loopback (1024 or above: the service runs unprivileged).", rule.unprivileged_port),
    Var("gateway_api_keys", "services", [], "Client API keys (secrets: keep them in the vault), each a key (named key-1, key-2 ..., role user) or `{name, key, role: admin|user|readonly, models: [globs], rpm, tpm, max_concurrent, expires}`; stored on the host only as sha256 hashes (a key written as `sha256:` and 64 hex digits, either case, is taken as its hash; 64 hex digits alone are refused: write them as sha256:HEX). Two entries with one hash are refused.", rule.api_keys),
    Var("gateway_nodes", "services", [], "The Ollama nodes the gateway fronts: inventory host or group names (each host reached at `http://ADDRESS:PORT`, ADDRESS its gateway_node_address, else its ssh_hostname, PORT its ollama_host's, max_parallel its ollama_num_parallel), or `{name, url, weight, max_parallel, queue}`; empty: this host's own Ollama.", rule.gateway_nodes),
    Var("gateway_node_address", "services", None, "This host's address inside the fleet: where a gateway reaches its Ollama and, on a gateway host, where its nodes' firewalls let it in from (an IP address then); default: ssh_hostname.", rule.node_address),
    Var("gateway_strategy", "services", "least-connections", "How the gateway picks a node: `least-connections`, `round-robin`, `weighted`, `random` or `hash` (by the x-session-id header, else the key).", rule.one_of(*rule.STRATEGIES)),
    Var("gateway_limits", "services", {}, "Limits over all keys together, `{rpm, tpm}` (requests and tokens per minute); unset: none.", rule.gateway_limits),
    Var("gateway_queue_timeout", "services", "30s", "How long a request may wait for a free slot on a node before a 503 (s, m or h).", rule.seconds_duration),
    Var("gateway_database_url", "services", None, f"Where the gateway keeps its sessions (the chat history of /v1/chat; docs/sessions.md): `postgresql://USER:PASSWORD@HOST:5432/DB` (or `postgres://`; a secret: keep it in the vault), which every gateway sharing the sessions names, or `sqlite:////PATH` with PATH under {GATEWAY_STATE_DIR}/; unset: SQLite at {GATEWAY_DATABASE_FILE}, this gateway's own. PostgreSQL is the operator's to install.", database_url(GATEWAY_STATE_DIR)),
    Var("gateway_redis_url", "services", None, "Redis (or Valkey) through which gateways share their rate limits: `redis://[:PASSWORD@]HOST:6379/0`, `rediss://` for TLS (a secret: keep it in the vault); unset: each gateway limits in memory on its own. Redis is the operator's to install.", redis_url),
    Var("gateway_redis_on_error", "services", "open", "When Redis fails: `open`: each gateway falls back to its own in-memory limits; `closed`: requests get 503 until it is back. Only with gateway_redis_url.", rule.one_of("open", "closed")),
    Var("gateway_history_messages", "services", 40, "At most this many earlier messages of a session go to Ollama as context (its system messages are always kept; 0: none).", INT),
    Var("gateway_history_tokens", "services", 8192, "And at most about this many tokens of them (characters / 4), the oldest dropped first.", rule.positive_int),
    # checks
    Var("public_url", "checks", None, "Base URL clients use, e.g. `https://gpu-1.example.com`. Hosts without it are not check targets. No user name or password in it.", rule.url_problem),
    Var("chat_model", "checks", None, "Model for the tiny chat request; default: the first of `required_models`; without either, the chat check does not run.", rule.model_name),
    Var("tls_ca_file", "checks", None, "CA bundle that signs the host's certificate (private CAs, Caddy's `tls internal`); relative to the inventory file. Default: the system store.", STR),
    Var("tls_warn_days", "checks", 21, "Warn when the certificate has this many days left or fewer.", INT),
    Var("tls_fail_days", "checks", 3, "Fail when it has this many days left or fewer; at most `tls_warn_days`.", INT),
    Var("http_url", "checks", None, "Where plain HTTP must redirect to HTTPS; default `http://HOST/` when `public_url` uses port 443, else the redirect is not checked.", rule.url_problem),
    Var("require_hsts", "checks", True, "Warn when HTTPS answers carry no `Strict-Transport-Security` header.", BOOL),
    Var("ollama_port", "checks", 11434, "Ollama's port, the default of `closed_ports` (default: the port of `ollama_host` when that is set, else 11434).", rule.port),
    Var("closed_ports", "checks", None, "Ports that must NOT accept a TCP connection from where the check runs; default `[ollama_port]`.", PORTS),
    Var("open_ports", "checks", [], "Ports that must accept one (e.g. `[22, 443]`).", PORTS),
    Var("port_forwarder", "checks", False, "The `closed_ports` are reached through a forwarder that accepts every connection (qemu's user network as in the lab, a load balancer): a port counts as closed when nothing answers an HTTP question on it.", BOOL),
    Var("public_access", "checks", "closed", "`closed`: a request without a key must be refused (401), and a host serving its models to anyone fails as `open_access`; `open`: the host is open on purpose (a lab, an internal network), reported and passed. Either way its write endpoints must be refused.", _public_access),
    Var("expect_gpu", "checks", False, "A GPU node: after the chat, `/api/ps` must show the model in VRAM; an Ollama that runs it on the CPU fails as `cpu_fallback`.", BOOL),
    Var("check_write_endpoints", "checks", True, "Probe Ollama's write endpoints (pull, push, delete, create, copy, blobs) with harmless requests: each must be refused. `false` only for a URL that is Ollama itself on loopback (the host's own self-check).", BOOL),
    Var("auth_required", "checks", None, "Deprecated: `true` is `public_access: closed`, now the default, so remove it; `false` is an error (write `public_access: open` for a host open on purpose).", BOOL),
    Var("api_key", "checks", None, "Key sent as `Authorization: Bearer` by every check; the auth check also proves the key works. A secret: keep it in the vault; never in reports.", ONE_LINE),
    Var("latency_thresholds", "checks", {}, _LATENCY_HELP, rule.latency_thresholds),
    # connection (pyinfra's SSH connector and its sudo/su/doas arguments)
    Var("ssh_hostname", "connection", None, "Address to connect to; default: the host's name.", ONE_LINE),
    Var("ssh_port", "connection", 22, "SSH port.", rule.port),
    Var("ssh_user", "connection", None, "SSH user; use `_sudo: true` for one that is not root.", ONE_LINE),
    Var("ssh_key", "connection", None, "Private key file on the controller.", ONE_LINE),
    Var("ssh_key_password", "connection", None, "Passphrase of `ssh_key` (a secret: keep it in the vault).", ONE_LINE),
    Var("ssh_password", "connection", None, "SSH password (a secret: keep it in the vault; prefer a key).", ONE_LINE),
    Var("ssh_allow_agent", "connection", True, "Use a running SSH agent.", BOOL),
    Var("ssh_look_for_keys", "connection", True, "Try the keys in ~/.ssh.", BOOL),
    Var("ssh_forward_agent", "connection", False, "Forward the SSH agent.", BOOL),
    Var("ssh_config_file", "connection", None, "An ssh_config file to read.", ONE_LINE),
    Var("ssh_known_hosts_file", "connection", None, "A known_hosts file to use.", ONE_LINE),
    Var("ssh_strict_host_key_checking", "connection", "accept-new", "`yes`, `accept-new`, or `no`/`off` (never do that outside a lab).", rule.one_of("yes", "accept-new", "no", "off")),
    Var("ssh_paramiko_connect_kwargs", "connection", None, "Keyword arguments for paramiko's `SSHClient.connect`.", rule.mapping),
    Var("ssh_connect_retries", "connection", 0, "Connection retries.", INT),
    Var("ssh_connect_retry_min_delay", "connection", 0.1, "Least seconds between retries.", rule.number),
    Var("ssh_connect_retry_max_delay", "connection", 0.5, "Most seconds between retries.", rule.number),
    Var("ssh_file_transfer_protocol", "connection", "sftp", "`sftp` or `scp`.", rule.one_of("sftp", "scp")),
    Var("_sudo", "connection", False, "Run operations with sudo (a user that is not root).", BOOL),
    Var("_sudo_user", "connection", None, "The user sudo runs them as.", ONE_LINE),
    Var("_use_sudo_login", "connection", False, "sudo with a login shell.", BOOL),
    Var("_sudo_password", "connection", None, "sudo's password (a secret: keep it in the vault).", ONE_LINE),
    Var("_preserve_sudo_env", "connection", False, "Keep the environment under sudo.", BOOL),
    Var("_su_user", "connection", None, "Run operations with su as this user.", ONE_LINE),
    Var("_use_su_login", "connection", False, "su with a login shell.", BOOL),
    Var("_preserve_su_env", "connection", False, "Keep the environment under su.", BOOL),
    Var("_su_shell", "connection", None, "The shell su runs.", ONE_LINE),
    Var("_su_password", "connection", None, "su's password (a secret: keep it in the vault).", ONE_LINE),
    Var("_doas", "connection", False, "Run operations with doas.", BOOL),
    Var("_doas_user", "connection", None, "The user doas runs them as.", ONE_LINE),
    # lab (written by `ollama-fleet lab up`)
    Var("lab_http_port", "lab", None, "The lab's forward to the VM's port 80.", rule.port),
    Var("lab_https_port", "lab", None, "The lab's forward to the VM's port 443.", rule.port),
    Var("lab_ollama_port", "lab", None, "The lab's forward to the VM's port 11434 (which must not answer).", rule.port),
)
# fmt: on

BY_NAME: Mapping[str, Var] = {var.name: var for var in VARS}
# Values that are secrets: a message about them never shows the value.
SECRET_VARS = frozenset(
    {
        "monitor_webhook_url",
        "monitor_slack_url",
        "gateway_api_keys",
        "gateway_database_url",
        "gateway_redis_url",
        "ollama_extra_env",
        "api_key",
        "ssh_password",
        "ssh_key_password",
        "_sudo_password",
        "_su_password",
    }
)
# Roles that only make sense where Ollama runs on the host (caddy: or the gateway).
NEEDS_OLLAMA = ("models_enabled", "caddy_enabled")


def defaults(role: str) -> dict[str, Any]:
    """`data_defaults` for one role's @deploy."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return {var.name: var.default for var in VARS if var.role == role}


# Ansible's connection variables, and what pyinfra calls them here
ANSIBLE_NAMES = {
    "ansible_host": "ssh_hostname",
    "ansible_port": "ssh_port",
    "ansible_user": "ssh_user",
    "ansible_ssh_private_key_file": "ssh_key",
    "ansible_password": "ssh_password",
    "ansible_become": "_sudo",
    "ansible_become_user": "_sudo_user",
    "ansible_become_password": "_sudo_password",
}


def name_problem(key: str) -> str | None:
    """Why `key` is no variable ("unknown variable; did you mean ...?"); None if it is one."""
    if key in BY_NAME or key.startswith(OWN_PREFIX):
        return None
    if key in ANSIBLE_NAMES:
        return f"Ansible's name; here it is {ANSIBLE_NAMES[key]}"
    near = get_close_matches(key, list(BY_NAME), n=1)
    hint = (
        f"; did you mean {near[0]}?"
        if near
        else f" (see docs/inventory.md; your own start with {OWN_PREFIX})"
    )
    return f"unknown variable{hint}"


def value_problem(key: str, value: Any, *, secret: bool = False) -> str | None:
    """What is wrong with `value` for `key` (None: fine, unset, or the operator's own).

    `secret` (a vault value) or a secret variable: the message never quotes the value.
    """
    var = BY_NAME.get(key)
    if var is None or value is None:
        return None
    problem = var.check(value)
    if problem and (secret or key in SECRET_VARS):
        return "invalid value (not shown: it is a secret); " + _without_values(problem)
    return problem


def host_problems(hostvars: Mapping[str, Any], *, host: str | None = None) -> list[tuple[str, str]]:
    """(variable, problem) for each rule that ties variables of one host together.

    `host`, the host's inventory name, is the caddy role's last choice of a site name.
    """

    def get(key: str) -> Any:
        value = hostvars.get(key)
        return BY_NAME[key].default if value is None else value

    problems: list[tuple[str, str]] = []
    if get("ollama_enabled") is False:
        for key in NEEDS_OLLAMA:
            if key == "caddy_enabled" and get("gateway_enabled") is True:
                continue  # Caddy in front of the gateway
            if hostvars.get(key) is True:
                problems.append(
                    (
                        key,
                        f"true, but ollama_enabled is false; the {key[:-8]} role needs Ollama on the same host",
                    )
                )
    problems += _monitor_problems(get)
    problems += _gateway_problems(get)
    tls = get("caddy_tls")
    if tls == "acme" and not get("caddy_acme_email"):
        problems.append(("caddy_tls", "acme, but caddy_acme_email is not set"))
    if tls == "files":
        for key in ("caddy_tls_cert_file", "caddy_tls_key_file"):
            if not get(key):
                problems.append(("caddy_tls", f"files, but {key} is not set"))
    if enabled(hostvars, "caddy") and not get("caddy_site_names"):
        problems += _site_name_problems(hostvars.get("public_url"), host)
    warn, fail = get("tls_warn_days"), get("tls_fail_days")
    if isinstance(warn, int) and isinstance(fail, int) and fail > warn:
        # named where it was set: a default on the other side is nobody's line
        if hostvars.get("tls_fail_days") is None:
            problems.append(("tls_warn_days", f"{warn} is below tls_fail_days ({fail})"))
        else:
            problems.append(("tls_fail_days", f"{fail} exceeds tls_warn_days ({warn})"))
    if hostvars.get("auth_required") is False:
        problems.append(
            (
                "auth_required",
                "false no longer turns the auth check off; remove it, and write public_access: open if the host is open on purpose",
            )
        )
    if hostvars.get("auth_required") is True and hostvars.get("public_access") == "open":
        problems.append(
            ("public_access", "open contradicts auth_required: true (remove auth_required)")
        )
    return problems


def _monitor_problems(get: Callable[[str], Any]) -> list[tuple[str, str]]:
    """Where the monitor can run and who may reach it."""
    if get("monitor_enabled") is not True:
        return []
    problems = []
    if get("ollama_enabled") is False:
        text = (
            "true, but ollama_enabled is false; the monitor watches this host's own Ollama "
            "(its self-check inventory), so it runs where Ollama runs"
        )
        problems.append(("monitor_enabled", text))
    address = get("monitor_address")
    beyond_loopback = not rule.ip_address(address) and not ipaddress.ip_address(address).is_loopback
    if beyond_loopback and not get("firewall_allow_metrics"):
        # with the firewall on nobody could reach it; with it off everybody could
        text = (
            f"{address} listens beyond loopback, but firewall_allow_metrics is empty: set it "
            "to the networks that may reach the monitor (e.g. Prometheus's), or keep "
            "monitor_address: 127.0.0.1"
        )
        problems.append(("monitor_address", text))
    return problems


def _gateway_problems(get: Callable[[str], Any]) -> list[tuple[str, str]]:
    """What the gateway needs: keys (else it would be open), nodes, a key for the self-check."""
    if get("gateway_enabled") is not True:
        return []
    problems = []
    if get("services_enabled") is False:
        problems.append(
            (
                "gateway_enabled",
                "true, but services_enabled is false; the gateway is part of the services role",
            )
        )
    keys = get("gateway_api_keys")
    if not keys:
        problems.append(
            (
                "gateway_enabled",
                "true, but gateway_api_keys is empty: a gateway without keys would serve anyone; add keys (kept in the vault)",
            )
        )
    if get("ollama_enabled") is False and not get("gateway_nodes"):
        problems.append(
            (
                "gateway_enabled",
                "true on a host without Ollama, but gateway_nodes is empty: name the hosts or groups whose Ollama it fronts",
            )
        )
    if (
        keys
        and get("ollama_enabled") is not False
        and get("services_enabled") is not False
        and self_check_key(get("api_key"), keys) is None
    ):
        problems.append(
            (
                "gateway_enabled",
                "true, but the host's self-check has no key to go through it: set api_key, or give one gateway_api_keys entry of role user or admin as a key (not its sha256)",
            )
        )
    problems += _gateway_port_problems(get)
    if get("gateway_redis_on_error") == "closed" and not get("gateway_redis_url"):
        problems.append(
            (
                "gateway_redis_on_error",
                "closed, but gateway_redis_url is not set: the limits are in memory and cannot fail",
            )
        )
    if has_basic_auth(get("caddy_extra_directives")):
        problems.append(
            (
                "caddy_extra_directives",
                "basicauth takes the Authorization header the gateway's API keys travel in; with gateway_enabled, leave authentication to the gateway",
            )
        )
    return problems


def _gateway_port_problems(get: Callable[[str], Any]) -> list[tuple[str, str]]:
    """The gateway's port, taken on this host already by Ollama or the monitor."""
    port = get("gateway_port")
    ollama_host = str(get("ollama_host"))
    if get("ollama_enabled") is not False and ollama_host.rpartition(":")[2] == str(port):
        return [("gateway_port", f"{port} is Ollama's port here (ollama_host {ollama_host})")]
    if get("monitor_enabled") is True and get("monitor_port") == port:
        return [("gateway_port", f"{port} is the monitor's port here (monitor_port)")]
    return []


def has_basic_auth(directives: Any) -> bool:
    """caddy_extra_directives ask Caddy for basic auth (basicauth, or 2.8's basic_auth)."""
    return re.search(r"\bbasic_?auth\b", str(directives)) is not None


def self_check_key(api_key: Any, gateway_api_keys: Any) -> str | None:
    """The key the host's self-check sends through its gateway: api_key, else the first
    gateway key (not a sha256 hash) that may generate, a user key before an admin key (the
    checks need no more, and the key sits on the host); None if there is none."""
    if isinstance(api_key, str) and api_key:
        return api_key
    found: dict[str, str] = {}
    for entry in gateway_api_keys or []:
        key, role = (
            (entry.get("key"), entry.get("role", "user"))
            if isinstance(entry, dict)
            else (entry, "user")
        )
        if (
            isinstance(key, str)
            and role in ("user", "admin")
            and not rule.SHA256_KEY.fullmatch(key)
        ):
            found.setdefault(role, key)
    return found.get("user") or found.get("admin")


def _is_ip(name: Any) -> bool:
    try:
        ipaddress.ip_address(str(name))
    except ValueError:
        return False
    return True


def _site_name_problems(public_url: Any, host: str | None) -> list[tuple[str, str]]:
    """The site name the caddy role derives without caddy_site_names (see deploys/caddy.py):
    public_url's host name, else the inventory name; Caddy must be able to serve it."""
    if public_url is not None:
        if rule.url_problem(public_url):
            return []  # reported as public_url's own problem
        name = urlsplit(public_url).hostname
        if rule.site_name(name) and not _is_ip(name):  # an IP is a site address too
            text = (
                f"its host name {name!r} is not a site name Caddy can serve; set caddy_site_names"
            )
            return [("public_url", text)]
        return []
    if host is not None and rule.site_name(host):
        text = (
            f"no site name: public_url is not set and the host's name {host!r} is not a host name"
            " (set caddy_site_names or public_url)"
        )
        return [("caddy_site_names", text)]
    return []


def validate(hostvars: Mapping[str, Any], *, where: str, host: str | None = None) -> None:
    """ConfigError for the first unknown variable or bad value; `where` names file and host.

    The validation step: the inventory loader runs these rules where each value is set, and
    this runs them on variables that come from elsewhere. The roles render only values that
    passed it. `host` is the host's inventory name (see host_problems).
    """
    for key, value in hostvars.items():
        problem = name_problem(key) or value_problem(key, value)
        if problem:
            raise ConfigError(f"{where}: {key}: {problem}")
    for key, problem in host_problems(hostvars, host=host):
        raise ConfigError(f"{where}: {key}: {problem}")


def _without_values(problem: str) -> str:
    """A problem's text with the quoted value left out ("expected a list ..., got '...'")."""
    return problem.split(", got ", 1)[0].split(": the value", 1)[0]


def enabled(hostvars: Mapping[str, Any], role: str) -> bool:
    """Whether `role` runs on a host with these variables (its X_enabled, and Ollama's)."""

    def on(name: str) -> bool:
        return bool(hostvars.get(name, BY_NAME[name].default))

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    flag = f"{role}_enabled"
    if not on(flag):
        return False
    if flag == "caddy_enabled":
        return on("ollama_enabled") or (on("gateway_enabled") and on("services_enabled"))
    return on("ollama_enabled") if flag in NEEDS_OLLAMA else True


def resolved(hostvars: Mapping[str, Any], role: str) -> dict[str, Any]:
    """One role's variables: the defaults overlaid by the host's values."""
    return {**defaults(role), **{k: v for k, v in hostvars.items() if k in defaults(role)}}


def controller_path(value: str, inventory_path: Path) -> Path:
    """A controller-side file named in the inventory, relative to the inventory's folder."""
    return (inventory_path.parent / Path(value).expanduser()).resolve()


def markdown_table(role: str) -> str:
    """One group's variables as the Markdown table the docs carry (kept equal by a test).

    The roles' tables are in docs/deploy.md, the others in docs/inventory.md.
    """
    if role not in GROUPS:
        raise ValueError(f"unknown variable group {role!r}")
    rows = ["| name | default | meaning |", "| --- | --- | --- |"]
    for var in VARS:
        if var.role == role:
            rows.append(f"| `{var.name}` | {_shown(var.default)} | {var.meaning} |")
    return "\n".join(rows)


def _shown(default: Any) -> str:
    if default is None:
        return "—"
    text = default if isinstance(default, str) else json.dumps(default)
    return f"`{text}`" if text else '`""`'
