"""Rules on the services: Ollama, its drop-in and API, Caddy, the gateway and the monitor."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ollama_fleet.checks.model import CHECK_NAMES, FailureClass
from ollama_fleet.diagnose.case import (
    CADDY_UNIT,
    GATEWAY_UNIT,
    MONITOR_UNIT,
    OLLAMA_UNIT,
    OUR_DROPIN,
    Case,
    check_evidence,
    unit_evidence,
)
from ollama_fleet.diagnose.findings import Fix, Severity, Where
from ollama_fleet.diagnose.rules.base import Hit
from ollama_fleet.values import canonical_model_name

# what systemd says when a unit file or drop-in cannot be used as written
_BAD_CONFIG = re.compile(
    r"Unknown key name|Unknown section|Invalid environment assignment|Failed to parse|"
    r"Missing '='|has no ExecStart|Unbalanced quoting|bad-setting|Invalid syntax",
    re.IGNORECASE,
)
_CONFIG_FILE = re.compile(r"(/[^\s:]+\.(?:conf|service)):\d+")
# a service on the request's path that is down explains whatever the outside checks saw
_REACHING = CHECK_NAMES


def _restart(unit: str) -> Fix:
    return Fix(command=f"systemctl restart {unit}", where=Where.HOST)


def ollama_missing(case: Case) -> Iterator[Hit]:
    unit = case.unit(OLLAMA_UNIT)
    if case.expect is None or not case.expect.ollama or unit is None or unit.installed:
        return
    yield Hit(
        title="Ollama is not installed (no ollama.service)",
        cause="the host was never deployed, or the ollama role did not run on it",
        evidence=(f"systemctl: {OLLAMA_UNIT}: {unit.load_state}",),
        fix=Fix(command=case.expect.deploy(case.host), where=Where.CONTROLLER),
        explains=_REACHING,
    )


def dropin_broken(case: Case) -> Iterator[Hit]:
    unit = case.unit(OLLAMA_UNIT)
    if unit is None or not unit.installed:
        return
    bad = [line for line in unit.journal if _BAD_CONFIG.search(line)]
    if unit.load_state == "bad-setting" and not bad:
        bad = [f"LoadState={unit.load_state}"]
    if not bad or (unit.active and unit.load_state == "loaded" and not _recent(unit.journal, bad)):
        return
    files = sorted({m.group(1) for line in bad for m in _CONFIG_FILE.finditer(line)})
    ours = not files or files == [OUR_DROPIN]
    if ours and case.expect is not None:
        fix = Fix(
            command=case.expect.deploy(case.host, "ollama"),
            where=Where.CONTROLLER,
            note=f"rewrites {OUR_DROPIN} from the inventory and restarts Ollama",
        )
    else:
        fix = Fix(
            command=f"systemctl daemon-reload && systemctl restart {OLLAMA_UNIT}",
            where=Where.HOST,
            note=f"after fixing or removing {', '.join(files) or 'the drop-in'}",
        )
    yield Hit(
        title=f"ollama.service's configuration is broken ({', '.join(files) or unit.load_state})",
        cause="a drop-in or the unit has a line systemd cannot use, so Ollama runs without "
        "its settings or does not start at all",
        evidence=(*unit_evidence(unit, errors=0), *(f"journal: {line}" for line in bad[-3:])),
        fix=fix,
        explains=_REACHING,
    )


def _recent(journal: tuple[str, ...], bad: list[str]) -> bool:
    """Whether a bad-config line comes after the unit's last start (else it is history)."""
    last_start = max((i for i, line in enumerate(journal) if "Started " in line), default=-1)
    return any(journal.index(line) > last_start for line in bad)


def ollama_down(case: Case) -> Iterator[Hit]:
    unit = case.unit(OLLAMA_UNIT)
    if unit is None or not unit.installed or unit.active:
        return
    broken = next(iter(dropin_broken(case)), None)
    yield Hit(
        title=f"Ollama is not running ({unit.active_state})",
        cause="its configuration is broken (see ollama-config-broken)"
        if broken
        else "it was stopped, or it exited: its journal lines say why",
        evidence=(*unit_evidence(unit), *check_evidence(case.failed_checks())),
        fix=broken.fix if broken else _restart(OLLAMA_UNIT),
        explains=_REACHING,
    )


def ollama_restarting(case: Case) -> Iterator[Hit]:
    unit = case.unit(OLLAMA_UNIT)
    if unit is None or not unit.active or (unit.restarts or 0) < 3:
        return
    yield Hit(
        title=f"Ollama restarted {unit.restarts} times",
        cause="it crashes and systemd starts it again: the journal lines say why (out of "
        "memory, a GPU error, a broken model file)",
        evidence=unit_evidence(unit, errors=5),
    )


