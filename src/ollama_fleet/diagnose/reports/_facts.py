"""Words shared by the HTML and Markdown reports: fact labels, scalar values, host states."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SYSTEM", "UNIT_COLUMNS", "host_state", "label", "scalar"]

_LABELS = {
    "os": "OS",
    "ollama_api": "Ollama API",
    "gpu": "GPU",
    "gpus": "GPUs",
    "dns": "DNS",
    "url": "URL",
    "tcp": "TCP",
    "accepted_tcp": "accepted TCP ports",
    "smi_installed": "nvidia-smi installed",
    "smi_error": "nvidia-smi error",
    "ntp_synchronized": "NTP synchronized",
    "size_vram": "size in VRAM",
    "offset_s": "offset (s)",
    "root": "root (journals and nft readable)",
}
# the scalar facts shown together, first
SYSTEM = ("os", "kernel", "arch", "root", "ollama_release")
UNIT_COLUMNS = (
    "name",
    "load_state",
    "active_state",
    "sub_state",
    "result",
    "restarts",
    "since",
    "main_status",
)


def label(key: str) -> str:
    """A fact's key in words: "ollama_api" -> "Ollama API", "free_bytes" -> "free bytes"."""
    return _LABELS.get(key, key.replace("_", " "))


def scalar(value: Any) -> str:
    """A JSON scalar in words: None "—", booleans "yes"/"no", lists joined by commas."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(scalar(v) for v in value) if value else "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={scalar(v)}" for k, v in value.items()) if value else "none"
    return str(value)


def host_state(host: Mapping[str, Any]) -> str:
    """How the inside of a host went, in one line."""
    if not host["inside"]:
        return "outside checks only (--url): no inside facts"
    if host["unreachable"]:
        return f"unreachable over SSH: {host['unreachable']}"
    if host["facts"] is None:
        return "no inside facts"
    return "inside facts read over SSH"
