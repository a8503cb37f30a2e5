"""The deploy roles' variables: one table (name, role, default, meaning) and typed settings.

The table is the single source for the roles' `data_defaults`, for the validation that runs on
the controller before any host is touched, and for the table in docs/deploy.md. Everything here
is pure: no pyinfra, no I/O beyond resolving controller-side file paths.
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

from ollama_fleet.errors import ConfigError

ROLES = ("gpu", "ollama", "models", "caddy", "firewall", "services")

Check = Callable[[Any], str | None]  # None when the value is fine, else what is wrong


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    role: str
    default: Any
    meaning: str
    check: Check


def _is(kind: type | tuple[type, ...], label: str) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            return f"expected {label}, got {value!r}"
        return None if isinstance(value, kind) else f"expected {label}, got {value!r}"

    return check


def _port(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        return f"{value!r} is not a TCP port (1-65535)"
    return None


def _positive(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"expected a whole number >= 0, got {value!r}"
    return None


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"expected one of {', '.join(choices)}; got {value!r}"

    return check


def _list_of(item: Check, label: str) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected a list of {label}, got {value!r}"
        for element in value:
            problem = item(element)
            if problem:
                return problem
        return None

    return check


def _cidr(value: Any) -> str | None:
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return f"{value!r} is not an IP address or CIDR network"
    return None


def _site_name(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(
        r"[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?", value
    )
    return None if ok else f"{value!r} is not a host name"


def _sha256(value: Any) -> str | None:
    ok = isinstance(value, str) and (value == "" or re.fullmatch(r"[0-9a-f]{64}", value))
    return None if ok else f"{value!r} is not a sha256 (64 lowercase hex digits) or empty"


def _version(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)*(-[A-Za-z0-9.]+)?", value)
    return None if ok else f"{value!r} is not a version such as 0.12.0"


def _host_port(value: Any) -> str | None:
    """HOST:PORT with HOST a name, an IPv4 address, [IPv6] or empty (every address)."""
    match = isinstance(value, str) and re.fullmatch(
        r"(?:http://)?(|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})",
        value,
    )
    if not match or _port(int(match.group(3))):
        return f"{value!r} is not HOST:PORT (a name, an IPv4 address or [IPv6], then a port)"
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What a path variable may hold: it lands in shell commands, unit files and a Caddyfile.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
# Ollama's model names: [host[:port]/][namespace/]model[:tag]
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(:[0-9]+)?(/[A-Za-z0-9][A-Za-z0-9._-]*)*"
                         r"(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?")  # fmt: skip


# Handed to a service user (chown) or made a venv: never one of these themselves.
_SYSTEM_DIRS = frozenset({"", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt",
                          "/proc", "/root", "/run", "/sbin", "/sys", "/tmp", "/usr",
                          "/usr/local", "/usr/share", "/var", "/var/lib"})  # fmt: skip


def _host_path(value: Any) -> str | None:
    """An absolute path on the host of letters, digits and . _ + @ / - only, and no `..`."""
    if not isinstance(value, str) or not _PLAIN_PATH.fullmatch(value):
        return f"{value!r} is not an absolute path of letters, digits and . _ + @ / - only"
    if ".." in value.split("/"):
        return f"{value!r} has a `..` component"
    if value.rstrip("/") in _SYSTEM_DIRS:
        return f"{value!r} is a system directory; give a folder of its own, e.g. /data/ollama"
    return None


def _url(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"https?://[A-Za-z0-9._~:/?#@!&+,=%-]+", value)
    return None if ok else f"{value!r} is not an http(s) URL of plain characters"


def _branch(value: Any) -> str | None:
    plain = isinstance(value, str | int) and not isinstance(value, bool)
    ok = plain and re.fullmatch(r"[0-9]{3}", str(value)) is not None
    return None if ok else f"{value!r} is not a driver branch such as 580 (three digits)"


def _origin(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9*._:/\[\]-]+", value)
    return None if ok else f"{value!r} is not one origin such as https://app.example.com"


def _email(value: Any) -> str | None:
    ok = isinstance(value, str) and (
        value == "" or re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", value)
    )
    return None if ok else f"{value!r} is not an e-mail address"


_TIMESPAN_UNIT = (
    r"(?:us|ms|s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?|M|months?|y|years?)"
)
TIMESPAN = re.compile(rf"[0-9]+\s*{_TIMESPAN_UNIT}?(?:\s*[0-9]+\s*{_TIMESPAN_UNIT})*")


def _timespan(value: Any) -> str | None:
    ok = isinstance(value, str) and TIMESPAN.fullmatch(value.strip())
    return None if ok else f"{value!r} is not a systemd time span such as 5min or 1h 30min"


def _one_line(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {value!r}"
    return "holds a control character such as a newline" if _CONTROL.search(value) else None


def _not_yet(service: str) -> Check:
    def check(value: Any) -> str | None:
        if value is not False:
            return (
                f"the {service} service is not part of this release yet; its config keys are "
                "rendered, but it cannot run (keep it false)"
            )
        return None

    return check


def _duration(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"-?[0-9]+(ms|s|m|h)?", value)
    return None if ok else f"{value!r} is not a duration such as 5m, 30s or -1"


def _env_map(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"expected a mapping of NAME: value, got {value!r}"
    for key, item in value.items():
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", str(key)):
            return f"{key!r} is not an environment variable name"
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            return f"{key}: expected a string or number, got {item!r}"
        if _CONTROL.search(str(item)):
            return f"{key}: the value holds a control character such as a newline"
    return None


def _model_list(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"expected a list of model names, got {value!r}"
    for item in value:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            return f"{item!r} is neither a model name nor {{name, digest}}"
        if not _MODEL_NAME.fullmatch(name.strip()):
            return f"{name!r} is not a model name such as llama3.2:1b or namespace/model:tag"
    return None


BOOL, INT, STR = _is(bool, "true or false"), _positive, _is(str, "a string")

# fmt: off
VARS: tuple[Var, ...] = (
    # gpu
    Var("gpu_enabled", "gpu", True, "Run the gpu role; a host without an NVIDIA GPU is skipped anyway.", BOOL),
    Var("gpu_assume_present", "gpu", False, "Install the driver even where no NVIDIA GPU is seen (image building, the lab's tests); never reboots or runs nvidia-smi there.", BOOL),
    Var("nvidia_driver_branch", "gpu", "580", "NVIDIA driver branch to install (three digits, e.g. 570, 580).", _branch),
    Var("nvidia_kernel_modules", "gpu", "auto", "`open` (NVIDIA's open kernel modules), `proprietary`, or `auto`: open from branch 560 on, where NVIDIA makes them the default (Turing and newer GPUs; use proprietary for older ones).", _one_of("auto", "open", "proprietary")),
    Var("gpu_secure_boot_ok", "gpu", False, "Secure Boot is on and the DKMS signing key (MOK) is enrolled: install anyway. Without it a host with Secure Boot on is refused, since an unsigned module would not load.", BOOL),
    Var("nvidia_driver_source", "gpu", "vendor", "`vendor`: NVIDIA's CUDA apt repository (cuda-keyring, cuda-drivers-BRANCH, DKMS); `distro`: the distribution's packages.", _one_of("vendor", "distro")),
    Var("gpu_allow_reboot", "gpu", False, "Reboot when the driver changed (then wait and verify with nvidia-smi); otherwise the deploy says a reboot is needed.", BOOL),
    Var("gpu_reboot_timeout", "gpu", 600, "Seconds to wait for the host to come back after a driver reboot.", INT),
    Var("nvidia_container_toolkit", "gpu", False, "Also install the NVIDIA container toolkit.", BOOL ),
    # ollama
    Var("ollama_enabled", "ollama", True, "Install and run Ollama here; false on a gateway or monitor host (then the models and caddy roles are skipped too).", BOOL),
    Var("ollama_version", "ollama", "0.12.0", "Ollama release to install; installed only when the host runs another version.", _version),
    Var("ollama_sha256", "ollama", "", "sha256 of the release archive; empty: read it from the release's sha256sum.txt on the controller.", _sha256),
    Var("ollama_artifact", "ollama", "", "A local archive (bin/ollama, lib/ollama) on the controller to push instead of downloading: offline hosts, and the lab's simulator.", STR),
    Var("ollama_download_base", "ollama", "https://github.com/ollama/ollama/releases/download", "Where releases are downloaded from (a mirror may be given).", _url),
    Var("ollama_host", "ollama", "127.0.0.1:11434", "OLLAMA_HOST: the address Ollama listens on. Keep it on loopback behind Caddy.", _host_port),
    Var("ollama_models_dir", "ollama", "/usr/share/ollama/.ollama/models", "OLLAMA_MODELS: where models are stored; created and owned by the ollama user (letters, digits and . _ + @ / - only).", _host_path),
    Var("ollama_keep_alive", "ollama", "5m", "OLLAMA_KEEP_ALIVE: how long an idle model stays loaded (-1: forever).", _duration),
    Var("ollama_num_parallel", "ollama", 1, "OLLAMA_NUM_PARALLEL: parallel requests per model.", INT ),
    Var("ollama_max_loaded_models", "ollama", 0, "OLLAMA_MAX_LOADED_MODELS (0: Ollama's default, 3 per GPU).", INT),
    Var("ollama_max_queue", "ollama", 512, "OLLAMA_MAX_QUEUE: queued requests before 503.", INT),
    Var("ollama_flash_attention", "ollama", False, "OLLAMA_FLASH_ATTENTION.", BOOL),
    Var("ollama_origins", "ollama", [], "OLLAMA_ORIGINS: extra allowed browser origins.", _list_of(_origin, "origins")),
    Var("ollama_extra_env", "ollama", {}, "Other environment for the service, e.g. OLLAMA_CONTEXT_LENGTH.", _env_map),
    Var("ollama_wait_timeout", "ollama", 60, "Seconds to wait for Ollama to answer after a (re)start.", INT),
    # models
    Var("models_enabled", "models", True, "Pull required_models on this host (where Ollama runs).", BOOL),
    Var("required_models", "models", [], "Models to pull (names, or {name, digest}); the checks verify them too.", _model_list),
    Var("models_prune", "models", False, "Delete models that are not in required_models.", BOOL),
    # caddy
    Var("caddy_enabled", "caddy", True, "Run Caddy here, in front of Ollama (where Ollama runs).", BOOL),
    Var("caddy_source", "caddy", "auto", "`debian`: the distribution's caddy package; `caddy-repo`: Caddy's own apt repository; `auto`: the distribution's where it has one (Debian 12, Ubuntu 24.04), else Caddy's (Ubuntu 22.04).", _one_of("auto", "debian", "caddy-repo")),
    Var("caddy_site_names", "caddy", [], "Site names Caddy serves; empty: the host name of public_url.", _list_of(_site_name, "host names")),
    Var("caddy_tls", "caddy", "internal", "`acme` (needs caddy_acme_email), `internal` (Caddy's own CA) or `files` (caddy_tls_cert_file/key_file).", _one_of("acme", "internal", "files")),
    Var("caddy_acme_email", "caddy", "", "Account e-mail for ACME certificates.", _email),
    Var("caddy_tls_cert_file", "caddy", "", "Controller path of a PEM certificate chain (caddy_tls: files).", STR),
    Var("caddy_tls_key_file", "caddy", "", "Controller path of its private key; may be a vault-encrypted file.", STR),
    Var("caddy_response_timeout", "caddy", "10m", "How long Caddy waits for the first byte of an answer (model loads are slow).", _duration),
    Var("caddy_hsts", "caddy", True, "Send Strict-Transport-Security.", BOOL),
    Var("caddy_open_admin_endpoints", "caddy", False, "Let Ollama's write and admin endpoints (/api/pull, /api/push, /api/delete, /api/create, /api/copy, /api/blobs/*) through from outside. Off: Caddy answers them 403.", BOOL),
    Var("caddy_extra_directives", "caddy", "", "Raw Caddyfile directives added inside the site block (validated on the host before use).", STR),
    # firewall
    Var("firewall_enabled", "firewall", True, "Manage the firewall's own nftables table, inet ollama_fleet (other tables are left alone).", BOOL),
    Var("sshd_port", "firewall", 22, "The port sshd listens on, on the host (may differ from ssh_port behind a forward); always allowed.", _port),
    Var("firewall_allow_ollama", "firewall", [], "Networks (CIDRs) allowed to reach Ollama's port directly, e.g. a gateway node.", _list_of(_cidr, "CIDRs")),
    Var("firewall_allow_metrics", "firewall", [], "Networks (CIDRs) allowed to reach firewall_metrics_ports.", _list_of(_cidr, "CIDRs")),
    Var("firewall_metrics_ports", "firewall", [9464], "Ports opened to firewall_allow_metrics (the monitor's metrics).", _list_of(_port, "ports")),
    Var("firewall_extra_tcp_ports", "firewall", [], "More TCP ports open to everyone.", _list_of(_port, "ports")),
    Var("firewall_manage_forward", "firewall", False, "Drop all forwarded traffic (a forward chain, policy drop); leave false where Docker or libvirt forward for containers or guests.", BOOL),
    # services
    Var("services_enabled", "services", True, "Install this project (a wheel built on the controller) into fleet_venv with its units.", BOOL),
    Var("fleet_venv", "services", "/opt/ollama-fleet", "Where the project's venv lives on the host.", _host_path),
    Var("fleet_check_interval", "services", "5min", "How often the host's ollama-fleet-check.timer runs the checks against itself (systemd time span; only where Ollama runs).", _timespan),
    Var("monitor_enabled", "services", False, "Run the monitor service (arrives with the monitor issue; config keys below are rendered already). true is refused until then.", _not_yet("monitor")),
    Var("monitor_port", "services", 9464, "Port of the monitor's metrics and status page.", _port),
    Var("monitor_webhook_url", "services", "", "Alert webhook (a secret: keep it in the vault).", _one_line),
    Var("gateway_enabled", "services", False, "Run the gateway and point Caddy at it (arrives with the gateway issue). true is refused until then.", _not_yet("gateway")),
    Var("gateway_port", "services", 8080, "Port the gateway listens on, on loopback.", _port),
    Var("gateway_api_keys", "services", [], "Client API keys (secrets: keep them in the vault); stored on the host only as sha256 hashes.", _list_of(_one_line, "one-line strings")),
)
# fmt: on

BY_NAME: Mapping[str, Var] = {var.name: var for var in VARS}
# Values that are secrets: a message about them never shows the value.
SECRET_VARS = frozenset({"monitor_webhook_url", "gateway_api_keys", "ollama_extra_env"})
# Roles that only make sense where Ollama runs on the host.
NEEDS_OLLAMA = ("models_enabled", "caddy_enabled")
PREFIXES = ("gpu_", "nvidia_", "ollama_", "models_", "caddy_", "firewall_", "services_",
            "fleet_", "monitor_", "gateway_")  # fmt: skip


def defaults(role: str) -> dict[str, Any]:
    """`data_defaults` for one role's @deploy."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return {var.name: var.default for var in VARS if var.role == role}


