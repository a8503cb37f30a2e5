"""Frozen records of a load test: what to send, what one request measured, the whole run."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ollama_fleet.checks.model import Finding
from ollama_fleet.errors import ConfigError

DEFAULT_PROMPT = "Write one sentence about the sea."
DEFAULT_REQUESTS = 200
DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_TOKENS = 64
DEFAULT_TIMEOUT_S = 60.0


class Api(enum.StrEnum):
    """Which chat endpoint to load: Ollama's own or its OpenAI-compatible one."""

    OLLAMA = "ollama"  # POST /api/chat, NDJSON when streamed
    OPENAI = "openai"  # POST /v1/chat/completions, server-sent events when streamed


class TokenSource(enum.StrEnum):
    """Where a request's count of generated tokens came from."""

    EVAL_COUNT = "eval_count"  # Ollama's final chunk (or whole answer)
    USAGE = "usage"  # OpenAI's usage.completion_tokens
    CHUNKS = "chunks"  # no count in the answer: the streamed content chunks, counted


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSettings:
    """One load test: `requests` chat requests to `url`, `concurrency` of them in flight."""

    url: str  # the base URL, as for `check --url` (no /api, no /v1)
    model: str
    requests: int = DEFAULT_REQUESTS
    concurrency: int = DEFAULT_CONCURRENCY
    stream: bool = True
    api: Api = Api.OLLAMA
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout_s: float = DEFAULT_TIMEOUT_S  # one request, from sending to the last byte
    ca_file: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise ConfigError("a load test needs at least one request (-n 1 or more)")
        if self.concurrency < 1:
            raise ConfigError("a load test needs a concurrency of at least 1 (-c 1 or more)")
        # more in flight than there are requests would only open idle connections
        object.__setattr__(self, "concurrency", min(self.concurrency, self.requests))


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestOutcome:
    """What one chat request measured; `failure` is None when it succeeded.

    Times are ms from the moment the request was handed to the client: `latency_ms` to the
    last byte of the answer (or to the failure), `first_token_ms` to the first chunk with
    generated text (streamed requests only).
    """

    index: int
    latency_ms: float
    first_token_ms: float | None = None
    tokens: int | None = None
    tokens_source: TokenSource | None = None
    status_code: int | None = None
    failure: Finding | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def tokens_per_s(self) -> float | None:
        """Generated tokens over the whole request as the client saw it (queueing included)."""
        if not self.tokens or self.latency_ms <= 0:
            return None
        return self.tokens / (self.latency_ms / 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadRun:
    """A finished load test: its settings, every request's outcome, and who answered."""

    settings: LoadSettings
    started_at: str  # ISO 8601, UTC
    wall_ms: float  # from the first request sent to the last one finished
    outcomes: tuple[RequestOutcome, ...]
    # the server said it is the ollama-fleet simulator (its /api/version or its X- header)
    simulator: bool = False
    server_version: str | None = None
