"""gateway.yml's `sessions:` and `redis:` sections: where history lives, what limits share.

Both URLs may carry passwords: read as secrets (a message names the key, never the value).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ollama_fleet.gateway.config_sections import at_least
from ollama_fleet.gateway.sessions.urls import credentials_problem
from ollama_fleet.gateway.settings import Sessions, SharedLimits
from ollama_fleet.inventory_yaml import Entry
from ollama_fleet.monitor.config_reader import Convert, Invalid, Reader, choice, duration

SESSION_KEYS = (
    "database_url",
    "history_messages",
    "history_tokens",
    "flush_interval",
    "max_message_chars",
)
REDIS_KEYS = ("url", "on_error", "timeout")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss")
MAX_FLUSH_INTERVAL_S = 10.0  # a SIGKILL loses at most this much of an answer being streamed


def database_url(value: Any, shown: str) -> str:
    """sqlite:///relative, sqlite:////absolute, or postgresql://[user[:pw]@]host[:port]/db."""
    scheme = _scheme(value, DATABASE_SCHEMES, "sqlite:////PATH or postgresql://HOST/DB")
    if scheme == "sqlite":
        path = value.strip()[len("sqlite:///") :] if value.strip().startswith("sqlite:///") else ""
        if not path:
            raise Invalid("expected sqlite:////ABSOLUTE/PATH (four slashes) or sqlite:///RELATIVE")
    return str(value).strip()


def redis_url(value: Any, shown: str) -> str:
    _scheme(value, REDIS_SCHEMES, "redis://HOST:6379/0 or rediss://")
    return str(value).strip()


def _scheme(value: Any, schemes: tuple[str, ...], example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a URL such as {example} (the value is not shown)")
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        raise Invalid(f"not a URL such as {example} (the value is not shown)") from None
    if parts.scheme not in schemes:
        wanted = ", ".join(f"{s}://" for s in schemes)
        raise Invalid(f"expected a URL starting {wanted} (the value is not shown)")
    problem = None if parts.scheme == "sqlite" else credentials_problem(value.strip())
    if problem is not None:
        raise Invalid(problem)
    return parts.scheme


def sessions(reader: Reader, entry: Entry | None) -> Sessions:
    fields = {} if entry is None else reader.fields(entry.node, "sessions", SESSION_KEYS)
    converts: dict[str, tuple[str, Convert]] = {
        "history_messages": ("history_messages", at_least(0)),
        "history_tokens": ("history_tokens", at_least(1)),
        "flush_interval": ("flush_interval_s", _flush_interval),
        "max_message_chars": ("max_message_chars", at_least(1)),
    }
    found: dict[str, Any] = {}
    for key in fields:
        if key == "database_url":
            value = reader.get(fields, "sessions", key, database_url, secret=True)
            attribute = "database_url"
        else:
            attribute, convert = converts[key]
            value = reader.get(fields, "sessions", key, convert)
        if value is not None:
            found[attribute] = value
    return Sessions(**found)


def shared_limits(reader: Reader, entry: Entry | None) -> SharedLimits:
    fields = {} if entry is None else reader.fields(entry.node, "redis", REDIS_KEYS)
    found: dict[str, Any] = {}
    if "url" in fields:
        url = reader.get(fields, "redis", "url", redis_url, secret=True)
        if url is not None:
            found["redis_url"] = url
    if "on_error" in fields:
        on_error = reader.get(fields, "redis", "on_error", choice("open", "closed"))
        if on_error is not None:
            found["on_error"] = on_error
    if "timeout" in fields:
        timeout = reader.get(fields, "redis", "timeout", duration())
        if timeout is not None:
            found["timeout_s"] = timeout
    return SharedLimits(**found)


def _flush_interval(value: Any, shown: str) -> float:
    seconds = duration()(value, shown)
    if seconds > MAX_FLUSH_INTERVAL_S:
        raise Invalid(f"{shown} is too long; at most {MAX_FLUSH_INTERVAL_S:g}s")
    return float(seconds)
