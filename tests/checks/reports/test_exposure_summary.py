"""The exposure summary: every port with its state and the verdict the probe gave it."""

from __future__ import annotations

from typing import Any

from ollama_fleet.checks.model import CheckResult, FailureClass, Finding, fail, ok
from ollama_fleet.checks.reports._exposure import exposure_ports


def _exposure(findings: tuple[Finding, ...], **details: Any) -> CheckResult:
    return CheckResult(
        target="gpu-1",
        url="https://gpu-1.example.com",
        check="exposure",
        findings=findings,
        elapsed_ms=3.0,
        details=details,
    )


def _rows(result: CheckResult) -> list[tuple[str, str, str | None]]:
    return [(p.port, p.state, p.status) for p in exposure_ports(result)]


def test_every_port_in_port_order_with_its_verdict() -> None:
    # the probe's own findings and details (probes/exposure.py)
    result = _exposure(
        (
            fail(FailureClass.EXPOSED, "port 11434 accepts connections"),
            ok("port 9090 closed (refused)"),
            fail(FailureClass.REFUSED, "port 443 refuses connections"),
            ok("port 22 open"),
            fail(FailureClass.CONNECT_TIMEOUT, "port 8443: connect timed out"),
        ),
        host="gpu-1.example.com",
        ports={
            "11434": "open",
            "9090": "refused",
            "443": "refused",
            "22": "open",
            "8443": "timeout",
        },
    )
    assert _rows(result) == [
        ("22", "open", "ok"),
        ("443", "refused", "fail"),
        ("8443", "timeout", "fail"),
        ("9090", "refused", "ok"),
        ("11434", "open", "fail"),
    ]
    meanings = {p.port: p.meaning for p in exposure_ports(result)}
    assert meanings["9090"] == "closed: nothing listens"
    assert meanings["8443"] == "no answer (filtered)"


def test_a_name_that_does_not_resolve_fails_every_port() -> None:
    result = _exposure(
        (fail(FailureClass.DNS, "gpu-1.example.com does not resolve"),),
        ports={"11434": "dns", "443": "dns"},
    )
    assert _rows(result) == [("443", "dns", "fail"), ("11434", "dns", "fail")]


def test_a_port_no_finding_judged_has_no_verdict() -> None:
    result = _exposure((ok("port 11434 closed (refused)"),), ports={"11434": "refused", 80: "open"})
    assert _rows(result) == [("80", "open", None), ("11434", "refused", "ok")]


def test_no_ports_recorded_gives_no_rows() -> None:
    assert exposure_ports(_exposure((ok("fine"),))) == ()
    assert exposure_ports(_exposure((ok("fine"),), ports=["11434"])) == ()
