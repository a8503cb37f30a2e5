"""The outside checks no other rule explained, each as a finding with the check's own hint."""

from __future__ import annotations

from collections.abc import Iterator

from ollama_fleet.checks.model import Status
from ollama_fleet.diagnose.case import Case
from ollama_fleet.diagnose.findings import Severity
from ollama_fleet.diagnose.rules.base import Hit


def outside_checks(case: Case) -> Iterator[Hit]:
    for result in case.failed_checks():
        yield Hit(
            title=f"{result.check} check: {result.summary}",
            cause=result.hint or "see the check's details",
            evidence=tuple(
                f"outside: {result.check}: {f.message}"
                for f in result.findings
                if f.status is not Status.OK
            ),
            severity=Severity.CRITICAL if result.status is Status.FAIL else Severity.WARNING,
            explains=(result.check,),
        )
