"""One host's case as the rules see it: what the inventory expects, the facts, the checks."""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ollama_fleet.checks.model import CheckResult, FailureClass, Status
from ollama_fleet.diagnose.facts import HostFacts, Unit

OLLAMA_UNIT = "ollama.service"
CADDY_UNIT = "caddy.service"
GATEWAY_UNIT = "ollama-fleet-gateway.service"
MONITOR_UNIT = "ollama-fleet-monitor.service"
FIREWALL_UNIT = "ollama-fleet-firewall.service"
OUR_DROPIN = "/etc/systemd/system/ollama.service.d/ollama-fleet.conf"


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """What the inventory says should run on the host; fix commands are built from it."""

    inventory: str  # the inventory path as given on the command line
    ollama: bool = True
    caddy: bool = True
    firewall: bool = True
    gateway: bool = False
    monitor: bool = False
    gpu: bool = True  # the gpu role runs here (it skips a host without an NVIDIA GPU)
    required_models: tuple[str, ...] = ()
    ollama_port: int = 11434
    open_on_purpose: tuple[int, ...] = ()  # sshd_port and firewall_extra_tcp_ports
    deploy_args: tuple[str, ...] = ()  # e.g. ("--vault-password-file", PATH), for the fixes

    def deploy(self, host: str, *roles: str) -> str:
        """The deploy command that converges `roles` on `host` (all roles when none)."""
        words = ["ollama-fleet", "deploy", self.inventory, "--limit", host]
        if roles:
            words += ["--roles", ",".join(roles)]
        return shlex.join([*words, *self.deploy_args])


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    host: str
    expect: Expect | None  # None: a --url target, not an inventory host
    facts: HostFacts | None  # None: not asked for, or the host could not be reached
    inside: bool = False  # whether the inside facts were asked for
    unreachable: str | None = None  # SSH did not get in: why, in one line
    probe_error: str | None = None  # SSH got in but the facts script failed: why
    checks: tuple[CheckResult, ...] = ()
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def unit(self, name: str) -> Unit | None:
        return self.facts.units.get(name) if self.facts is not None else None

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.check == name), None)

    def failed_checks(self, *classes: FailureClass) -> tuple[CheckResult, ...]:
        """Checks that warned or failed, with one of `classes` when given."""
        return tuple(
            c
            for c in self.checks
            if c.status is not Status.OK
            and (not classes or any(f.failure_class in classes for f in c.findings))
        )


def check_evidence(results: Sequence[CheckResult]) -> tuple[str, ...]:
    """Each outside check as evidence: "outside: chat: HTTP 404 ..."."""
    return tuple(f"outside: {r.check}: {r.summary}" for r in results)


def unit_evidence(unit: Unit, *, errors: int = 3) -> tuple[str, ...]:
    state = f"{unit.active_state} ({unit.sub_state})" if unit.sub_state else unit.active_state
    words = [f"{unit.name}: {state}"]
    if unit.result and unit.result != "success":
        words.append(f"result {unit.result}")
    if unit.restarts:
        words.append(f"{unit.restarts} restart(s)")
    lines = [f"systemctl: {', '.join(words)}"]
    lines += [f"journal: {line}" for line in unit.errors[-errors:]]
    return tuple(lines)


def yes(value: Any) -> str:
    return "yes" if value else "no"


def counts(mapping: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in mapping.items() if v)
