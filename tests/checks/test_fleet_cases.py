"""Every failure class the issue lists, against real Caddy in front of the simulator.

One fleet, one check run (as an operator would run it over an inventory); each case then
asserts the status and class its check must report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_fleet.checks.model import CheckResult, CheckRun, FailureClass, Status
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.settings import ProbeSettings
from ollama_fleet.checks.targets import targets_from_inventory
from ollama_fleet.inventory import load_inventory
from ollama_fleet.simulator import Faults
from ollama_fleet.testbed.fleet import LocalFleet, SiteSpec
from ollama_fleet.testbed.servers import free_port

pytestmark = pytest.mark.integration

MODELS = ["llama3.2:1b"]
KEY = "test-key-not-a-secret"
CLOSED = free_port()  # nothing listens here

SPECS = [
    SiteSpec(name="healthy"),
    SiteSpec(name="expired", cert="expired"),
    SiteSpec(name="not-yet-valid", cert="not_yet_valid"),
    SiteSpec(name="wrong-name", cert="wrong_name"),
    SiteSpec(name="untrusted", cert="untrusted"),
    SiteSpec(name="expiring", cert="expiring"),
    SiteSpec(name="no-hsts", hsts=False),
    SiteSpec(
        name="no-redirect",
        redirect=False,
        host_vars={"http_url": f"http://localhost:{CLOSED}/"},
    ),
    SiteSpec(name="unauthorized", faults=Faults(status=401)),
    SiteSpec(name="chat-404", faults=Faults(status=404, paths=("/api/chat",))),
    SiteSpec(name="model-missing", host_vars={"required_models": ["llama3.1:70b"]}),
    SiteSpec(name="digest-pinned", host_vars={"required_models": [
        {"name": "llama3.2:1b", "digest": "sha256:0000"}]}),
    SiteSpec(name="too-many", faults=Faults(status=429)),
    SiteSpec(name="busy", faults=Faults(status=503)),
    SiteSpec(name="broken", faults=Faults(status=500, paths=("/api/chat",))),
    SiteSpec(name="slow", faults=Faults(latency_ms=4000, paths=("/api/chat",))),
    SiteSpec(name="malformed", faults=Faults(malformed=True, paths=("/api/tags",))),
    SiteSpec(name="cut-stream", faults=Faults(cut_stream_after=1, paths=("/api/chat",))),
    SiteSpec(name="stream-error", faults=Faults(stream_error="CUDA error: out of memory",
                                                paths=("/api/chat",))),
    SiteSpec(name="open-gateway", host_vars={"auth_required": True}),
    SiteSpec(name="keyed", api_key=KEY, host_vars={"auth_required": True, "api_key": KEY}),
]  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with LocalFleet(tmp_path_factory.mktemp("fleet"), SPECS) as running:
        yield running


@pytest.fixture(scope="module")
def run(fleet: LocalFleet, tmp_path_factory: pytest.TempPathFactory) -> CheckRun:
    path = fleet.write_inventory(
        tmp_path_factory.mktemp("inv") / "fleet.yml", required_models=MODELS
    )
    settings = ProbeSettings(read_timeout_s=2.5, check_timeout_s=10, port_timeout_s=0.5)
    return asyncio.run(run_checks(targets_from_inventory(load_inventory(path)), settings=settings))


def result(run: CheckRun, target: str, check: str) -> CheckResult:
    matches = [r for r in run.results if r.target == target and r.check == check]
    assert len(matches) == 1, f"{target}/{check} ran {len(matches)} times"
    return matches[0]


def test_healthy_host_passes_every_check(run: CheckRun) -> None:
    checks = {r.check: r for r in run.results if r.target == "healthy"}
    assert set(checks) == {"connectivity", "tls", "models", "chat"}
    assert {c: r.status for c, r in checks.items()} == dict.fromkeys(checks, Status.OK)
    assert checks["connectivity"].details["version"]
    assert checks["tls"].details["alpn"] == "h2"
    assert checks["tls"].details["protocol"] == "TLSv1.3"
    assert checks["chat"].details["tokens_per_second"] > 0
    assert checks["models"].details["present"]


@pytest.mark.parametrize(
    ("target", "check", "status", "failure_class"),
    [
        ("expired", "tls", Status.FAIL, FailureClass.TLS_EXPIRED),
        ("expired", "connectivity", Status.FAIL, FailureClass.TLS_EXPIRED),
        ("not-yet-valid", "tls", Status.FAIL, FailureClass.TLS_EXPIRED),
        ("wrong-name", "tls", Status.FAIL, FailureClass.TLS_HOSTNAME),
        ("untrusted", "tls", Status.FAIL, FailureClass.TLS_UNTRUSTED),
        ("untrusted", "models", Status.FAIL, FailureClass.TLS_UNTRUSTED),
        ("expiring", "tls", Status.WARN, FailureClass.TLS_EXPIRED),
        ("no-hsts", "tls", Status.WARN, FailureClass.TLS_PROTOCOL),
        ("no-redirect", "tls", Status.WARN, FailureClass.TLS_PROTOCOL),
        ("unauthorized", "connectivity", Status.FAIL, FailureClass.AUTH),
        ("chat-404", "chat", Status.FAIL, FailureClass.MODEL_MISSING),
        ("model-missing", "models", Status.FAIL, FailureClass.MODEL_MISSING),
        ("digest-pinned", "models", Status.FAIL, FailureClass.MODEL_MISSING),
        ("too-many", "connectivity", Status.FAIL, FailureClass.OVERLOAD),
        ("busy", "models", Status.FAIL, FailureClass.OVERLOAD),
        ("broken", "chat", Status.FAIL, FailureClass.SERVER_ERROR),
        ("slow", "chat", Status.FAIL, FailureClass.READ_TIMEOUT),
        ("malformed", "models", Status.FAIL, FailureClass.BAD_RESPONSE),
        ("cut-stream", "chat", Status.FAIL, FailureClass.BAD_RESPONSE),
        ("stream-error", "chat", Status.FAIL, FailureClass.SERVER_ERROR),
        ("open-gateway", "auth", Status.FAIL, FailureClass.AUTH),
    ],
)
def test_each_case_gets_its_status_and_class(
    run: CheckRun, target: str, check: str, status: Status, failure_class: FailureClass
) -> None:
    found = result(run, target, check)
    assert (found.status, found.failure_class) == (status, failure_class), found.findings
    assert found.hint


def test_faults_stay_on_their_own_paths(run: CheckRun) -> None:
    # chat-404 and stream faults touch /api/chat only: the host is otherwise fine
    for target in ("chat-404", "cut-stream", "stream-error", "slow"):
        assert result(run, target, "connectivity").status is Status.OK
        assert result(run, target, "models").status is Status.OK


def test_expiring_certificate_reports_days_left(run: CheckRun) -> None:
    tls = result(run, "expiring", "tls")
    assert 4 < tls.details["certificate"]["days_left"] <= 5
    assert "expires in" in tls.summary


def test_key_required_and_accepted(run: CheckRun) -> None:
    auth = result(run, "keyed", "auth")
    assert auth.status is Status.OK
    assert [f.message for f in auth.findings] == [
        "without a key: 401, as required",
        "with the key: 200",
    ]
    assert result(run, "keyed", "models").status is Status.OK


def test_secrets_do_not_reach_results(run: CheckRun) -> None:
    for found in run.results:
        assert KEY not in repr(found)


def test_stream_error_text_is_reported(run: CheckRun) -> None:
    assert "CUDA error: out of memory" in result(run, "stream-error", "chat").summary


def test_exposure_of_open_and_closed_ports(fleet: LocalFleet, tmp_path: Path) -> None:
    healthy = fleet.sites["healthy"]
    inventory = tmp_path / "ports.yml"
    inventory.write_text(
        "all:\n  hosts:\n    h:\n"
        f"      public_url: {healthy.url}\n"
        f"      closed_ports: [{CLOSED}, {healthy.simulator_port}]\n"
        f"      open_ports: [{healthy.https_port}, {free_port()}]\n"
    )
    targets = targets_from_inventory(load_inventory(inventory))
    run = asyncio.run(run_checks(targets, only=["exposure"]))
    (exposure,) = run.results
    assert exposure.status is Status.FAIL
    by_message = {f.message: f for f in exposure.findings}
    assert by_message[f"port {healthy.simulator_port} accepts connections"].failure_class is (
        FailureClass.EXPOSED
    )
    assert by_message[f"port {CLOSED} closed (refused)"].status is Status.OK
    assert by_message[f"port {healthy.https_port} open"].status is Status.OK
    refused = [f for f in exposure.findings if f.failure_class is FailureClass.REFUSED]
    assert len(refused) == 1


def test_refused_target(tmp_path: Path) -> None:
    inventory = tmp_path / "down.yml"
    inventory.write_text(
        f"all:\n  hosts:\n    down:\n      public_url: https://127.0.0.1:{CLOSED}\n"
    )
    run = asyncio.run(run_checks(targets_from_inventory(load_inventory(inventory))))
    assert {r.check: (r.status, r.failure_class) for r in run.results} == {
        "connectivity": (Status.FAIL, FailureClass.REFUSED),
        "tls": (Status.FAIL, FailureClass.REFUSED),
        "models": (Status.FAIL, FailureClass.REFUSED),
        "exposure": (Status.OK, None),
    }
