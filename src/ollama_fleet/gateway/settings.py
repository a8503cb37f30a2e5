"""The gateway's configuration as typed, frozen records (parsed once from gateway.yml).

Defaults live here as module constants; `gateway/config.py` reads the YAML into these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

DEFAULT_LISTEN = ("127.0.0.1", 8080)
DEFAULT_MAX_PARALLEL = 4  # per node: Ollama's OLLAMA_NUM_PARALLEL (auto picks 4 or 1)
DEFAULT_QUEUE = 32  # per node: requests that may wait for a slot
DEFAULT_QUEUE_TIMEOUT_S = 30.0
DEFAULT_COMPLETION_ESTIMATE = 256  # tokens reserved for an answer whose length is not capped


class Role(enum.Enum):
    """What a key may do: admin everything, user generate and list, readonly list and show."""

    ADMIN = "admin"
    USER = "user"
    READONLY = "readonly"


class Strategy(enum.Enum):
    """How the balancer orders the nodes that can serve a request (docs/gateway.md)."""

    LEAST_CONNECTIONS = "least-connections"
    ROUND_ROBIN = "round-robin"
    WEIGHTED = "weighted"
    RANDOM = "random"
    HASH = "hash"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    """One Ollama node behind the gateway."""

    name: str
    url: str  # http(s)://host:port, no path
    weight: int = 1
    max_parallel: int = DEFAULT_MAX_PARALLEL
    queue: int = DEFAULT_QUEUE


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySpec:
    """One API key: only its SHA-256 (64 lowercase hex digits) is ever held."""

    name: str
    sha256: str = field(repr=False)
    role: Role = Role.USER
    models: tuple[str, ...] = ("*",)  # fnmatch globs on the full model name
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    expires: datetime | None = None  # aware, UTC


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Global limits over all keys (None: no limit) and the answer-length estimate."""

    rpm: int | None = None
    tpm: int | None = None
    completion_estimate: int = DEFAULT_COMPLETION_ESTIMATE


@dataclass(frozen=True, slots=True, kw_only=True)
class Balancing:
    """The strategy, what `hash` hashes on, and whether a loaded model wins over a free slot."""

    strategy: Strategy = Strategy.LEAST_CONNECTIONS
    hash_header: str = "x-session-id"  # `hash`: this request header, else the key's name
    prefer_loaded: bool = True
    queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """Health checks: `GET /api/version` every interval, backing off to max_backoff on failure."""

    interval_s: float = 10.0
    timeout_s: float = 5.0
    max_backoff_s: float = 300.0
    models_refresh_s: float = 30.0  # /api/tags and /api/ps


@dataclass(frozen=True, slots=True, kw_only=True)
class Breaker:
    """Per node: open after `failures` in a row, one probe after `cooldown_s`."""

    failures: int = 3
    cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Upstream timeouts: connect, until the response headers (a cold load), between chunks."""

    connect_s: float = 5.0
    first_byte_s: float = 300.0
    read_s: float = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Sessions:
    """The sessions API (/v1/chat, /v1/sessions): where history is kept and how much is sent.

    `database_url` may carry a password: never shown (sessions.urls.safe_url masks it).
    """

    database_url: str | None = field(default=None, repr=False)  # None: SQLite, default file
    history_messages: int = 40  # earlier messages sent as context (system messages kept)
    history_tokens: int = 8192  # and about this many tokens of them (chars/4), oldest dropped
    flush_interval_s: float = 0.5  # a streamed answer is written at least this often
    max_message_chars: int = 32_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedLimits:
    """Rate limits shared by replicas through Redis/Valkey (None: in memory, one process)."""

    redis_url: str | None = field(default=None, repr=False)
    on_error: Literal["open", "closed"] = "open"  # open: in-memory limits per replica
    timeout_s: float = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """Everything the gateway runs on; `source` names the file it came from (for messages)."""

    listen: tuple[str, int] = DEFAULT_LISTEN
    nodes: tuple[NodeSpec, ...] = ()
    keys: tuple[KeySpec, ...] = ()
    limits: Limits = Limits()
    balancing: Balancing = Balancing()
    health: Health = Health()
    breaker: Breaker = Breaker()
    timeouts: Timeouts = Timeouts()
    sessions: Sessions = Sessions()
    shared_limits: SharedLimits = SharedLimits()
    access_log: bool = True
    source: str = "<defaults>"
