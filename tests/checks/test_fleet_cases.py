"""Every failure class the issue lists, against real Caddy in front of the simulator.

One fleet, one check run (as an operator would run it over an inventory); each case then
asserts the status and class its check must report. None of the sites has a key but
"keyed", so every case about something else declares `public_access: open`; the testbed's
Caddy refuses Ollama's write endpoints with 403, as the deploy's does, except "writes-passed".
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ollama_fleet.checks.classify import WRITE_ENDPOINT_HINT
from ollama_fleet.checks.model import (
    CheckResult,
    CheckRun,
    FailureClass,
    Status,
    Target,
    TlsPolicy,
)
from ollama_fleet.checks.probes.auth import WRITE_PROBES
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
OPEN = {"public_access": "open"}  # the case is about something else than keys

SPECS = [
    SiteSpec(name="healthy", host_vars=OPEN),
    SiteSpec(name="expired", cert="expired", host_vars=OPEN),
    SiteSpec(name="not-yet-valid", cert="not_yet_valid", host_vars=OPEN),
    SiteSpec(name="wrong-name", cert="wrong_name", host_vars=OPEN),
    SiteSpec(name="untrusted", cert="untrusted", host_vars=OPEN),
    SiteSpec(name="expiring", cert="expiring", host_vars=OPEN),
    SiteSpec(name="no-hsts", hsts=False, host_vars=OPEN),
    SiteSpec(
        name="no-redirect",
        redirect=False,
        host_vars={**OPEN, "http_url": f"http://localhost:{CLOSED}/"},
    ),
    SiteSpec(name="unauthorized", faults=Faults(status=401), host_vars=OPEN),
    SiteSpec(name="chat-404", faults=Faults(status=404, paths=("/api/chat",)), host_vars=OPEN),
    SiteSpec(name="model-missing", host_vars={**OPEN, "required_models": ["llama3.1:70b"]}),
    SiteSpec(name="digest-pinned", host_vars={**OPEN, "required_models": [
        {"name": "llama3.2:1b", "digest": "sha256:0000"}]}),
    SiteSpec(name="too-many", faults=Faults(status=429), host_vars=OPEN),
    SiteSpec(name="busy", faults=Faults(status=503), host_vars=OPEN),
    SiteSpec(name="broken", faults=Faults(status=500, paths=("/api/chat",)), host_vars=OPEN),
    SiteSpec(name="slow", faults=Faults(latency_ms=4000, paths=("/api/chat",)), host_vars=OPEN),
    SiteSpec(name="malformed", faults=Faults(malformed=True, paths=("/api/tags",)),
             host_vars=OPEN),
    SiteSpec(name="cut-stream", faults=Faults(cut_stream_after=1, paths=("/api/chat",)),
             host_vars=OPEN),
    SiteSpec(name="stream-error", faults=Faults(stream_error="CUDA error: out of memory",
                                                paths=("/api/chat",)), host_vars=OPEN),
    # the auth cases: who may generate without a key, and whether the write endpoints pass
    SiteSpec(name="open-undeclared"),
    SiteSpec(name="open-gateway", host_vars={"auth_required": True}),  # the deprecated spelling
    SiteSpec(name="writes-passed", block_write_endpoints=False, host_vars=OPEN),
    SiteSpec(name="keyed", api_key=KEY, host_vars={"api_key": KEY}),
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
    assert set(checks) == {"connectivity", "tls", "models", "chat", "auth"}
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
        ("open-undeclared", "auth", Status.FAIL, FailureClass.OPEN_ACCESS),
        ("open-gateway", "auth", Status.FAIL, FailureClass.OPEN_ACCESS),
        ("writes-passed", "auth", Status.FAIL, FailureClass.EXPOSED),
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


def refusals(status: int) -> list[str]:
    return [f"{probe.label}: refused ({status})" for probe in WRITE_PROBES]


def test_key_required_and_accepted(run: CheckRun) -> None:
    auth = result(run, "keyed", "auth")
    assert auth.status is Status.OK
    assert [f.message for f in auth.findings] == [
        "without a key: 401, as required",
        "with the key: 200",
        *refusals(403),  # sent with the key: Caddy's write block answers, not the key check
    ]
    assert auth.details["anonymous_status"] == 401
    assert result(run, "keyed", "models").status is Status.OK


def test_open_access_as_declared_is_reported_not_failed(run: CheckRun) -> None:
    auth = result(run, "healthy", "auth")
    assert auth.status is Status.OK
    assert auth.failure_class is None
    assert (
        auth.summary == "open access, as declared (public_access: open): GET /api/tags answers 200"
    )
    assert [f.message for f in auth.findings[1:]] == refusals(403)
    assert auth.details == {
        "public_access": "open",
        "anonymous_status": 200,
        "write_endpoints": dict.fromkeys([p.endpoint for p in WRITE_PROBES], 403),
    }


def test_open_access_undeclared_fails_but_still_probes_the_write_endpoints(run: CheckRun) -> None:
    auth = result(run, "open-undeclared", "auth")
    assert auth.summary.startswith("open access: GET /api/tags answers 200 without a key")
    assert "public_access: open" in (auth.hint or "")
    assert [f.message for f in auth.findings[1:]] == refusals(403)


def test_write_endpoints_that_pass_the_proxy_are_exposed_each_by_name(
    run: CheckRun, fleet: LocalFleet
) -> None:
    auth = result(run, "writes-passed", "auth")
    assert auth.findings[0].status is Status.OK  # declared open: access alone is fine
    exposed = auth.findings[1:]
    assert [f.failure_class for f in exposed] == [FailureClass.EXPOSED] * len(WRITE_PROBES)
    for probe, finding in zip(WRITE_PROBES, exposed, strict=True):
        assert finding.message.startswith(f"{probe.label} is exposed: HTTP ")
        assert finding.hint == WRITE_ENDPOINT_HINT
    # what the simulator answered through Caddy: its own refusals of the empty names
    assert auth.details["write_endpoints"] == {
        "pull": 400,
        "push": 400,
        "delete": 400,
        "create": 400,
        "copy": 400,
        "blobs": 404,
    }
    assert exposed[0].message == (
        "POST /api/pull is exposed: HTTP 400 (model is required), not a refusal"
    )
    assert exposed[4].message == (
        'POST /api/copy is exposed: HTTP 400 (source "" is invalid), not a refusal'
    )
    assert exposed[5].message == ("HEAD /api/blobs/sha256:0…0 is exposed: HTTP 404, not a refusal")


def test_the_write_probes_changed_nothing(run: CheckRun, fleet: LocalFleet) -> None:
    # every site without faults shares one simulator: its models are still the ones it had
    upstream = fleet.sites["writes-passed"].simulator_port
    names = [m["name"] for m in httpx.get(f"http://127.0.0.1:{upstream}/api/tags").json()["models"]]
    assert names == [m.name for m in fleet.simulator.models]


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
        "auth": (Status.FAIL, FailureClass.REFUSED),
        "exposure": (Status.OK, None),
    }


def test_a_closed_target_checked_without_its_key(fleet: LocalFleet) -> None:
    # the operator gave no key: the 401 is what a closed endpoint owes, the models cannot be
    # listed, and the write endpoints are still refused (by Caddy's key check this time)
    keyed = fleet.sites["keyed"]
    target = Target(
        name="keyed-no-key",
        url=keyed.url,
        tls=TlsPolicy(ca_file=str(fleet.ca_file)),
        closed_ports=(),
    )
    run = asyncio.run(run_checks([target], only=["connectivity", "models", "auth"]))
    by_check = {r.check: r for r in run.results}
    assert by_check["connectivity"].status is Status.OK
    assert by_check["connectivity"].summary == "reachable; answers 401 without a key, as expected"
    assert by_check["auth"].status is Status.OK
    assert [f.message for f in by_check["auth"].findings] == [
        "without a key: 401, as required",
        *refusals(401),
    ]
    assert by_check["models"].failure_class is FailureClass.AUTH
