"""The rules a variable's value is checked by: each says what is wrong, or None when it is fine.

Pure functions of the value, composed into the variable table of ollama_fleet.hostvars.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from difflib import get_close_matches
from typing import Any
from urllib.parse import urlsplit

from ollama_fleet.gateway.keys import hash_key
from ollama_fleet.values import canonical_model_name, port_problem

Check = Callable[[Any], str | None]  # None when the value is fine, else what is wrong

# the keys of latency_thresholds, as ollama_fleet.checks.model.LatencyPolicy names them
LATENCY_KEYS = ("connect_ms", "first_byte_ms", "first_token_ms", "tokens_per_s")
# the checks the monitor schedules, as ollama_fleet.checks.model.CHECK_NAMES names them
CHECK_NAMES = ("connectivity", "tls", "models", "chat", "auth", "exposure")
# a monitor.yml duration: a whole number of seconds, minutes or hours
MONITOR_DURATION = re.compile(r"[1-9][0-9]*(s|m|h)")


def kind_of(kind: type | tuple[type, ...], label: str) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            return f"expected {label}, got {value!r}"
        return None if isinstance(value, kind) else f"expected {label}, got {value!r}"

    return check


def port(value: Any) -> str | None:
    return port_problem(value)


def whole_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"expected a whole number >= 0, got {value!r}"
    return None


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"expected one of {', '.join(choices)}; got {value!r}"

    return check


def list_of(item: Check, label: str) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected a list of {label}, got {value!r}"
        for element in value:
            problem = item(element)
            if problem:
                return problem
        return None

    return check


def cidr(value: Any) -> str | None:
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return f"{value!r} is not an IP address or CIDR network"
    return None


def site_name(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(
        r"[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?", value
    )
    return None if ok else f"{value!r} is not a host name"


def sha256(value: Any) -> str | None:
    ok = isinstance(value, str) and (value == "" or re.fullmatch(r"[0-9a-f]{64}", value))
    return None if ok else f"{value!r} is not a sha256 (64 lowercase hex digits) or empty"


def version(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]+)*(-[A-Za-z0-9.]+)?", value)
    return None if ok else f"{value!r} is not a version such as 0.12.0"


def host_port(value: Any) -> str | None:
    """HOST:PORT with HOST a name, an IPv4 address, [IPv6] or empty (every address)."""
    match = isinstance(value, str) and re.fullmatch(
        r"(?:http://)?(|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})",
        value,
    )
    if not match or port(int(match.group(3))):
        return f"{value!r} is not HOST:PORT (a name, an IPv4 address or [IPv6], then a port)"
    return None


CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What a path variable may hold: it lands in shell commands, unit files and a Caddyfile.
PLAIN_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
# Ollama's model names: [host[:port]/][namespace/]model[:tag]
MODEL_NAME = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*(:[0-9]+)?(/[A-Za-z0-9][A-Za-z0-9._-]*)*"
    r"(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?"
)


# Handed to a service user (chown) or made a venv: never one of these themselves.
SYSTEM_DIRS = frozenset(
    {
        "",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/local",
        "/usr/share",
        "/var",
        "/var/lib",
    }
)


def host_path(value: Any) -> str | None:
    """An absolute path on the host of letters, digits and . _ + @ / - only, and no `..`."""
    if not isinstance(value, str) or not PLAIN_PATH.fullmatch(value):
        return f"{value!r} is not an absolute path of letters, digits and . _ + @ / - only"
    if ".." in value.split("/"):
        return f"{value!r} has a `..` component"
    if value.rstrip("/") in SYSTEM_DIRS:
        return f"{value!r} is a system directory; give a folder of its own, e.g. /data/ollama"
    return None


def plain_url(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"https?://[A-Za-z0-9._~:/?#@!&+,=%-]+", value)
    return None if ok else f"{value!r} is not an http(s) URL of plain characters"


def branch(value: Any) -> str | None:
    plain = isinstance(value, str | int) and not isinstance(value, bool)
    ok = plain and re.fullmatch(r"[0-9]{3}", str(value)) is not None
    return None if ok else f"{value!r} is not a driver branch such as 580 (three digits)"


def origin(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9*._:/\[\]-]+", value)
    return None if ok else f"{value!r} is not one origin such as https://app.example.com"


def email(value: Any) -> str | None:
    ok = isinstance(value, str) and (
        value == "" or re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", value)
    )
    return None if ok else f"{value!r} is not an e-mail address"


TIMESPAN_UNIT = (
    r"(?:us|ms|s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?|M|months?|y|years?)"
)
TIMESPAN = re.compile(rf"[0-9]+\s*{TIMESPAN_UNIT}?(?:\s*[0-9]+\s*{TIMESPAN_UNIT})*")


def timespan(value: Any) -> str | None:
    ok = isinstance(value, str) and TIMESPAN.fullmatch(value.strip())
    return None if ok else f"{value!r} is not a systemd time span such as 5min or 1h 30min"


def one_line(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {value!r}"
    return "holds a control character such as a newline" if CONTROL.search(value) else None


def ip_address(value: Any) -> str | None:
    """An IPv4 or IPv6 address literal (no name, no network, no port)."""
    problem = f"{value!r} is not an IP address such as 127.0.0.1, 0.0.0.0 or ::1"
    if not isinstance(value, str):
        return problem
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return problem
    return None


def check_intervals(value: Any) -> str | None:
    """{check name: duration}, e.g. {connectivity: 30s, tls: 1h}: how often each check runs."""
    if not isinstance(value, dict):
        return f"expected a mapping such as {{connectivity: 30s}}, got {value!r}"
    for key, every in value.items():
        if key not in CHECK_NAMES:
            near = get_close_matches(str(key), CHECK_NAMES, n=1)
            hint = f"; did you mean {near[0]}?" if near else f" (checks: {', '.join(CHECK_NAMES)})"
            return f"unknown check {key!r}{hint}"
        if not isinstance(every, str) or not MONITOR_DURATION.fullmatch(every):
            return f"{key}: expected a duration such as 30s, 5m or 1h, got {every!r}"
    return None


def duration(value: Any) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"-?[0-9]+(ms|s|m|h)?", value)
    return None if ok else f"{value!r} is not a duration such as 5m, 30s or -1"


def wait_duration(value: Any) -> str | None:
    """A duration to wait for: as `duration`, but never negative (-1 means nothing here)."""
    problem = duration(value)
    if problem is None and value.startswith("-"):
        return f"{value!r} is negative"
    return problem


def unprivileged_port(value: Any) -> str | None:
    """A port a service without privileges may listen on."""
    problem = port(value)
    if problem is None and value < 1024:
        return f"{value} needs privileges the service does not have; use >= 1024"
    return problem


# Caddyfile tokens that may hold braces which do not count: quoted strings and comments first,
# then the braces themselves.
CADDY_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|(?:^|(?<=\s))#[^\n]*|[{}]')


def caddy_directives(value: Any) -> str | None:
    """Raw Caddyfile directives; braces balanced, since Caddy 2.6 silently takes a site block
    left open at the end of the file."""
    if not isinstance(value, str):
        return f"expected a string, got {value!r}"
    depth = 0
    for token in CADDY_TOKENS.findall(value):
        depth += {"{": 1, "}": -1}.get(token, 0)
        if depth < 0:
            return "a } closes the site block; its braces must balance"
    return "a { is never closed; its braces must balance" if depth else None


def http_url(value: Any) -> str | None:
    """An http(s) URL on one line, or empty (not set)."""
    problem = one_line(value)
    if problem or value == "":
        return problem
    ok = re.fullmatch(r"https?://[^\s\"\\{}`]+", value)
    return None if ok else f"expected an http(s) URL, got {value!r}"


# A gateway API key given as a mapping: what each field may hold (docs/deploy.md, services).
API_KEY_FIELDS = ("name", "key", "role", "models", "rpm", "tpm", "max_concurrent", "expires")
GATEWAY_ROLES = ("admin", "user", "readonly")
# A name the gateway's config and metrics can carry (node and key names alike).
GATEWAY_NAME = re.compile(r"[A-Za-z0-9._-]+")
# A host or group name as the inventory may spell it: no blanks, no pattern characters.
INVENTORY_NAME = re.compile(r"[^\s,:!&*~\x00-\x1f]+")
NODE_FIELDS = ("name", "url", "weight", "max_parallel", "queue")
STRATEGIES = ("least-connections", "round-robin", "weighted", "random", "hash")


# A gateway key written as its hash: `sha256:` and 64 hex digits (either case).
SHA256_KEY = re.compile(r"sha256:[0-9a-fA-F]{64}")
BARE_HEX = re.compile(r"[0-9a-fA-F]{64}")


def key_sha256(key: str) -> str:
    """The sha256 (lower-case hex) the gateway holds for `key`: its own when written as one."""
    if SHA256_KEY.fullmatch(key):
        return key.removeprefix("sha256:").lower()
    return hash_key(key)


def _plain_key(value: Any, label: str) -> str | None:
    problem = one_line(value)
    if problem:
        return f"{label}: {problem}"
    if not value.strip() or value != value.strip():
        return f"{label} is empty or has blanks around it"
    if BARE_HEX.fullmatch(value):
        return f"{label}: 64 hex digits: write it as sha256:HEX if it is a hash"
    return None


def _unknown_field(item: Mapping[Any, Any], fields: tuple[str, ...], label: str) -> str | None:
    unknown = sorted(set(map(str, item)) - set(fields))
    if not unknown:
        return None
    near = get_close_matches(unknown[0], fields, n=1)
    hint = f"; did you mean {near[0]}?" if near else f" (fields: {', '.join(fields)})"
    return f"{label}: unknown field {unknown[0]!r}{hint}"


def _positive(item: Mapping[str, Any], names: tuple[str, ...], label: str) -> str | None:
    for name in names:
        value = item.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            return f"{label}: {name}: expected a whole number >= 1, got {value!r}"
    return None


def _api_key_entry(item: Any, index: int) -> str | None:
    label = f"key {index}"
    if not isinstance(item, dict):
        return _plain_key(item, label)
    problem = _unknown_field(item, API_KEY_FIELDS, label)
    if problem:
        return problem
    if "key" not in item:
        return f"{label}: no key (the secret; or sha256: and its 64 hex digits)"
    problem = _plain_key(item["key"], f"{label}: key")
    if problem:
        return problem
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not GATEWAY_NAME.fullmatch(name)):
        return f"{label}: name: {name!r} is not a name of letters, digits and . _ -"
    if item.get("role", "user") not in GATEWAY_ROLES:
        return f"{label}: role: expected one of {', '.join(GATEWAY_ROLES)}, got {item['role']!r}"
    models = item.get("models", ["*"])
    if (
        not isinstance(models, list)
        or not models
        or any(
            not isinstance(glob, str) or not glob.strip() or CONTROL.search(glob) for glob in models
        )
    ):
        return f"{label}: models: expected a list of model names or globs, got {models!r}"
    problem = _positive(item, ("rpm", "tpm", "max_concurrent"), label)
    if problem:
        return problem
    expires = item.get("expires")
    if expires is not None and not _is_expiry(expires):
        return f"{label}: expires: expected a date (2027-01-01) or an ISO datetime, got {expires!r}"
    return None


def _is_expiry(value: Any) -> bool:
    if isinstance(value, date):  # datetime is a date too
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def api_keys(value: Any) -> str | None:
    """The gateway's API keys: each a key on one line (named key-N, role user), or a mapping
    {name, key, role, models, rpm, tpm, max_concurrent, expires}; names unique."""
    if not isinstance(value, list):
        return f"expected a list of keys or {{name, key, role, ...}} mappings, got {value!r}"
    names: set[str] = set()
    digests: dict[str, int] = {}
    for index, item in enumerate(value, start=1):
        problem = _api_key_entry(item, index)
        if problem:
            return problem
        name = item.get("name") if isinstance(item, dict) else None
        name = name or f"key-{index}"
        if name in names:
            return f"key {index}: name {name!r} is given twice"
        names.add(name)
        digest = key_sha256(item["key"] if isinstance(item, dict) else item)
        if digest in digests:
            # the gateway refuses two keys with one hash: it could not tell them apart
            return f"key {index}: same sha256 as key {digests[digest]} (a key is given twice)"
        digests[digest] = index
    return None


def gateway_nodes(value: Any) -> str | None:
    """Ollama nodes behind the gateway: inventory host or group names, or mappings
    {name, url, weight, max_parallel, queue} (a name is resolved against the whole inventory)."""
    if not isinstance(value, list):
        return f"expected a list of host or group names, or {{name, url}} mappings, got {value!r}"
    names: set[str] = set()
    for index, item in enumerate(value, start=1):
        label = f"node {index}"
        if isinstance(item, str):
            if not INVENTORY_NAME.fullmatch(item):
                return f"{label}: {item!r} is not a host or group name"
            continue
        if not isinstance(item, dict):
            return f"{label}: expected a host or group name, or {{name, url}}, got {item!r}"
        problem = _unknown_field(item, NODE_FIELDS, label)
        if problem:
            return problem
        name = item.get("name")
        if not isinstance(name, str) or not GATEWAY_NAME.fullmatch(name):
            return f"{label}: name: expected a name of letters, digits and . _ -, got {name!r}"
        if name in names:
            return f"{label}: name {name!r} is given twice"
        names.add(name)
        url = item.get("url")
        if url_problem(url) or urlsplit(str(url)).path not in ("", "/"):
            return f"{label}: url: expected http(s)://HOST:PORT without a path, got {url!r}"
        problem = _positive(item, ("weight", "max_parallel"), label)
        if problem:
            return problem
        if "queue" in item and whole_number(item["queue"]):
            return f"{label}: queue: expected a whole number >= 0, got {item['queue']!r}"
    return None


def node_address(value: Any) -> str | None:
    """A host's address for the others: an IP address (IPv6 bare or in brackets) or a name."""
    if isinstance(value, str) and not ip_address(value.strip("[]")):
        return None
    if isinstance(value, str) and site_name(value) is None and "*" not in value:
        return None
    return f"{value!r} is neither an IP address nor a host name"