def validate(hostvars: Mapping[str, Any], *, where: str) -> None:
    """ConfigError for the first unknown role variable or bad value; `where` names file and host.

    A variable counts as a role variable when it starts with a role prefix (ollama_, caddy_...);
    other variables (check variables, ssh_*, your own) are left to their owners.
    """
    for key, value in hostvars.items():
        var = BY_NAME.get(key)
        if var is None:
            if key.startswith(PREFIXES):
                near = get_close_matches(key, list(BY_NAME), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigError(f"{where}: unknown variable {key!r}{hint}; see docs/deploy.md")
            continue
        problem = var.check(value)
        if problem:
            if key in SECRET_VARS:
                problem = "invalid value (not shown: it is a secret); " + _without_values(problem)
            raise ConfigError(f"{where}: {key}: {problem}")
    if hostvars.get("ollama_enabled") is False:
        for key in NEEDS_OLLAMA:
            if hostvars.get(key) is True:
                raise ConfigError(
                    f"{where}: {key} is true but ollama_enabled is false; the {key[:-8]} role "
                    "needs Ollama on the same host"
                )
    tls = hostvars.get("caddy_tls", BY_NAME["caddy_tls"].default)
    if tls == "acme" and not hostvars.get("caddy_acme_email"):
        raise ConfigError(f"{where}: caddy_tls is acme but caddy_acme_email is not set")
    if tls == "files":
        for key in ("caddy_tls_cert_file", "caddy_tls_key_file"):
            if not hostvars.get(key):
                raise ConfigError(f"{where}: caddy_tls is files but {key} is not set")


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
    return on("ollama_enabled") if flag in NEEDS_OLLAMA else True


def resolved(hostvars: Mapping[str, Any], role: str) -> dict[str, Any]:
    """One role's variables: the defaults overlaid by the host's values."""
    return {**defaults(role), **{k: v for k, v in hostvars.items() if k in defaults(role)}}


def controller_path(value: str, inventory_path: Path) -> Path:
    """A controller-side file named in the inventory, relative to the inventory's folder."""
    return (inventory_path.parent / Path(value).expanduser()).resolve()


def markdown_table(role: str) -> str:
    """The role's variables as the Markdown table docs/deploy.md carries (kept equal by a test)."""
    rows = ["| name | default | meaning |", "| --- | --- | --- |"]
    for var in VARS:
        if var.role == role:
            default = var.default if isinstance(var.default, str) else json.dumps(var.default)
            default = default or '""'
            rows.append(f"| `{var.name}` | `{default}` | {var.meaning} |")
    return "\n".join(rows)
