"""gateway.yml's parts: the nodes, the keys and the tuning sections, read into their records.

Values are read through monitor.config_reader (its Reader adds `FILE:LINE: KEY: problem`);
the converters here are the gateway's own: node URLs, key hashes, globs, expiry dates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from ollama_fleet.gateway.settings import (
    Balancing,
    Breaker,
    Health,
    KeySpec,
    Limits,
    NodeSpec,
    Role,
    Strategy,
    Timeouts,
)
from ollama_fleet.inventory_yaml import Entry
from ollama_fleet.monitor.config_reader import (
    Convert,
    Invalid,
    Reader,
    choice,
    duration,
    flag,
    one_line,
    sequence,
)
from ollama_fleet.monitor.durations import format_duration

NODE_KEYS = ("name", "url", "weight", "max_parallel", "queue")
KEY_KEYS = ("name", "sha256", "role", "models", "rpm", "tpm", "max_concurrent", "expires")
LIMIT_KEYS = ("rpm", "tpm", "completion_estimate")
BALANCING_KEYS = ("strategy", "hash_header", "prefer_loaded", "queue_timeout")
HEALTH_KEYS = ("interval", "timeout", "max_backoff", "models_refresh")
BREAKER_KEYS = ("failures", "cooldown")
TIMEOUT_KEYS = ("connect", "first_byte", "read")

HASH_COMMAND = "ollama-fleet gateway key hash"
PLAIN_KEY = "key"  # the vault's form of an entry, pasted here by mistake
PLAIN_KEY_TEXT = (
    "gateway.yml holds only hashes (the value is not shown): write sha256: with the hash "
    f"from `{HASH_COMMAND}` instead"
)
_NODE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


# -- converters: (value, shown) -> the typed value, or Invalid ----------------------------


def at_least(low: int) -> Convert:
    def convert(value: Any, shown: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise Invalid(f"expected a whole number of at least {low}, got {shown}")
        return value

    return convert


def node_name(value: Any, shown: str) -> str:
    if not isinstance(value, str) or not _NODE_NAME.fullmatch(value):
        raise Invalid(f"expected a name of letters, digits, '.', '_' and '-', got {shown}")
    return value


def node_url(value: Any, shown: str) -> str:
    """`http(s)://HOST:PORT`, nothing more; a trailing `/` is dropped."""
    if not isinstance(value, str):
        raise Invalid(f"expected an http(s)://HOST:PORT URL, got {shown}")
    parts = urlsplit(value.strip())
    if "@" in parts.netloc:  # it may hold a password: never shown
        raise Invalid("a node's URL must not carry a user name or password (not shown)")
    try:
        port = parts.port
    except ValueError:
        raise Invalid(f"{shown} has no valid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"expected an http(s)://HOST:PORT URL, got {shown}")
    if port is None:
        raise Invalid(f"{shown} has no port; write it, e.g. http://HOST:11434")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Invalid(f"{shown} has a path or query; a node's URL is only http(s)://HOST:PORT")
    return f"{parts.scheme}://{parts.netloc}"


def sha256_hex(value: Any, shown: str) -> str:
    """64 hex digits, bare or after `sha256:`, as lowercase hex; anything else is never shown."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        # a hash of decimal digits only reads as a number in YAML (leading zeros lost)
        raise Invalid("YAML read it as a number: put the hash in quotes (the value is not shown)")
    text = value.strip() if isinstance(value, str) else ""
    hex_digits = text.removeprefix("sha256:")
    if not _HEX64.fullmatch(hex_digits):
        raise Invalid(
            "expected 64 hex digits, or sha256: and 64 hex digits (the value is not shown); "
            f"a key in plain text does not belong here: hash it with `{HASH_COMMAND}`"
        )
    return hex_digits.lower()


def role(value: Any, shown: str) -> Role:
    return Role(choice(*(r.value for r in Role))(value, shown))