def gateway_limits(value: Any) -> str | None:
    """The gateway's limits over all keys: {rpm, tpm}, each a whole number >= 1."""
    if not isinstance(value, dict):
        return f"expected a mapping such as {{rpm: 600, tpm: 1000000}}, got {value!r}"
    problem = _unknown_field(value, ("rpm", "tpm"), "gateway_limits")
    return problem or _positive(value, ("rpm", "tpm"), "gateway_limits")


def seconds_duration(value: Any) -> str | None:
    """A positive duration of s, m or h (30s, 2m), as the gateway's config reads it."""
    ok = isinstance(value, str) and MONITOR_DURATION.fullmatch(value)
    return None if ok else f"{value!r} is not a duration such as 30s, 2m or 1h"


def extra_env(managed: Mapping[str, str]) -> Check:
    """`env_map`, refusing the names in `managed` (environment name: the variable that sets it)."""

    def check(value: Any) -> str | None:
        problem = env_map(value)
        if problem:
            return problem
        for key in value:
            if key in managed:
                return f"{key} is set by {managed[key]}; use that"
        return None

    return check


def env_map(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"expected a mapping of NAME: value, got {value!r}"
    for key, item in value.items():
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", str(key)):
            return f"{key!r} is not an environment variable name"
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            return f"{key}: expected a string or number, got {item!r}"
        if CONTROL.search(str(item)):
            return f"{key}: the value holds a control character such as a newline"
    return None


def model_list(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"expected a list of model names, got {value!r}"
    seen: dict[str, str] = {}
    for item in value:
        if isinstance(item, dict):
            unknown = sorted(set(map(str, item)) - {"name", "digest"})
            if unknown:
                near = get_close_matches(unknown[0], ["name", "digest"], n=1)
                hint = f"; did you mean {near[0]}?" if near else " (a model has name and digest)"
                return f"unknown key {unknown[0]!r} in a model{hint}"
            if item.get("digest") is not None and not isinstance(item["digest"], str):
                return f"digest of {item.get('name')!r} must be a string"
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            return f"{item!r} is neither a model name nor {{name, digest}}"
        if not MODEL_NAME.fullmatch(name.strip()):
            return f"{name!r} is not a model name such as llama3.2:1b or namespace/model:tag"
        key = canonical_model_name(name)
        if key in seen:
            if seen[key] == name:
                return f"{name!r} is listed twice"
            return f"{seen[key]!r} and {name!r} are the same model (listed twice)"
        seen[key] = name
    return None


BOOL, INT, STR = kind_of(bool, "true or false"), whole_number, kind_of(str, "a string")


def number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return f"expected a number >= 0, got {value!r}"
    return None


def mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"expected a mapping, got {value!r}"


def model_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"expected a model name, got {value!r}"
    if not MODEL_NAME.fullmatch(value.strip()):
        return f"{value!r} is not a model name such as llama3.2:1b or namespace/model:tag"
    return None


def url_problem(value: Any) -> str | None:
    """Why `value` is not an http(s)://HOST[:PORT][/path] URL without credentials; None if it is."""
    if not isinstance(value, str):
        return f"expected an http(s) URL, got {value!r}"
    try:
        parts = urlsplit(value)
        url_port = parts.port
    except ValueError as exc:
        return f"invalid URL {value!r}: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"invalid URL {value!r}: expected http(s)://HOST[:PORT]"
    if url_port == 0:
        return f"invalid URL {value!r}: port 0"
    if parts.username is not None or parts.password is not None:
        # it would end up in every report; keys go in api_key (or --api-key-env)
        return "the URL must not carry a user name or password"
    return None


def latency_thresholds(value: Any) -> str | None:
    """{connect_ms, first_byte_ms, first_token_ms, tokens_per_s}: each [warn, fail] > 0."""
    if not isinstance(value, dict):
        return f"expected a mapping such as {{connect_ms: [500, 3000]}}, got {value!r}"
    for key, levels in value.items():
        if key not in LATENCY_KEYS:
            near = get_close_matches(str(key), LATENCY_KEYS, n=1)
            hint = f"; did you mean {near[0]}?" if near else f" (keys: {', '.join(LATENCY_KEYS)})"
            return f"unknown key {key!r}{hint}"
        numbers = isinstance(levels, list) and len(levels) == 2
        if not numbers or any(
            isinstance(n, bool) or not isinstance(n, int | float) for n in levels
        ):
            return f"{key}: expected [warn, fail], two numbers, got {levels!r}"
        warn, fail = levels
        if warn <= 0 or fail <= 0:
            return f"{key}: the levels must be above 0, got {levels!r}"
        if key == "tokens_per_s" and warn < fail:
            return f"{key}: a rate warns before it fails, so warn >= fail; got {levels!r}"
        if key != "tokens_per_s" and warn > fail:
            return f"{key}: a time warns before it fails, so warn <= fail; got {levels!r}"
    return None


def anything(value: Any) -> str | None:
    return None


def positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"expected a whole number >= 1, got {value!r}"
    return None
