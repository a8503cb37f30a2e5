"""What a rule is: an id, a default severity, the checks it explains, and a pure function."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ollama_fleet.diagnose.case import Case
from ollama_fleet.diagnose.findings import Fix, Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """A rule's observation on one host, before it becomes a Finding."""

    title: str
    cause: str
    evidence: tuple[str, ...]
    fix: Fix | None = None
    severity: Severity | None = None  # the rule's own when None
    # outside checks this hit accounts for: they are not reported again on their own
    explains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    id: str
    severity: Severity
    summary: str  # one line for docs/diagnose.md: what it finds
    check: Callable[[Case], Iterable[Hit]]
