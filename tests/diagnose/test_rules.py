"""Every rule against fact sets: the healthy host, each fault, partial and missing facts."""
# ruff: noqa: E501  (FAULTS is a table: one fault per line reads better than wrapped)

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ollama_fleet.checks.model import FailureClass
from ollama_fleet.diagnose.case import Case
from ollama_fleet.diagnose.facts import (
    Certificate,
    Clock,
    Dns,
    Firewall,
    HostFacts,
    Listener,
    LoadedModel,
)
from ollama_fleet.diagnose.findings import Finding, Severity, Where
from ollama_fleet.diagnose.rules import RULES, evaluate

from . import samples as s

DOCS = Path(__file__).parents[2] / "docs" / "diagnose.md"
OUR_DROPIN = "/etc/systemd/system/ollama.service.d/ollama-fleet.conf"


def only(findings: tuple[Finding, ...], rule: str) -> Finding:
    hits = [f for f in findings if f.rule == rule]
    assert len(hits) == 1, [f"{f.rule}: {f.title}" for f in findings]
    return hits[0]


def test_a_healthy_host_has_no_finding() -> None:
    assert evaluate(s.case()) == ()


def test_a_healthy_lab_like_host_without_gpu_or_tools_has_no_finding() -> None:
    facts = dataclasses.replace(s.healthy(), gpu=None, caddy=None, dns=None, clock=None)
    assert evaluate(s.case(facts, expect=s.expect(gateway=False, monitor=False))) == ()


# -- each fault: (id, the case, the rule, its severity, the fix's command or None) ------------


def _stopped_ollama() -> Case:
    facts = s.with_unit(
        s.healthy(),
        "ollama.service",
        active_state="inactive",
        sub_state="dead",
        journal=("2026-12-01T11:00:00+0000 host systemd[1]: Stopped ollama.service.",),
    )
    refused = s.failed("connectivity", FailureClass.SERVER_ERROR, "HTTP 502")
    return s.case(facts, checks=s.replace_checks(refused))


def _broken_dropin() -> Case:
    line = (
        f"2026-12-01T11:00:00+0000 host systemd[1]: {OUR_DROPIN}:3: "
        "Unknown key name 'Environmen' in section 'Service', ignoring."
    )
    facts = s.with_unit(
        s.healthy(),
        "ollama.service",
        load_state="bad-setting",
        active_state="inactive",
        journal=(line,),
        errors=(line,),
    )
    return s.case(facts)


def _flushed_firewall() -> Case:
    facts = dataclasses.replace(
        s.healthy(), firewall=Firewall(tables=(), ours=False, input_drops=False, accepted_tcp=None)
    )
    return s.case(facts)


def _exposed_ollama() -> Case:
    facts = dataclasses.replace(
        s.healthy(),
        firewall=Firewall(tables=("ip filter",), ours=False, input_drops=False, accepted_tcp=None),
        listeners=(Listener(address="0.0.0.0", port=11434, process="ollama"),),
    )
    outside = s.failed("exposure", FailureClass.EXPOSED, "port 11434 accepts connections")
    return s.case(facts, checks=s.replace_checks(outside))


def _missing_model() -> Case:
    healthy = s.healthy()
    assert healthy.ollama_api is not None
    api = dataclasses.replace(healthy.ollama_api, models=("llama3.2:1b",))
    outside = s.failed(
        "chat", FailureClass.MODEL_MISSING, 'chat: HTTP 404: model "qwen2.5:0.5b" not found'
    )
    return s.case(dataclasses.replace(healthy, ollama_api=api), checks=s.replace_checks(outside))


def _caddy(**changes: object) -> Callable[[], Case]:
    def make() -> Case:
        healthy = s.healthy()
        assert healthy.caddy is not None
        return s.case(
            dataclasses.replace(healthy, caddy=dataclasses.replace(healthy.caddy, **changes))
        )

    return make


def _unit(name: str, **changes: object) -> Callable[[], Case]:
    return lambda: s.case(s.with_unit(s.healthy(), name, **changes))


def _gpu(**changes: object) -> Callable[[], Case]:
    def make() -> Case:
        healthy = s.healthy()
        assert healthy.gpu is not None
        return s.case(dataclasses.replace(healthy, gpu=dataclasses.replace(healthy.gpu, **changes)))

    return make


