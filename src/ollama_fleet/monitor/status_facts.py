"""What the status page, the JSON API and the badges derive alike from a snapshot.

One place for the few judgements they share (the overall status, a target's uptime, which
models are missing, whether a target is the simulator), so the three never disagree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit, urlunsplit

from ollama_fleet.checks.model import Status
from ollama_fleet.values import canonical_model_name

from .model import UPTIME_WINDOWS, OpenAlert, Severity, StatusSnapshot, TargetView

# the status word of a target or check that has not run yet
PENDING = "pending"
WINDOW_NAMES: tuple[str, ...] = tuple(name for name, _ in UPTIME_WINDOWS)
SIMULATOR_SUFFIX = "-simulator"

# Characters XML 1.0 cannot carry at all, and C1 controls (terminal escapes and the like):
# a check's summary can quote whatever a server sent.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """How many targets are in each status; `pending` ones have not been checked yet."""

    targets: int
    ok: int
    warn: int
    fail: int
    pending: int


def printable(text: str) -> str:
    """`text` with the characters no page or SVG may carry replaced by U+FFFD."""
    return _UNPRINTABLE.sub("\ufffd", text)


def markup(text: str) -> str:
    """`text` safe inside HTML and XML, in element content and in quoted attributes alike."""
    return escape(printable(text), quote=True)


def status_word(status: Status | None) -> str:
    """ok / warn / fail, or pending for not run yet."""
    return PENDING if status is None else status.value


def count_targets(snapshot: StatusSnapshot) -> Counts:
    statuses = [t.status for t in snapshot.targets]
    return Counts(
        targets=len(statuses),
        ok=statuses.count(Status.OK),
        warn=statuses.count(Status.WARN),
        fail=statuses.count(Status.FAIL),
        pending=statuses.count(None),
    )


def overall_status(snapshot: StatusSnapshot) -> Status | None:
    """The worst status of the targets; None where no target has been checked yet."""
    statuses = [t.status for t in snapshot.targets if t.status is not None]
    return max(statuses, key=lambda s: s.rank, default=None)


def alert_order(alert: OpenAlert) -> tuple[int, float]:
    """Sort key of open alerts: critical before warning, then the oldest first."""
    return (0 if alert.severity is Severity.CRITICAL else 1), alert.since


def find_target(snapshot: StatusSnapshot, name: str) -> TargetView | None:
    return next((t for t in snapshot.targets if t.name == name), None)


def target_uptime(target: TargetView, window: str) -> float | None:
    """The uptime of the target's least available check over `window`; None without data.

    The worst check, not an average: a host whose chat fails all day is not 83 % up because
    its other five checks pass.
    """
    ratios = [r for c in target.checks if (r := c.uptime.get(window)) is not None]
    return min(ratios, default=None)


def is_simulated(snapshot: StatusSnapshot, target: TargetView) -> bool:
    """Whether the target is the Ollama API simulator rather than a real Ollama."""
    version = target.version or ""
    return target.name in snapshot.simulated or version.endswith(SIMULATOR_SUFFIX)


def models_known(target: TargetView) -> bool:
    """Whether the target's models have been looked at (the models check ran, or some seen)."""
    ran = any(c.check == "models" and c.status is not None for c in target.checks)
    return ran or bool(target.models_present)


def missing_models(target: TargetView) -> tuple[str, ...]:
    """The required models the target does not have, compared the way Ollama names them.

    Empty until `models_known`: before the first look, nothing is known to be missing.
    """
    if not models_known(target):
        return ()
    present = {canonical_model_name(name) for name in target.models_present}
    return tuple(m for m in target.models_required if canonical_model_name(m) not in present)


def display_url(url: str) -> str:
    """The URL without user:password@ and without a query (where keys like to hide)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def iso_utc(at: float) -> str:
    """Unix seconds as ISO 8601 in UTC, to the second: 2025-01-01T12:00:00Z."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uptime_percent(ratio: float) -> str:
    """A ratio as a percentage, rounded down (99.999 % is not 100 %): 100%, 99.95%, 0%."""
    if not math.isfinite(ratio):
        return "0%"
    hundredths = math.floor(max(0.0, min(1.0, ratio)) * 10000 + 1e-6)
    text = f"{hundredths / 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"
