"""The rules, as one table: each joins inside facts with outside checks into findings.

docs/diagnose.md lists every rule of RULES (a test keeps the two equal). The outside-check
rule comes last: it reports the failed checks no other rule explained.
"""

from __future__ import annotations

from ollama_fleet.diagnose.case import Case
from ollama_fleet.diagnose.findings import Finding, Severity, ordered
from ollama_fleet.diagnose.rules import gpu, host, network, outside, services
from ollama_fleet.diagnose.rules.base import Hit, Rule

C, W, INFO = Severity.CRITICAL, Severity.WARNING, Severity.INFO

RULES: tuple[Rule, ...] = (
    Rule(
        id="ssh-unreachable",
        severity=C,
        summary=(
            "SSH does not get in; the class of failure (DNS, refused, timeout, auth, host "
            "key) and what to check."
        ),
        check=host.unreachable,
    ),
    Rule(
        id="facts-unread",
        severity=W,
        summary=(
            "SSH got in but the read-only script failed (sudo wants a password, /tmp is full, "
            "the host was too slow); the outside checks still count."
        ),
        check=host.facts_unread,
    ),
    Rule(
        id="blind-spot",
        severity=INFO,
        summary=(
            "A tool a fact needs is missing (nft, ss, curl, journalctl, caddy, nvidia-smi),"
            " or the facts were read without root."
        ),
        check=host.blind_spots,
    ),
    Rule(
        id="ollama-not-installed",
        severity=C,
        summary="The inventory runs Ollama here but there is no ollama.service.",
        check=services.ollama_missing,
    ),
    Rule(
        id="ollama-config-broken",
        severity=C,
        summary=(
            "ollama.service or a drop-in has lines systemd cannot use (unknown key, bad "
            "quoting, no ExecStart)."
        ),
        check=services.dropin_broken,
    ),
    Rule(
        id="ollama-down",
        severity=C,
        summary=(
            "ollama.service is installed but not running; joined with the outside checks it breaks."
        ),
        check=services.ollama_down,
    ),
    Rule(
        id="ollama-restarting",
        severity=W,
        summary="Ollama runs but has restarted three times or more: a crash loop.",
        check=services.ollama_restarting,
    ),
    Rule(
        id="ollama-api-silent",
        severity=C,
        summary="ollama.service is active but its API does not answer on loopback (OLLAMA_HOST).",
        check=services.ollama_api_silent,
    ),
    Rule(
        id="ollama-stale-binary",
        severity=W,
        summary=(
            "The release on disk differs from the version the running Ollama reports: "
            "not restarted since the upgrade."
        ),
        check=services.ollama_stale_binary,
    ),
    Rule(
        id="model-missing",
        severity=C,
        summary=(
            "A model in required_models is not in /api/tags on the host; joined with the "
            "outside chat/models 404."
        ),
        check=services.model_missing,
    ),
    Rule(
        id="caddy-config-invalid",
        severity=C,
        summary="`caddy validate` fails on /etc/caddy/Caddyfile.",
        check=services.caddy_config_invalid,
    ),
    Rule(
        id="caddy-down",
        severity=C,
        summary="The inventory runs Caddy here but caddy.service is missing or not running.",
        check=services.caddy_down,
    ),
    Rule(
        id="gateway-down",
        severity=C,
        summary="gateway_enabled but ollama-fleet-gateway.service is missing or not running.",
        check=services.gateway_down,
    ),
    Rule(
        id="monitor-down",
        severity=W,
        summary="monitor_enabled but ollama-fleet-monitor.service is missing or not running.",
        check=services.monitor_down,
    ),
    Rule(
        id="firewall-missing",
        severity=C,
        summary=(
            "firewall_enabled but the table inet ollama_fleet is not in the ruleset "
            "(flushed, or never loaded)."
        ),
        check=network.firewall_missing,
    ),
    Rule(
        id="ollama-exposed",
        severity=C,
        summary=(
            "Ollama's port is reachable from the controller, or listens on every address "
            "with the ruleset admitting it."
        ),
        check=network.ollama_exposed,
    ),
    Rule(
        id="write-endpoints-open",
        severity=C,
        summary=(
            "Ollama's write endpoints (pull, delete, create, ...) answer through the public "
            "URL instead of a 403."
        ),
        check=network.write_endpoints_open,
    ),
    Rule(
        id="ports-open",
        severity=W,
        summary=(
            "Other services listen on every address and the ruleset admits them from anywhere."
        ),
        check=network.ports_open,
    ),
    Rule(
        id="caddy-host-header",
        severity=W,
        summary=(
            "Caddy proxies to Ollama without `header_up Host`: Ollama on loopback answers "
            "403 (critical when the checks got that 403)."
        ),
        check=network.host_header,
    ),
    Rule(
        id="dns",
        severity=W,
        summary=(
            "The public name does not resolve from the controller (critical), or resolves "
            "to other addresses on the host."
        ),
        check=network.dns_disagrees,
    ),
    Rule(
        id="gpu-driver-mismatch",
        severity=C,
        summary=(
            "nvidia-smi: driver/library version mismatch (driver upgraded, old module "
            "loaded: reboot)."
        ),
        check=gpu.driver_mismatch,
    ),
    Rule(
        id="gpu-driver-not-loaded",
        severity=C,
        summary=(
            "NVIDIA GPUs on the PCI bus but no nvidia module: nouveau holds them, or no "
            "module for the running kernel (kernel update without DKMS)."
        ),
        check=gpu.driver_not_loaded,
    ),
    Rule(
        id="gpu-smi-failed",
        severity=C,
        summary="The nvidia module is loaded but nvidia-smi fails or finds no devices.",
        check=gpu.smi_failed,
    ),
    Rule(
        id="gpu-driver-missing",
        severity=C,
        summary="NVIDIA GPUs on the PCI bus but no driver tools (nvidia-smi) at all.",
        check=gpu.smi_missing,
    ),
    Rule(
        id="ollama-on-cpu",
        severity=C,
        summary=(
            "A GPU host whose Ollama holds its models with no VRAM (/api/ps size_vram 0, or"
            " the chat check's cpu_fallback), with the GPU facts that say why."
        ),
        check=gpu.ollama_on_cpu,
    ),
    Rule(
        id="gpu-health",
        severity=W,
        summary=(
            "A GPU with uncorrected ECC errors or at 85 °C or more (warning), or with "
            "persistence mode off (info)."
        ),
        check=gpu.gpu_health,
    ),
    Rule(
        id="models-dir",
        severity=W,
        summary=(
            "The models directory is missing or not owned by ollama (critical), or its file"
            " system is low on space (under 10 %, critical under 2 %) or inodes."
        ),
        check=host.models_dir,
    ),
    Rule(
        id="clock",
        severity=W,
        summary=(
            "The host's clock differs from the controller's by 5 s or more (critical from "
            "60 s: TLS breaks)."
        ),
        check=host.clock,
    ),
    Rule(
        id="tls-renewal",
        severity=W,
        summary=(
            "A certificate expires within 14 days with ACME errors in Caddy's journal "
            "(critical when the TLS check fails too)."
        ),
        check=host.certificates,
    ),
    Rule(
        id="outside-check",
        severity=W,
        summary=(
            "Any outside check that warned or failed and no rule above explained, with the "
            "check's own hint."
        ),
        check=outside.outside_checks,
    ),
)

BY_ID = {rule.id: rule for rule in RULES}


def evaluate(case: Case) -> tuple[Finding, ...]:
    """Every rule on `case`, worst first; an outside check explained by a rule is not repeated."""
    findings: list[Finding] = []
    explained: set[str] = set()
    for rule in RULES:
        for hit in rule.check(case):
            if rule.check is outside.outside_checks and set(hit.explains) <= explained:
                continue
            explained.update(hit.explains)
            findings.append(_finding(rule, case, hit))
    return ordered(findings)


def _finding(rule: Rule, case: Case, hit: Hit) -> Finding:
    return Finding(
        rule=rule.id,
        host=case.host,
        severity=hit.severity or rule.severity,
        title=hit.title,
        cause=hit.cause,
        evidence=hit.evidence,
        fix=hit.fix,
    )


__all__ = ["BY_ID", "RULES", "Hit", "Rule", "evaluate"]