def _on_cpu() -> Case:
    healthy = s.healthy()
    assert healthy.ollama_api is not None and healthy.gpu is not None
    api = dataclasses.replace(
        healthy.ollama_api, loaded=(LoadedModel(name="llama3.2:1b", size=1000, size_vram=0),)
    )
    gpu = dataclasses.replace(
        healthy.gpu,
        modules=frozenset({"nouveau"}),
        gpus=(),
        smi_error=("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."),
    )
    return s.case(dataclasses.replace(healthy, ollama_api=api, gpu=gpu))


def _models_dir(**changes: object) -> Callable[[], Case]:
    def make() -> Case:
        healthy = s.healthy()
        assert healthy.models_dir is not None
        found = dataclasses.replace(healthy.models_dir, **changes)
        return s.case(dataclasses.replace(healthy, models_dir=found))

    return make


def _host_header() -> Case:
    healthy = s.healthy()
    assert healthy.caddy is not None
    caddy = dataclasses.replace(
        healthy.caddy,
        rewrites_host=False,
        proxies_to=("127.0.0.1:11434",),
        unrewritten=("127.0.0.1:11434",),
    )
    refused = s.failed("models", FailureClass.AUTH, "models: HTTP 403 with an empty body")
    return s.case(dataclasses.replace(healthy, caddy=caddy), checks=s.replace_checks(refused))


def _expiring_with_acme_errors() -> Case:
    healthy = s.healthy()
    assert healthy.caddy is not None
    cert = Certificate(
        path="/var/lib/caddy/.local/share/caddy/certificates/acme/gpu-1.crt",
        names=("gpu-1.example.com",),
        not_after=s.NOW + dt.timedelta(days=2),
        issuer="R11",
    )
    caddy = dataclasses.replace(
        healthy.caddy,
        certificates=(cert,),
        acme_errors=('{"level":"error","logger":"tls.obtain","msg":"could not get certificate"}',),
    )
    outside = s.failed("tls", FailureClass.TLS_EXPIRED, "certificate expires in 2 days")
    return s.case(dataclasses.replace(healthy, caddy=caddy), checks=s.replace_checks(outside))


def _dns_split() -> Case:
    dns = Dns(name="gpu-1.example.com", from_host=("10.1.1.1",), from_controller=("192.0.2.10",))
    return s.case(dataclasses.replace(s.healthy(), dns=dns))


def _open_port() -> Case:
    healthy = s.healthy()
    assert healthy.listeners is not None and healthy.firewall is not None
    listeners = (*healthy.listeners, Listener(address="0.0.0.0", port=6379, process="redis"))
    firewall = dataclasses.replace(healthy.firewall, accepted_tcp=frozenset({22, 80, 443, 6379}))
    return s.case(dataclasses.replace(healthy, listeners=listeners, firewall=firewall))


def _api_silent() -> Case:
    healthy = s.healthy()
    assert healthy.ollama_api is not None
    api = dataclasses.replace(
        healthy.ollama_api, answered=False, error="curl: (7) Failed to connect", version=None
    )
    return s.case(dataclasses.replace(healthy, ollama_api=api))


def _stale_binary() -> Case:
    return s.case(dataclasses.replace(s.healthy(), ollama_release="0.13.0"))


def _unreachable() -> Case:
    refused = s.failed("connectivity", FailureClass.REFUSED, "connection refused")
    case = s.case(checks=s.replace_checks(refused), unreachable="127.0.0.1:22: connection refused")
    return dataclasses.replace(case, facts=None)


def _blind() -> Case:
    facts = dataclasses.replace(
        s.healthy(), missing_tools=("nft",), gaps={"firewall": "nft: not installed"}, firewall=None
    )
    return s.case(facts)


