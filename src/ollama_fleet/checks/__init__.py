"""Verify Ollama endpoints: connectivity, TLS, models, chat, auth and exposure.

The names below load on first use: importing `ollama_fleet.checks.model` (plain records)
must not pull in httpx, the probes and the inventory loader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ollama_fleet.lazy import module_getattr

if TYPE_CHECKING:
    from ollama_fleet.checks.http import make_client
    from ollama_fleet.checks.model import (
        CHECK_NAMES,
        CheckResult,
        CheckRun,
        FailureClass,
        Finding,
        LatencyPolicy,
        PublicAccess,
        RequiredModel,
        Status,
        Target,
        Threshold,
        TlsPolicy,
    )
    from ollama_fleet.checks.runner import plan_checks, run_checks, run_one
    from ollama_fleet.checks.settings import ProbeSettings
    from ollama_fleet.checks.targets import target_from_url, targets_from_inventory

_WHERE = {
    **dict.fromkeys(
        (
            "CHECK_NAMES",
            "CheckResult",
            "CheckRun",
            "FailureClass",
            "Finding",
            "LatencyPolicy",
            "PublicAccess",
            "RequiredModel",
            "Status",
            "Target",
            "Threshold",
            "TlsPolicy",
        ),
        "ollama_fleet.checks.model",
    ),
    "make_client": "ollama_fleet.checks.http",
    "plan_checks": "ollama_fleet.checks.runner",
    "run_one": "ollama_fleet.checks.runner",
    "run_checks": "ollama_fleet.checks.runner",
    "ProbeSettings": "ollama_fleet.checks.settings",
    "target_from_url": "ollama_fleet.checks.targets",
    "targets_from_inventory": "ollama_fleet.checks.targets",
}

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "CheckRun",
    "FailureClass",
    "Finding",
    "LatencyPolicy",
    "ProbeSettings",
    "PublicAccess",
    "RequiredModel",
    "Status",
    "Target",
    "Threshold",
    "TlsPolicy",
    "make_client",
    "plan_checks",
    "run_checks",
    "run_one",
    "target_from_url",
    "targets_from_inventory",
]

__getattr__ = module_getattr(__name__, _WHERE)
