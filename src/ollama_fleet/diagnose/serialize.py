"""A Diagnosis as JSON-ready data, with secret-looking values masked: what every report renders.

The shape is docs/diagnose-report.md's and schema.json's. Two things never leave here as
given: the values of environment keys that look secret (KEY, TOKEN, SECRET, PASSWORD, AUTH,
CREDENTIAL in the name) and the userinfo of URLs (`http://user:pass@proxy` becomes
`http://proxy`); both are masked in every string, also in evidence and journal lines.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from ollama_fleet.checks.model import CheckResult, Status
from ollama_fleet.diagnose.facts import (
    CaddyFacts,
    Firewall,
    GpuFacts,
    HostFacts,
    ModelsDir,
    OllamaApi,
    Unit,
)
from ollama_fleet.diagnose.findings import Diagnosis, Finding, HostReport, Severity, ordered
from ollama_fleet.redact import REDACTED

__all__ = [
    "SCHEMA",
    "VERSION",
    "diagnosis_data",
    "finding_data",
    "scrub",
    "secret_key",
]

SCHEMA = "ollama-fleet/diagnose"
VERSION = 1

_SECRET_WORDS = (
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "AUTH",
    "CREDENTIAL",
    "WEBHOOK",
    "DSN",
    "PRIVATE",
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# scheme://userinfo@: greedy up to the last @ before the path, so a raw @ in a password goes too
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#@]*(?:@[^/\s?#@]*)*@")
# NAME=VALUE in free text (a journal line, evidence) where NAME looks secret; systemd quotes
# a whole assignment with spaces ("NAME=a b"), so a quote before NAME ends at the next quote
_NAME = r"\b(\w*(?:" + "|".join(_SECRET_WORDS) + r")\w*)="
_QUOTED_ASSIGNMENT = re.compile(r'(?i)"' + _NAME + r'(?!\*\*\*")[^"]*"')
_ASSIGNMENT = re.compile(r"(?i)" + _NAME + r"(?!\*\*\*)(\"[^\"]*\"|'[^']*'|[^\s\"',;]+)")


def secret_key(name: str) -> bool:
    """Whether an environment key's value must not be shown (OLLAMA_API_KEY, DB_PASSWORD)."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def scrub(text: str) -> str:
    """`text` without URL userinfo and with the values of secret-looking NAME=VALUE masked."""
    text = _USERINFO.sub(r"\1", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _QUOTED_ASSIGNMENT.sub(lambda m: f'"{m.group(1)}={REDACTED}"', text)
    return _ASSIGNMENT.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def _when(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a "Z"; a naive datetime is taken as UTC already."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ms(value: float) -> float:
    """A duration in ms; a non-finite or negative one (never measured) as 0."""
    number = _number(value)
    return number if number is not None and number > 0 else 0.0


def _unit(unit: Unit) -> dict[str, Any]:
    return {
        "name": unit.name,
        "load_state": unit.load_state,
        "active_state": unit.active_state,
        "sub_state": unit.sub_state,
        "result": unit.result,
        "restarts": unit.restarts,
        "since": _when(unit.since),
        "main_status": unit.main_status,
        "fragment": unit.fragment,
        "drop_ins": list(unit.drop_ins),
        "environment": {
            key: REDACTED if secret_key(key) else value
            for key, value in sorted(unit.environment.items())
        },
        "journal": list(unit.journal),
        "errors": list(unit.errors),
    }


def _firewall(firewall: Firewall) -> dict[str, Any]:
    accepted = firewall.accepted_tcp
    return {
        "tables": list(firewall.tables),
        "ours": firewall.ours,
        "input_drops": firewall.input_drops,
        "accepted_tcp": sorted(accepted) if accepted is not None else None,
    }


def _ollama_api(api: OllamaApi) -> dict[str, Any]:
    return {
        "url": api.url,
        "answered": api.answered,
        "error": api.error,
        "version": api.version,
        "models": list(api.models),
        "loaded": [{"name": m.name, "size": m.size, "size_vram": m.size_vram} for m in api.loaded],
    }


def _models_dir(models: ModelsDir) -> dict[str, Any]:
    return {
        "path": models.path,
        "exists": models.exists,
        "owner": models.owner,
        "group": models.group,
        "mode": models.mode,
        "total_bytes": models.total_bytes,
        "free_bytes": models.free_bytes,
        "total_inodes": models.total_inodes,
        "free_inodes": models.free_inodes,
        "mount": models.mount,
    }


def _gpu(gpu: GpuFacts) -> dict[str, Any]:
    return {
        "nvidia_devices": gpu.nvidia_devices,
        "smi_installed": gpu.smi_installed,
        "smi_error": gpu.smi_error,
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "driver": g.driver,
                "memory_total_mib": g.memory_total_mib,
                "memory_used_mib": g.memory_used_mib,
                "ecc_uncorrected": g.ecc_uncorrected,
                "temperature_c": g.temperature_c,
                "persistence": g.persistence,
            }
            for g in gpu.gpus
        ],
        "modules": sorted(gpu.modules),
        "kernel_module_version": gpu.kernel_module_version,
        "module_for_kernel": gpu.module_for_kernel,
    }