D = s.expect().deploy
FAULTS: list[tuple[str, Callable[[], Case], str, Severity, str | None]] = [
    ("unreachable", _unreachable, "ssh-unreachable", Severity.CRITICAL, None),
    ("sudo wants a password", lambda: dataclasses.replace(s.case(), facts=None, probe_error="the facts script failed"), "facts-unread", Severity.WARNING, None),
    ("nft missing", _blind, "blind-spot", Severity.INFO, None),
    ("not root", lambda: s.case(dataclasses.replace(s.healthy(), root=False)), "blind-spot", Severity.INFO, None),
    ("bare host", _unit("ollama.service", load_state="not-found", active_state="inactive"), "ollama-not-installed", Severity.CRITICAL, D(s.HOST)),
    ("broken drop-in", _broken_dropin, "ollama-config-broken", Severity.CRITICAL, D(s.HOST, "ollama")),
    ("ollama stopped", _stopped_ollama, "ollama-down", Severity.CRITICAL, "systemctl restart ollama.service"),
    ("crash loop", _unit("ollama.service", restarts=7), "ollama-restarting", Severity.WARNING, None),
    ("api silent", _api_silent, "ollama-api-silent", Severity.CRITICAL, "systemctl restart ollama.service"),
    ("stale binary", _stale_binary, "ollama-stale-binary", Severity.WARNING, "systemctl restart ollama.service"),
    ("model deleted", _missing_model, "model-missing", Severity.CRITICAL, D(s.HOST, "models")),
    ("caddyfile invalid", _caddy(config_valid=False, validate_error="unrecognized directive: revers_proxy"), "caddy-config-invalid", Severity.CRITICAL, D(s.HOST, "caddy")),
    ("caddy stopped", _unit("caddy.service", active_state="failed", result="exit-code"), "caddy-down", Severity.CRITICAL, "systemctl restart caddy.service"),
    ("gateway stopped", _unit("ollama-fleet-gateway.service", active_state="inactive"), "gateway-down", Severity.CRITICAL, "systemctl restart ollama-fleet-gateway.service"),
    ("monitor missing", _unit("ollama-fleet-monitor.service", load_state="not-found", active_state="inactive"), "monitor-down", Severity.WARNING, D(s.HOST, "services")),
    ("firewall flushed", _flushed_firewall, "firewall-missing", Severity.CRITICAL, "systemctl restart ollama-fleet-firewall.service"),
    ("ollama exposed", _exposed_ollama, "ollama-exposed", Severity.CRITICAL, "systemctl restart ollama-fleet-firewall.service"),
    ("write endpoints", lambda: s.case(checks=s.replace_checks(s.failed("auth", FailureClass.EXPOSED, "POST /api/pull is exposed: HTTP 200, not a refusal"))), "write-endpoints-open", Severity.CRITICAL, D(s.HOST, "caddy")),
    ("redis open", _open_port, "ports-open", Severity.WARNING, "systemctl restart ollama-fleet-firewall.service"),
    ("host header", _host_header, "caddy-host-header", Severity.CRITICAL, D(s.HOST, "caddy")),
    ("split dns", _dns_split, "dns", Severity.WARNING, None),
    ("mismatch", _gpu(smi_error="Failed to initialize NVML: Driver/library version mismatch", gpus=()), "gpu-driver-mismatch", Severity.CRITICAL, "systemctl reboot"),
    ("kernel update", _gpu(modules=frozenset(), module_for_kernel=False, gpus=(), smi_error="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."), "gpu-driver-not-loaded", Severity.CRITICAL, D(s.HOST, "gpu")),
    ("no devices", _gpu(smi_error="No devices were found", gpus=()), "gpu-smi-failed", Severity.CRITICAL, "systemctl reboot"),
    ("no driver", _gpu(smi_installed=False, modules=frozenset(), gpus=(), module_for_kernel=None), "gpu-driver-missing", Severity.CRITICAL, D(s.HOST, "gpu")),
    ("on cpu", _on_cpu, "ollama-on-cpu", Severity.CRITICAL, "systemctl restart ollama.service"),
    ("hot gpu", lambda: _gpu(gpus=(dataclasses.replace(s.healthy().gpu.gpus[0], temperature_c=91),))(), "gpu-health", Severity.WARNING, None),  # type: ignore[union-attr]
    ("disk full", _models_dir(free_bytes=1 * s.GIB), "models-dir", Severity.CRITICAL, None),
    ("wrong owner", _models_dir(owner="root", group="root"), "models-dir", Severity.CRITICAL, "chown -R ollama:ollama /usr/share/ollama/.ollama/models"),
    ("clock off", lambda: s.case(dataclasses.replace(s.healthy(), clock=Clock(offset_s=-300.0, ntp_synchronized=False))), "clock", Severity.CRITICAL, "timedatectl set-ntp true"),
    ("acme failing", _expiring_with_acme_errors, "tls-renewal", Severity.CRITICAL, "systemctl reload caddy.service"),
    ("slow chat", lambda: s.case(checks=s.replace_checks(s.failed("chat", FailureClass.SLOW, "first token after 12 s"))), "outside-check", Severity.CRITICAL, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "rule", "severity", "fix"),
    [pytest.param(*fault[1:], id=fault[0]) for fault in FAULTS],
)
def test_each_fault_gives_its_finding_and_fix(
    make: Callable[[], Case], rule: str, severity: Severity, fix: str | None
) -> None:
    finding = only(evaluate(make()), rule)
    assert finding.severity is severity
    assert finding.host == s.HOST and finding.title and finding.cause and finding.evidence
    assert (finding.fix.command if finding.fix else None) == fix
    if finding.fix is not None:
        assert finding.fix.where is (
            Where.CONTROLLER if fix and fix.startswith("ollama-fleet ") else Where.HOST
        )


