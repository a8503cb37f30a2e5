"""GCRA (the generic cell rate algorithm): one rate limit as pure arithmetic on one float.

The state is the theoretical arrival time (TAT): when the bucket would be full again if nothing
else came. A cost of c units moves it c emission intervals forward; a request passes while the TAT
stays within the burst tolerance of now. A fresh bucket has any TAT at or before now (e.g. 0.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# float sums of many small emission intervals drift; this much slack (in units) absorbs it
_SLACK_UNITS = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class GcraDecision:
    """One decision; `new_tat` is the state to keep (unchanged when refused).

    `retry_after_s` is None when allowed, and also when refused because the cost alone exceeds
    the burst (waiting can never help): check `too_large`.
    """

    allowed: bool
    new_tat: float
    retry_after_s: float | None
    remaining: int  # units that could go now (after this request, if allowed)
    reset_s: float  # seconds until the bucket is full again
    too_large: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Gcra:
    """A limit of `rate_per_s` units per second, of which `burst` may go at once."""

    rate_per_s: float
    burst: float

    @classmethod
    def per_minute(cls, limit: int) -> Gcra:
        """`limit` units a minute, a full minute's worth at once, then paced."""
        return cls(rate_per_s=limit / 60.0, burst=float(limit))

    @property
    def interval_s(self) -> float:
        """The emission interval: seconds one unit takes to come back."""
        return 1.0 / self.rate_per_s

    def decide(self, state_tat: float, *, now: float, cost: float) -> GcraDecision:
        """Whether `cost` units may go at `now`, given the bucket's TAT."""
        interval = self.interval_s
        tolerance = self.burst * interval
        base = max(state_tat, now)
        if cost > self.burst + _SLACK_UNITS:
            return GcraDecision(
                allowed=False,
                new_tat=state_tat,
                retry_after_s=None,
                remaining=self._remaining(base, now),
                reset_s=base - now,
                too_large=True,
            )
        new_tat = base + cost * interval
        excess = new_tat - now - tolerance
        if excess > _SLACK_UNITS * interval:
            return GcraDecision(
                allowed=False,
                new_tat=state_tat,
                retry_after_s=excess,
                remaining=self._remaining(base, now),
                reset_s=base - now,
            )
        return GcraDecision(
            allowed=True,
            new_tat=new_tat,
            retry_after_s=None,
            remaining=self._remaining(new_tat, now),
            reset_s=new_tat - now,
        )

    def adjust(self, tat: float, delta_cost: float, *, now: float) -> float:
        """The TAT after charging `delta_cost` more units (negative: a refund, never below now)."""
        return max(max(tat, now) + delta_cost * self.interval_s, now)

    def peek(self, tat: float, *, now: float) -> tuple[int, float]:
        """(remaining units, seconds until full) without charging anything."""
        base = max(tat, now)
        return self._remaining(base, now), base - now

    def _remaining(self, tat: float, now: float) -> int:
        used = (tat - now) / self.interval_s
        return max(0, math.floor(self.burst - used + _SLACK_UNITS))