def _caddy(caddy: CaddyFacts) -> dict[str, Any]:
    return {
        "installed": caddy.installed,
        "config_valid": caddy.config_valid,
        "validate_error": caddy.validate_error,
        "rewrites_host": caddy.rewrites_host,
        "proxies_to": list(caddy.proxies_to),
        "unrewritten": list(caddy.unrewritten),
        "certificates": [
            {
                "path": c.path,
                "names": list(c.names),
                "not_after": _when(c.not_after),
                "issuer": c.issuer,
            }
            for c in caddy.certificates
        ],
        "acme_errors": list(caddy.acme_errors),
    }


def _optional(value: Any, convert: Any) -> Any:
    return None if value is None else convert(value)


def _facts(facts: HostFacts) -> dict[str, Any]:
    """Units in name order, sets as sorted lists."""
    clock = facts.clock
    dns = facts.dns
    return {
        "os": facts.os,
        "kernel": facts.kernel,
        "arch": facts.arch,
        "root": facts.root,
        "units": [_unit(facts.units[name]) for name in sorted(facts.units)],
        "listeners": _optional(
            facts.listeners,
            lambda items: [
                {"address": x.address, "port": x.port, "process": x.process} for x in items
            ],
        ),
        "firewall": _optional(facts.firewall, _firewall),
        "ollama_release": facts.ollama_release,
        "ollama_api": _optional(facts.ollama_api, _ollama_api),
        "models_dir": _optional(facts.models_dir, _models_dir),
        "gpu": _optional(facts.gpu, _gpu),
        "caddy": _optional(facts.caddy, _caddy),
        "clock": None
        if clock is None
        else {"offset_s": _number(clock.offset_s), "ntp_synchronized": clock.ntp_synchronized},
        "dns": None
        if dns is None
        else {
            "name": dns.name,
            "from_host": _optional(dns.from_host, list),
            "from_controller": _optional(dns.from_controller, list),
            "host_error": dns.host_error,
            "controller_error": dns.controller_error,
        },
        "missing_tools": list(facts.missing_tools),
        "gaps": dict(sorted(facts.gaps.items())),
    }


def _finding(finding: Finding) -> dict[str, Any]:
    fix = finding.fix
    return {
        "rule": finding.rule,
        "host": finding.host,
        "severity": finding.severity.value,
        "title": finding.title,
        "cause": finding.cause,
        "evidence": list(finding.evidence),
        "fix": None
        if fix is None
        else {"command": fix.command, "where": fix.where.value, "note": fix.note},
    }


def _check(result: CheckResult) -> dict[str, Any]:
    ok = result.status is Status.OK
    klass = None if ok else result.failure_class
    return {
        "check": result.check,
        "status": result.status.value,
        "failure_class": klass.value if klass is not None else None,
        "summary": result.summary,
        "hint": None if ok else result.hint,
        "elapsed_ms": _ms(result.elapsed_ms),
    }


def _host(host: HostReport) -> dict[str, Any]:
    """Findings worst first; facts None when not read (not asked, or SSH failed)."""
    return {
        "name": host.name,
        "url": host.url,
        "inside": host.inside,
        "reached": host.facts is not None,
        "unreachable": host.unreachable,
        "findings": [_finding(f) for f in ordered(host.findings)],
        "facts": _optional(host.facts, _facts),
        "checks": [_check(r) for r in host.checks],
    }


def _summary(diagnosis: Diagnosis) -> dict[str, int]:
    severities = [f.severity for f in diagnosis.findings]
    return {
        "findings": len(severities),
        **{s.value: severities.count(s) for s in reversed(Severity)},
        "hosts": len(diagnosis.hosts),
    }


def diagnosis_data(diagnosis: Diagnosis) -> dict[str, Any]:
    """The whole diagnosis as the JSON report's document (schema.json, version 1)."""
    context = diagnosis.context
    data = {
        "schema": SCHEMA,
        "version": VERSION,
        "started_at": diagnosis.started_at,
        "duration_ms": _ms(diagnosis.duration_ms),
        "context": {
            "command": context.command,
            "inventory": context.inventory,
            "controller": context.controller,
        },
        "summary": _summary(diagnosis),
        "hosts": [_host(h) for h in diagnosis.hosts],
    }
    scrubbed: dict[str, Any] = _scrubbed(data)
    return scrubbed


def finding_data(finding: Finding) -> dict[str, Any]:
    """One finding, masked."""
    scrubbed: dict[str, Any] = _scrubbed(_finding(finding))
    return scrubbed
