"""The access log: one JSON line per request on the logger `ollama_fleet.gateway.access`.

A line names the key (its name, never the key), the model, the node and the numbers of the
answer; it never holds the prompt, the answer or any header. Operators route the logger
where they like (journald by default: the service logs to stderr).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ollama_fleet.gateway.proxy import Outcome

ACCESS_LOGGER = "ollama_fleet.gateway.access"

log = logging.getLogger(ACCESS_LOGGER)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessRecord:
    """What the access log says about one request."""

    ts: float  # wall-clock arrival time (seconds since the epoch)
    method: str
    path: str
    status: int
    key: str | None  # the key's name; None before authentication
    model: str | None
    node: str | None
    duration_ms: float
    ttfb_ms: float | None
    tokens_in: int | None
    tokens_out: int | None
    outcome: str  # the relay's kind ("ok", "client_cancel", ...) or why the gateway refused
    bytes: int


_FIELDS = tuple(f.name for f in fields(AccessRecord))


def format_record(record: AccessRecord) -> str:
    """The record as one JSON line (ts as RFC 3339 UTC, times rounded to 0.1 ms)."""
    # the fields by hand: dataclasses.asdict deep-copies, a cost on every request
    data = {name: getattr(record, name) for name in _FIELDS}
    data["ts"] = datetime.fromtimestamp(record.ts, UTC).isoformat(timespec="milliseconds")
    data["ts"] = data["ts"].replace("+00:00", "Z")
    data["duration_ms"] = round(record.duration_ms, 1)
    if record.ttfb_ms is not None:
        data["ttfb_ms"] = round(record.ttfb_ms, 1)
    return json.dumps(data, separators=(",", ":"))


def write(record: AccessRecord) -> None:
    """Log one request at INFO (skipped cheaply when the logger is off)."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s", format_record(record))


class Exchange:
    """What is known of one request as it goes (mutable), made into an AccessRecord at the end."""

    __slots__ = (
        "added_latency_s",
        "arrived",
        "bytes",
        "key",
        "method",
        "model",
        "node",
        "outcome",
        "path",
        "status",
        "tokens_in",
        "tokens_out",
        "ts",
        "ttfb_s",
    )

    def __init__(self, *, arrived: float, ts: float, method: str, path: str) -> None:
        self.arrived, self.ts, self.method, self.path = arrived, ts, method, path
        self.key: str | None = None
        self.model: str | None = None
        self.node: str | None = None
        self.status = 0
        self.outcome = "ok"
        self.bytes = 0
        self.ttfb_s: float | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.added_latency_s: float | None = None

    def answered(self, status: int, size: int) -> None:
        """The gateway answered by itself (status and body size)."""
        self.status, self.bytes = status, size

    def relayed(self, outcome: Outcome, *, waited_s: float) -> None:
        """The relay answered; `waited_s` is the gateway's time before it started."""
        self.status, self.outcome, self.node = outcome.status, outcome.kind, outcome.node
        self.bytes, self.tokens_in, self.tokens_out = (
            outcome.bytes_out,
            outcome.tokens_in,
            outcome.tokens_out,
        )
        if outcome.ttfb_s is not None:
            self.ttfb_s = waited_s + outcome.ttfb_s

    def record(self, *, duration_s: float) -> AccessRecord:
        return AccessRecord(
            ts=self.ts,
            method=self.method,
            path=self.path,
            status=self.status,
            key=self.key,
            model=self.model,
            node=self.node,
            duration_ms=duration_s * 1000,
            ttfb_ms=None if self.ttfb_s is None else self.ttfb_s * 1000,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            outcome=self.outcome,
            bytes=self.bytes,
        )
