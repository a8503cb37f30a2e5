"""The probes, one module per check, registered by check name in run order."""

from __future__ import annotations

from collections.abc import Mapping

from ollama_fleet.checks.probe import Probe
from ollama_fleet.checks.probes.auth import probe_auth
from ollama_fleet.checks.probes.chat import probe_chat
from ollama_fleet.checks.probes.connectivity import probe_connectivity
from ollama_fleet.checks.probes.exposure import probe_exposure
from ollama_fleet.checks.probes.models import probe_models
from ollama_fleet.checks.probes.tls import probe_tls

PROBES: Mapping[str, Probe] = {
    "connectivity": probe_connectivity,
    "tls": probe_tls,
    "models": probe_models,
    "chat": probe_chat,
    "auth": probe_auth,
    "exposure": probe_exposure,
}

__all__ = ["PROBES"]