def test_every_rule_has_a_fault_test() -> None:
    assert {rule.id for rule in RULES} <= {fault[2] for fault in FAULTS}


def test_a_check_explained_by_a_rule_is_not_repeated() -> None:
    findings = evaluate(_stopped_ollama())
    assert [f.rule for f in findings] == ["ollama-down"]
    assert any("outside: connectivity" in line for line in findings[0].evidence)


def test_a_broken_dropin_points_ollama_down_to_the_same_fix() -> None:
    findings = evaluate(_broken_dropin())
    assert {f.rule for f in findings} == {"ollama-config-broken", "ollama-down"}
    assert {f.fix.command for f in findings if f.fix} == {D(s.HOST, "ollama")}


def test_a_foreign_dropin_gets_the_host_side_fix_naming_it() -> None:
    line = "systemd[1]: /etc/systemd/system/ollama.service.d/zz-mine.conf:1: Missing '='."
    case = s.case(
        s.with_unit(s.healthy(), "ollama.service", journal=(line,), active_state="failed")
    )
    finding = only(evaluate(case), "ollama-config-broken")
    assert finding.fix is not None and finding.fix.where is Where.HOST
    assert "zz-mine.conf" in finding.fix.note


def test_an_old_config_error_before_the_last_start_is_history() -> None:
    lines = (
        f"systemd[1]: {OUR_DROPIN}:3: Unknown key name 'X' in section 'Service', ignoring.",
        "systemd[1]: Started ollama.service - Ollama Service.",
    )
    assert evaluate(s.case(s.with_unit(s.healthy(), "ollama.service", journal=lines))) == ()


def test_the_fix_commands_carry_the_vault_password_file_and_quote_the_host() -> None:
    expect = s.expect(deploy_args=("--vault-password-file", "/home/me/vault pass"))
    assert expect.deploy("gpu 1", "models") == (
        "ollama-fleet deploy inventories/prod.yml --limit 'gpu 1' --roles models "
        "--vault-password-file '/home/me/vault pass'"
    )


def test_the_monitor_port_admitted_only_from_one_network_is_not_open() -> None:
    # the healthy firewall accepts 22/80/443 from anywhere; 9464 only from firewall_allow_metrics
    assert not [f for f in evaluate(s.case()) if f.rule == "ports-open"]


def test_findings_come_worst_first() -> None:
    healthy = s.healthy()
    facts = dataclasses.replace(
        healthy,
        clock=Clock(offset_s=8.0, ntp_synchronized=True),
        root=False,
        firewall=Firewall(tables=(), ours=False, input_drops=False, accepted_tcp=None),
    )
    severities = [f.severity.rank for f in evaluate(s.case(facts))]
    assert severities == sorted(severities, reverse=True) and len(severities) >= 3