def ollama_api_silent(case: Case) -> Iterator[Hit]:
    unit, facts = case.unit(OLLAMA_UNIT), case.facts
    api = facts.ollama_api if facts is not None else None
    if unit is None or not unit.active or api is None or api.answered:
        return
    if facts is not None and "curl" in facts.missing_tools:
        return
    yield Hit(
        title=f"Ollama runs but its API does not answer on {api.url}",
        cause="the process hangs or listens elsewhere than its OLLAMA_HOST says",
        evidence=(f"on the host: curl {api.url}/api/version: {api.error}", *unit_evidence(unit)),
        fix=_restart(OLLAMA_UNIT),
        explains=_REACHING,
    )


def ollama_stale_binary(case: Case) -> Iterator[Hit]:
    facts = case.facts
    api = facts.ollama_api if facts is not None else None
    if facts is None or api is None or not api.version or not facts.ollama_release:
        return
    if api.version == facts.ollama_release:
        return
    yield Hit(
        title=f"Ollama {facts.ollama_release} is installed but {api.version} is running",
        cause="a new release was installed and the service was not restarted",
        evidence=(
            f"/opt/ollama/RELEASE: {facts.ollama_release}",
            f"on the host: /api/version: {api.version}",
        ),
        fix=_restart(OLLAMA_UNIT),
    )


def model_missing(case: Case) -> Iterator[Hit]:
    facts, expect = case.facts, case.expect
    api = facts.ollama_api if facts is not None else None
    if expect is None or not expect.ollama or api is None or not api.answered:
        return
    present = {canonical_model_name(m) for m in api.models}
    missing = [m for m in expect.required_models if canonical_model_name(m) not in present]
    if not missing:
        return
    outside = case.failed_checks(FailureClass.MODEL_MISSING)
    yield Hit(
        title=f"required model(s) missing: {', '.join(missing)}",
        cause="the models were deleted, or the models role has not run since they were added "
        "to required_models",
        evidence=(
            f"inventory: required_models: {', '.join(expect.required_models)}",
            f"on the host: /api/tags: {', '.join(api.models) or 'no models'}",
            *check_evidence(outside),
        ),
        fix=Fix(command=expect.deploy(case.host, "models"), where=Where.CONTROLLER),
        explains=tuple(c.check for c in outside),
    )


def _service(case: Case, unit_name: str, wanted: bool, what: str, role: str) -> Iterator[Hit]:
    unit = case.unit(unit_name)
    if case.expect is None or not wanted or unit is None:
        return
    if not unit.installed:
        yield Hit(
            title=f"{what} is not installed ({unit_name})",
            cause=f"the inventory enables it, but the {role} role has not run on this host",
            evidence=(f"systemctl: {unit_name}: {unit.load_state}",),
            fix=Fix(command=case.expect.deploy(case.host, role), where=Where.CONTROLLER),
            explains=_REACHING if unit_name != MONITOR_UNIT else (),
        )
    elif not unit.active:
        yield Hit(
            title=f"{what} is not running ({unit.active_state})",
            cause="it was stopped, or it exited: its journal lines say why",
            evidence=(*unit_evidence(unit), *check_evidence(case.failed_checks())),
            fix=_restart(unit_name),
            explains=_REACHING if unit_name != MONITOR_UNIT else (),
        )


def caddy_down(case: Case) -> Iterator[Hit]:
    facts = case.facts
    if facts is not None and facts.caddy is not None and facts.caddy.config_valid is False:
        return  # caddy-config-invalid says it, with the right fix
    yield from _service(case, CADDY_UNIT, bool(case.expect and case.expect.caddy), "Caddy", "caddy")


def caddy_config_invalid(case: Case) -> Iterator[Hit]:
    caddy = case.facts.caddy if case.facts is not None else None
    if caddy is None or caddy.config_valid is not False:
        return
    fix = (
        Fix(command=case.expect.deploy(case.host, "caddy"), where=Where.CONTROLLER)
        if case.expect is not None
        else None
    )
    yield Hit(
        title="Caddy's configuration does not validate",
        cause="/etc/caddy/Caddyfile was edited by hand or half-written; Caddy keeps serving "
        "the old config until a restart, then fails",
        evidence=(f"caddy validate: {caddy.validate_error or 'failed'}",),
        fix=fix,
        explains=_REACHING,
    )


def gateway_down(case: Case) -> Iterator[Hit]:
    wanted = bool(case.expect and case.expect.gateway)
    yield from _service(case, GATEWAY_UNIT, wanted, "The gateway", "services")


def monitor_down(case: Case) -> Iterator[Hit]:
    for hit in _service(
        case, MONITOR_UNIT, bool(case.expect and case.expect.monitor), "The monitor", "services"
    ):
        yield Hit(
            title=hit.title,
            cause=hit.cause,
            evidence=hit.evidence,
            fix=hit.fix,
            severity=Severity.WARNING,  # serving goes on; watching does not
        )