def strategy(value: Any, shown: str) -> Strategy:
    return Strategy(choice(*(s.value for s in Strategy))(value, shown))


def globs(value: Any, shown: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise Invalid(f'expected a non-empty list of model globs such as ["llama3*"], got {shown}')
    found = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise Invalid(f"expected non-empty model globs, got {item!r} in the list")
        found.append(one_line(item, repr(item)))
    return tuple(found)


def expiry(value: Any, shown: str) -> datetime:
    """A date (its midnight) or a datetime, in UTC; a time without a zone is taken as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Invalid(f"expected a date (2027-01-01) or an ISO datetime, got {shown}") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise Invalid(f"expected a date (2027-01-01) or an ISO datetime, got {shown}")


def header_name(value: Any, shown: str) -> str:
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise Invalid(f"expected an HTTP header name such as x-session-id, got {shown}")
    return value.lower()


# -- the sections ------------------------------------------------------------------------


def nodes(reader: Reader, entry: Entry | None) -> tuple[NodeSpec, ...]:
    found: list[NodeSpec] = []
    first: dict[str, int] = {}
    converts = {"weight": at_least(1), "max_parallel": at_least(1), "queue": at_least(0)}
    for index, node in enumerate(sequence(reader, entry, "nodes (- name: ..., url: ...)")):
        where = f"nodes[{index}]"
        fields = _item(reader, node, where, NODE_KEYS, ("name", "url"))
        if fields is None:
            continue
        name = reader.get(fields, where, "name", node_name)
        url = reader.get(fields, where, "url", node_url)
        given = {key: reader.get(fields, where, key, convert) for key, convert in converts.items()}
        if name is not None and not _unique(reader, fields["name"], where, name, first, "node"):
            continue
        if name is None or url is None or _failed(reader, fields, given):
            continue
        extra = {key: value for key, value in given.items() if value is not None}
        found.append(NodeSpec(name=name, url=url, **extra))
    return tuple(found)


def keys(reader: Reader, entry: Entry | None) -> tuple[KeySpec, ...]:
    found: list[KeySpec] = []
    first: dict[str, int] = {}
    hashes: dict[str, str] = {}  # hash -> the name of the key that has it
    converts: dict[str, Convert] = {
        "role": role,
        "models": globs,
        "rpm": at_least(1),
        "tpm": at_least(1),
        "max_concurrent": at_least(1),
        "expires": expiry,
    }
    for index, node in enumerate(sequence(reader, entry, "keys (- name: ..., sha256: ...)")):
        where = f"keys[{index}]"
        fields = _item(reader, node, where, (*KEY_KEYS, PLAIN_KEY), ("name", "sha256"))
        if fields is None:
            continue
        name = reader.get(fields, where, "name", one_line)
        digest = reader.get(fields, where, "sha256", sha256_hex, secret=True)
        given = {key: reader.get(fields, where, key, convert) for key, convert in converts.items()}
        if name is not None and not _unique(reader, fields["name"], where, name, first, "key"):
            continue
        if name is not None and digest is not None and digest in hashes:
            text = f"key {name!r} has the same hash as key {hashes[digest]!r}; each needs its own"
            reader.add(fields["sha256"].line, f"{where}.sha256", text)
            continue
        if digest is not None and name is not None:
            hashes[digest] = name
        if name is None or digest is None or _failed(reader, fields, given):
            continue
        extra = {key: value for key, value in given.items() if value is not None}
        found.append(KeySpec(name=name, sha256=digest, **extra))
    return tuple(found)


def limits(reader: Reader, entry: Entry | None) -> Limits:
    fields = _section(reader, entry, "limits", LIMIT_KEYS)
    converts = {"rpm": at_least(1), "tpm": at_least(1), "completion_estimate": at_least(0)}
    return Limits(**_read(reader, fields, "limits", {k: (k, c) for k, c in converts.items()}))


def balancing(reader: Reader, entry: Entry | None) -> Balancing:
    fields = _section(reader, entry, "balancing", BALANCING_KEYS)
    converts: dict[str, tuple[str, Convert]] = {
        "strategy": ("strategy", strategy),
        "hash_header": ("hash_header", header_name),
        "prefer_loaded": ("prefer_loaded", flag),
        "queue_timeout": ("queue_timeout_s", duration()),
    }
    return Balancing(**_read(reader, fields, "balancing", converts))


def health(reader: Reader, entry: Entry | None) -> Health:
    fields = _section(reader, entry, "health", HEALTH_KEYS)
    found = _read(reader, fields, "health", {k: (f"{k}_s", duration()) for k in HEALTH_KEYS})
    result = Health(**found)
    if result.max_backoff_s < result.interval_s:
        where = fields.get("max_backoff") or fields["interval"]
        text = (
            f"health.max_backoff ({format_duration(result.max_backoff_s)}) must be at least "
            f"health.interval ({format_duration(result.interval_s)})"
        )
        reader.add(where.line, f"health.{where.key}", text)
    return result


def breaker(reader: Reader, entry: Entry | None) -> Breaker:
    fields = _section(reader, entry, "breaker", BREAKER_KEYS)
    converts: dict[str, tuple[str, Convert]] = {
        "failures": ("failures", at_least(1)),
        "cooldown": ("cooldown_s", duration()),
    }
    return Breaker(**_read(reader, fields, "breaker", converts))


def timeouts(reader: Reader, entry: Entry | None) -> Timeouts:
    fields = _section(reader, entry, "timeouts", TIMEOUT_KEYS)
    converts = {k: (f"{k}_s", duration()) for k in TIMEOUT_KEYS}
    return Timeouts(**_read(reader, fields, "timeouts", converts))


# -- shared ------------------------------------------------------------------------------


def _section(
    reader: Reader, entry: Entry | None, where: str, allowed: tuple[str, ...]
) -> dict[str, Entry]:
    return {} if entry is None else reader.fields(entry.node, where, allowed)


def _read(
    reader: Reader,
    fields: Mapping[str, Entry],
    where: str,
    converts: Mapping[str, tuple[str, Convert]],
) -> dict[str, Any]:
    """{attribute: value} of the keys given and valid; the record's defaults fill the rest."""
    found: dict[str, Any] = {}
    for key in fields:
        attribute, convert = converts[key]
        value = reader.get(fields, where, key, convert)
        if value is not None:
            found[attribute] = value
    return found


def _item(
    reader: Reader, node: Any, where: str, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Entry] | None:
    """The fields of one list item; None (reported) when it is empty or lacks a required key.

    A keys[] item with a `key:` (a key in plain text) is reported too, never quoting it.
    """
    fields = reader.fields(node, where, allowed)
    shape = " and ".join(required)
    if not fields:
        if reader.document.is_null(node):
            reader.add(reader.line(node), where, f"empty; each has {shape}")
        return None
    if PLAIN_KEY in fields:  # only keys[] allows it, to say this
        reader.add(fields[PLAIN_KEY].line, f"{where}.{PLAIN_KEY}", PLAIN_KEY_TEXT)
    missing = [key for key in required if key not in fields]
    if missing:
        reader.add(reader.line(node), where, f"no {' and no '.join(missing)}; each has {shape}")
        return None
    return fields


def _unique(
    reader: Reader, entry: Entry, where: str, name: str, first: dict[str, int], what: str
) -> bool:
    if name in first:
        text = f"{name!r} is the name of another {what} too (line {first[name]})"
        reader.add(entry.line, f"{where}.name", text)
        return False
    first[name] = entry.line
    return True


def _failed(reader: Reader, fields: Mapping[str, Entry], given: Mapping[str, Any]) -> bool:
    """Whether a value written (not null) was wrong: it has been reported, the item is left out."""
    return any(
        value is None and not reader.is_null(fields[key])
        for key, value in given.items()
        if key in fields
    )