@pytest.mark.parametrize(
    "facts",
    [
        pytest.param(HostFacts(), id="nothing read"),
        pytest.param(
            HostFacts(units={"ollama.service": s.unit("ollama.service")}), id="units only"
        ),
        pytest.param(
            dataclasses.replace(s.healthy(), ollama_api=None, listeners=None, firewall=None),
            id="no api, sockets or ruleset",
        ),
    ],
)
def test_partial_facts_give_no_false_finding_and_no_crash(facts: HostFacts) -> None:
    assert evaluate(s.case(facts)) == ()


def test_no_facts_and_no_checks_for_a_url_target() -> None:
    case = Case(host="h", expect=None, facts=None, inside=False, checks=())
    assert evaluate(case) == ()


def test_a_url_target_reports_its_failed_checks_with_their_hints() -> None:
    result = s.failed("tls", FailureClass.TLS_EXPIRED, "certificate expired 3 days ago")
    case = Case(host=s.HOST, expect=None, facts=None, inside=False, checks=(result,))
    finding = only(evaluate(case), "outside-check")
    assert finding.severity is Severity.CRITICAL and "renew" in finding.cause


def test_an_exposed_url_is_named_by_the_port_the_check_found_open() -> None:
    result = s.failed("exposure", FailureClass.EXPOSED, "port 52434 accepts connections")
    case = Case(host="edge", expect=None, facts=None, inside=False, checks=(result,))
    finding = only(evaluate(case), "ollama-exposed")
    assert "52434" in finding.title and "11434" not in finding.title
    assert "listens on every address" not in finding.cause


def test_write_endpoints_passing_are_not_called_an_open_port() -> None:
    result = s.failed("auth", FailureClass.EXPOSED, "POST /api/pull is exposed: HTTP 400")
    findings = evaluate(s.case(checks=s.replace_checks(result)))
    assert [f.rule for f in findings] == ["write-endpoints-open"]


def test_tls_internal_certificates_are_never_called_expiring() -> None:
    healthy = s.healthy()
    assert healthy.caddy is not None
    leaf = Certificate(
        path="/var/lib/caddy/.local/share/caddy/certificates/local/gpu-1/gpu-1.crt",
        names=("gpu-1.example.com",),
        not_after=s.NOW + dt.timedelta(hours=11),
        issuer="Caddy Local Authority - ECC Intermediate",
    )
    caddy = dataclasses.replace(healthy.caddy, certificates=(leaf,))
    assert evaluate(s.case(dataclasses.replace(healthy, caddy=caddy))) == ()


def test_no_firewall_fix_where_the_inventory_keeps_the_firewall_role_off() -> None:
    case = _exposed_ollama()
    case = dataclasses.replace(case, expect=s.expect(firewall=False))
    finding = only(evaluate(case), "ollama-exposed")
    assert finding.fix is None  # the deploy would not touch the firewall there


def test_ports_opened_on_purpose_are_not_reported() -> None:
    healthy = s.healthy()
    assert healthy.listeners is not None and healthy.firewall is not None
    listeners = (*healthy.listeners, Listener(address="0.0.0.0", port=2222, process="sshd"))
    firewall = dataclasses.replace(healthy.firewall, accepted_tcp=frozenset({80, 443, 2222}))
    facts = dataclasses.replace(healthy, listeners=listeners, firewall=firewall)
    assert evaluate(s.case(facts, expect=s.expect(open_on_purpose=(2222,)))) == ()


def test_gpus_passed_through_to_vms_are_not_a_missing_driver() -> None:
    case = _gpu(modules=frozenset({"vfio_pci"}), gpus=(), smi_error="No devices were found")()
    assert "gpu-driver-not-loaded" not in {f.rule for f in evaluate(case)}


def test_exposed_through_another_path_names_it_when_input_drops() -> None:
    outside = s.failed("exposure", FailureClass.EXPOSED, "port 11434 accepts connections")
    finding = only(evaluate(s.case(checks=s.replace_checks(outside))), "ollama-exposed")
    assert "Docker" in finding.cause and finding.fix is None


def test_docs_list_every_rule_with_its_severity() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (\w+) \|", text, flags=re.MULTILINE))
    assert rows == {rule.id: rule.severity.value for rule in RULES}
