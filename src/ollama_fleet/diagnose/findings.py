"""Findings and the whole diagnosis: what is wrong, the evidence, the likely cause, the fix."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from ollama_fleet.checks.model import CheckResult, RunContext
from ollama_fleet.diagnose.facts import HostFacts


class Severity(enum.StrEnum):
    """Ordered: info < warning < critical. Only info leaves the exit status at 0."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Where(enum.StrEnum):
    """Where a fix command runs."""

    CONTROLLER = "controller"  # here, where ollama-fleet runs
    HOST = "host"  # on the diagnosed host, as root


@dataclass(frozen=True, slots=True, kw_only=True)
class Fix:
    command: str
    where: Where
    note: str = ""  # what else to know (a reboot follows, run it after the other fix, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem on one host, in the operator's words."""

    rule: str  # the rule's id, as docs/diagnose.md lists it
    host: str
    severity: Severity
    title: str  # one line, specific to this host
    cause: str  # the likely cause
    evidence: tuple[str, ...]  # the facts that show it, each "source: what it said"
    fix: Fix | None = None  # None where no one command fixes it; the cause says what to do


@dataclass(frozen=True, slots=True, kw_only=True)
class HostReport:
    """One host's diagnosis: the outside checks, the inside facts, the findings."""

    name: str
    url: str | None  # its public_url (None: not checked from outside)
    inside: bool  # whether its facts were asked for (False with --url)
    facts: HostFacts | None  # None: not asked, or the host could not be reached
    unreachable: str | None = None  # why SSH did not get in, in one line
    checks: tuple[CheckResult, ...] = ()
    findings: tuple[Finding, ...] = ()

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnosis:
    hosts: tuple[HostReport, ...]
    started_at: str  # ISO 8601, UTC
    duration_ms: float
    context: RunContext = field(default_factory=RunContext)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for h in self.hosts for f in h.findings)

    @property
    def worst(self) -> Severity | None:
        return worst(self.findings)

    @property
    def problems(self) -> bool:
        """A finding above info: the exit status is 1."""
        found = self.worst
        return found is not None and found.rank > Severity.INFO.rank


def worst(findings: Iterable[Finding]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)


def ordered(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Worst first; within a severity, by host and rule, so reports read the same each run."""
    return tuple(sorted(findings, key=lambda f: (-f.severity.rank, f.host, f.rule)))
