"""Every string of a diagnosis goes through the redactor; enums and numbers stay as they are."""

from __future__ import annotations

import dataclasses

from ollama_fleet.checks.model import FailureClass, Status
from ollama_fleet.diagnose.findings import Diagnosis, HostReport, Severity
from ollama_fleet.diagnose.redaction import redact_records
from ollama_fleet.diagnose.rules import evaluate

from . import samples as s

SECRET = "sk-live-0123456789"


def test_secrets_anywhere_in_the_records_are_replaced_and_the_types_kept() -> None:
    facts = s.with_unit(
        s.healthy(),
        "ollama.service",
        active_state="failed",
        environment={"OLLAMA_ORIGINS": SECRET},
        journal=(f"ollama[1]: bad key {SECRET}",),
        errors=(f"ollama[1]: bad key {SECRET}",),
    )
    leaked = s.failed("chat", FailureClass.AUTH, f"chat: HTTP 401 ({SECRET} is not valid)")
    case = s.case(facts, checks=s.replace_checks(leaked))
    report = HostReport(
        name=s.HOST,
        url="https://gpu-1.example.com",
        inside=True,
        facts=facts,
        checks=case.checks,
        findings=evaluate(case),
    )
    diagnosis = Diagnosis(hosts=(report,), started_at="2026-12-01T12:00:00Z", duration_ms=5.0)
    assert SECRET in repr(diagnosis)

    clean = redact_records(diagnosis, lambda text: text.replace(SECRET, "***"))

    assert SECRET not in repr(clean)
    host = clean.hosts[0]
    assert host.findings[0].severity is Severity.CRITICAL
    assert {c.status for c in host.checks} == {Status.OK, Status.FAIL}
    assert host.facts is not None and host.facts.units["ollama.service"].restarts == 0
    assert dataclasses.replace(clean) == clean  # still frozen records of the same kinds
