"""The exposure summary: every port the exposure check tried, its state and its verdict.

The exposure probe records `details["ports"]` = {port: state}, the state one of open, refused,
timeout, dropped, silent or dns (see probes/exposure.py), and one finding per port that starts
with "port N": that finding's status is the port's verdict (a closed port that accepts is a
fail, an open port that refuses is a fail, the rest ok).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ollama_fleet.checks.model import CheckResult, Status

from ._common import html_safe

__all__ = ["PortView", "exposure_ports"]

# What a state means, in the words of someone reading a firewall report.
STATE_WORDS: Mapping[str, str] = {
    "open": "",
    "refused": "closed: nothing listens",
    "timeout": "no answer (filtered)",
    "dropped": "a forwarder accepted, then closed: nothing behind it",
    "silent": "a forwarder accepted, nothing answered",
    "dns": "the host name does not resolve",
}

_PORT_FINDING = re.compile(r"^port (\d+)\b")


@dataclass(frozen=True, slots=True, kw_only=True)
class PortView:
    """One port of one host: its number, the state seen, what it means, the verdict."""

    port: str
    state: str
    meaning: str
    status: str | None  # ok, warn or fail; None when no finding judged this port


def _port_key_of(item: tuple[str, str]) -> tuple[int, str]:
    port = item[0]
    return (int(port), port) if port.isdigit() else (1 << 17, port)


def exposure_ports(result: CheckResult) -> tuple[PortView, ...]:
    """Every port of an exposure result in port order; () when it recorded no ports."""
    ports: Any = result.details.get("ports")
    if not isinstance(ports, Mapping):
        return ()
    verdicts: dict[str, Status] = {}
    for finding in result.findings:
        match = _PORT_FINDING.match(finding.message)
        if match:
            verdicts.setdefault(match.group(1), finding.status)
    views: list[PortView] = []
    for port, state in sorted(((str(p), str(s)) for p, s in ports.items()), key=_port_key_of):
        verdict = verdicts.get(port)
        if verdict is None and state == "dns":
            verdict = Status.FAIL
        views.append(
            PortView(
                port=html_safe(port),
                state=html_safe(state),
                meaning=STATE_WORDS.get(state, ""),
                status=verdict.value if verdict is not None else None,
            )
        )
    return tuple(views)
