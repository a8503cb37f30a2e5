"""Verify Ollama endpoints: connectivity, TLS, models, chat, auth and exposure."""

from ollama_fleet.checks.model import (
    CHECK_NAMES,
    CheckResult,
    CheckRun,
    FailureClass,
    Finding,
    PublicAccess,
    RequiredModel,
    Status,
    Target,
    TlsPolicy,
)
from ollama_fleet.checks.runner import plan_checks, run_checks
from ollama_fleet.checks.settings import ProbeSettings
from ollama_fleet.checks.targets import target_from_url, targets_from_inventory

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "CheckRun",
    "FailureClass",
    "Finding",
    "ProbeSettings",
    "PublicAccess",
    "RequiredModel",
    "Status",
    "Target",
    "TlsPolicy",
    "plan_checks",
    "run_checks",
    "target_from_url",
    "targets_from_inventory",
]
