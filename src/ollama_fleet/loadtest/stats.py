"""The maths of a load test's report: nearest-rank percentiles and the run's summary (pure).

Percentiles use the nearest-rank method: the p-th percentile of n sorted values is the value
at rank ceil(p/100 * n) (1-based; rank 1 for p = 0). It is always a value that was measured,
never an interpolation, so "p99 latency 812 ms" means one request really took 812 ms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ollama_fleet.checks.model import HINTS, UNREACHABLE_CLASSES, FailureClass
from ollama_fleet.loadtest.model import LoadRun, RequestOutcome

__all__ = [
    "Distribution",
    "ErrorGroup",
    "LoadSummary",
    "distribution",
    "error_groups",
    "percentile",
    "summarize",
]


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank p-th percentile (0 <= p <= 100) of `values`; ValueError if empty."""
    if not values:
        raise ValueError("no values to take a percentile of")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is outside 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    """Count, mean and percentiles of measured values; all None when nothing was measured."""

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None


def distribution(values: Iterable[float]) -> Distribution:
    """The Distribution of `values` (non-finite values dropped: they were never measured)."""
    measured = [v for v in values if math.isfinite(v)]
    if not measured:
        return Distribution()
    return Distribution(
        count=len(measured),
        mean=sum(measured) / len(measured),
        p50=percentile(measured, 50),
        p95=percentile(measured, 95),
        p99=percentile(measured, 99),
        max=max(measured),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorGroup:
    """The failed requests of one failure class: how many, the first message, the hint."""

    failure_class: FailureClass
    count: int
    example: str
    hint: str


def error_groups(outcomes: Iterable[RequestOutcome]) -> tuple[ErrorGroup, ...]:
    """Failures grouped by class, the most frequent first (ties by class name)."""
    counts: dict[FailureClass, int] = {}
    first: dict[FailureClass, tuple[str, str]] = {}
    for outcome in outcomes:
        failure = outcome.failure
        if failure is None:
            continue
        klass = failure.failure_class or FailureClass.BAD_RESPONSE
        counts[klass] = counts.get(klass, 0) + 1
        first.setdefault(klass, (failure.message, failure.hint or HINTS[klass]))
    return tuple(
        ErrorGroup(failure_class=k, count=n, example=first[k][0], hint=first[k][1])
        for k, n in sorted(counts.items(), key=lambda item: (-item[1], item[0].value))
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadSummary:
    """What the reports show. Times and rates are over the successful requests only.

    `total_tokens_per_s` is every token of the successful requests over the wall time;
    `throughput_rps` the successful requests over the wall time.
    """

    requests: int
    ok: int
    failed: int
    wall_ms: float
    latency_ms: Distribution
    first_token_ms: Distribution
    tokens_per_s: Distribution  # per request
    total_tokens: int
    total_tokens_per_s: float | None
    throughput_rps: float | None
    errors: tuple[ErrorGroup, ...]

    @property
    def unreachable(self) -> bool:
        """No request got a connection at all: every one failed by dns, refused, timeout."""
        return self.ok == 0 and all(e.failure_class in UNREACHABLE_CLASSES for e in self.errors)


def _per_second(amount: float, wall_ms: float) -> float | None:
    return amount / (wall_ms / 1000) if wall_ms > 0 else None


def summarize(run: LoadRun) -> LoadSummary:
    """The summary of a finished load test."""
    good = [o for o in run.outcomes if o.ok]
    total_tokens = sum(o.tokens or 0 for o in good)
    return LoadSummary(
        requests=len(run.outcomes),
        ok=len(good),
        failed=len(run.outcomes) - len(good),
        wall_ms=run.wall_ms,
        latency_ms=distribution(o.latency_ms for o in good),
        first_token_ms=distribution(o.first_token_ms for o in good if o.first_token_ms is not None),
        tokens_per_s=distribution(o.tokens_per_s for o in good if o.tokens_per_s is not None),
        total_tokens=total_tokens,
        total_tokens_per_s=_per_second(total_tokens, run.wall_ms) if total_tokens else None,
        throughput_rps=_per_second(len(good), run.wall_ms) if good else None,
        errors=error_groups(run.outcomes),
    )
