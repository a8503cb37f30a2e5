"""The rules for the gateway's database and Redis URLs, whose messages never quote the value.

The URLs may carry passwords. Pure functions of the value, composed into the variable table
of ollama_fleet.hostvars.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ollama_fleet.gateway.sessions.urls import credentials_problem
from ollama_fleet.varchecks import CONTROL, PLAIN_PATH, Check

# The scheme of a URL, matched without reading further: what follows may be a password.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_REDIS_DB = re.compile(r"/?|/[0-9]+")
POSTGRESQL_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss")


def database_url(state_dir: str) -> Check:
    """The sessions' database: `postgresql://` or `postgres://`, or `sqlite:////PATH` with PATH
    a file under `state_dir` (the one place the gateway's hardened unit may write)."""
    example = "postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:////PATH"

    def check(value: Any) -> str | None:
        scheme, problem = _scheme(value, example)
        if problem:
            return problem
        if scheme in POSTGRESQL_SCHEMES:
            return _network_problem(value, needs_host=False)
        if scheme == "sqlite":
            return _sqlite_problem(value, state_dir)
        return f"the scheme {scheme}:// is none of postgresql://, postgres://, sqlite:///"

    return check


def redis_url(value: Any) -> str | None:
    """Redis (or Valkey): `redis://` or `rediss://` (TLS), a host, a port, a database number."""
    scheme, problem = _scheme(value, "redis://[:PASSWORD@]HOST:6379/0")
    if problem:
        return problem
    if scheme not in REDIS_SCHEMES:
        return f"the scheme {scheme}:// is neither redis:// nor rediss:// (TLS)"
    problem = _network_problem(value, needs_host=True)
    if problem:
        return problem
    if not _REDIS_DB.fullmatch(urlsplit(value).path):
        return "after the host comes at most /N, a database number"
    return None


def _scheme(value: Any, example: str) -> tuple[str, str | None]:
    """The URL's scheme (lower case), or the problem of a value that is no URL on one line."""
    expected = f"expected a URL such as {example}"
    if not isinstance(value, str) or CONTROL.search(value) or re.search(r"\s", value):
        return "", f"{expected}, on one line without blanks"
    match = _SCHEME.match(value)
    if not match:
        return "", expected
    return match.group(1).lower(), None


def _split(value: str) -> tuple[SplitResult | None, str | None]:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is no number from 0 to 65535
    except ValueError:
        return None, "the host or port cannot be read (a port is a number from 1 to 65535)"
    return parts, None


def _network_problem(value: str, *, needs_host: bool) -> str | None:
    credentials = credentials_problem(value)
    if credentials is not None:
        return credentials
    parts, problem = _split(value)
    if parts is None:
        return problem
    if parts.port == 0:
        return "port 0 is no port to connect to"
    if needs_host and not parts.hostname:
        return "no host after the scheme"
    return None


def _sqlite_problem(value: str, state_dir: str) -> str | None:
    path = value.split("://", 1)[1].removeprefix("/")
    under = f"a file under {state_dir}/ (the only place the gateway's unit may write)"
    if not path.startswith("/"):
        return f"a relative SQLite path; write sqlite://// and {under}"
    if not PLAIN_PATH.fullmatch(path) or ".." in path.split("/"):
        return f"the SQLite path must be {under}, of letters, digits and . _ + @ / - only"
    if not PurePosixPath(path).is_relative_to(state_dir) or path.rstrip("/") == state_dir:
        return f"the SQLite path must be {under}"
    return None
