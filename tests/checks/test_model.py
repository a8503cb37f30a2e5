"""The records' own rules (checks/model.py) that the CLI and reports build on."""

from __future__ import annotations

from ollama_fleet.checks.model import CheckResult, FailureClass, fail, ok, unreachable_targets


def result(target: str, check: str, finding_class: FailureClass | None) -> CheckResult:
    finding = ok("fine") if finding_class is None else fail(finding_class, "broken")
    return CheckResult(target=target, url="", check=check, findings=(finding,), elapsed_ms=1.0)


def test_unreachable_targets_are_those_whose_requests_never_connected() -> None:
    results = [
        result("gone", "connectivity", FailureClass.REFUSED),
        result("gone", "models", FailureClass.REFUSED),
        result("nameless", "models", FailureClass.DNS),
        result("dropped", "chat", FailureClass.CONNECT_TIMEOUT),
        result("slow", "chat", FailureClass.READ_TIMEOUT),  # it connected
        result("no-tls", "tls", FailureClass.TLS_TIMEOUT),  # TCP got through
        # a port that must be open and refuses is an exposure finding, the host answers
        result("firewalled", "exposure", FailureClass.REFUSED),
        result("fine", "connectivity", None),
    ]

    assert unreachable_targets(results) == ("dropped", "gone", "nameless")
