"""A per-node circuit breaker as pure functions on a frozen state.

closed -> (`failures` in a row) open -> (after `cooldown_s`) half-open: one probe goes through,
others are refused -> the probe's success closes it, its failure opens it again for a fresh
cooldown. A probe that never reports (its client went away: cancellations are not reported)
is replaced by a new probe once another cooldown has passed, so the node is never stuck.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from ollama_fleet.gateway.settings import Breaker


class Circuit(enum.Enum):
    """The breaker's position; the values are what admin and metrics show."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerState:
    """One node's breaker; `opened_at` is when it opened or when the current probe started."""

    circuit: Circuit = Circuit.CLOSED
    failures: int = 0  # in a row
    opened_at: float | None = None
    probing: bool = False


CLOSED = BreakerState()


def allow(state: BreakerState, *, now: float, cfg: Breaker) -> tuple[bool, BreakerState]:
    """Whether a request may go to the node now, and the state to keep."""
    if state.circuit is Circuit.CLOSED:
        return True, state
    waited = now - (state.opened_at if state.opened_at is not None else now)
    if waited < cfg.cooldown_s:
        return False, state
    probe = dataclasses.replace(state, circuit=Circuit.HALF_OPEN, opened_at=now, probing=True)
    return True, probe


def on_success(state: BreakerState) -> BreakerState:
    """A request to the node succeeded: the breaker closes and the count starts again."""
    del state  # every success closes, whatever the state was
    return CLOSED


def on_failure(state: BreakerState, *, now: float, cfg: Breaker) -> BreakerState:
    """A request to the node failed (connect error, timeout, 5xx): count it, open if due."""
    failures = state.failures + 1
    if state.circuit is Circuit.HALF_OPEN:
        return BreakerState(circuit=Circuit.OPEN, failures=failures, opened_at=now)
    if state.circuit is Circuit.OPEN:
        # a request admitted before the breaker opened: the cooldown already runs
        return dataclasses.replace(state, failures=failures)
    if failures >= cfg.failures:
        return BreakerState(circuit=Circuit.OPEN, failures=failures, opened_at=now)
    return dataclasses.replace(state, failures=failures)
