"""Rules on the host itself: reaching it, what could not be read, disk, clock, certificates."""

from __future__ import annotations

from collections.abc import Iterator

from ollama_fleet.checks.model import FailureClass
from ollama_fleet.diagnose.case import CADDY_UNIT, Case, check_evidence
from ollama_fleet.diagnose.findings import Fix, Severity, Where
from ollama_fleet.diagnose.rules.base import Hit

LOW_SPACE = 0.10  # free share of the models' file system that warns
VERY_LOW_SPACE = 0.02  # ... and that is critical: the next pull fails
LOW_INODES = 0.05
CLOCK_WARN_S = 5.0
CLOCK_CRITICAL_S = 60.0  # TLS validity and ACME start to fail
CERT_WARN_DAYS = 14
LOCAL_CA = "Caddy Local Authority"  # the issuer of `tls internal` certificates


def unreachable(case: Case) -> Iterator[Hit]:
    if not case.inside or case.unreachable is None:
        return
    yield Hit(
        title="the host cannot be reached over SSH",
        cause=case.unreachable,
        evidence=(f"ssh: {case.unreachable}", *check_evidence(case.failed_checks())),
        explains=tuple(
            c.check
            for c in case.failed_checks(
                FailureClass.DNS, FailureClass.REFUSED, FailureClass.CONNECT_TIMEOUT
            )
        ),
    )


def facts_unread(case: Case) -> Iterator[Hit]:
    if not case.inside or case.probe_error is None:
        return
    yield Hit(
        title="SSH got in, but the facts could not be read",
        cause="the read-only script did not run to its end: sudo asks for a password "
        "(_sudo_password), /tmp is full or read-only, or the host took longer than its bound",
        evidence=(f"facts script: {case.probe_error}",),
    )


def blind_spots(case: Case) -> Iterator[Hit]:
    """What could not be seen: a missing tool is a finding, never a crash."""
    facts = case.facts
    if facts is None:
        return
    if facts.root is False:
        yield Hit(
            title="facts read without root: journals, nft and process names are hidden",
            cause="the SSH user is not root and does not use sudo",
            evidence=("id -u: not 0",),
            fix=None,
            severity=Severity.INFO,
        )
    no_gpu = facts.gpu is not None and not facts.gpu.nvidia_devices
    for tool in facts.missing_tools:
        if (tool == "nvidia-smi" and no_gpu) or tool == "caddy":
            continue  # no NVIDIA device: nothing to see; no Caddy: caddy-down says it
        yield Hit(
            title=f"{tool} is not installed: what it shows is not checked",
            cause=f"the host lacks {tool}",
            evidence=tuple(f"{name}: {why}" for name, why in facts.gaps.items() if tool in why)
            or (f"{tool}: not found",),
        )


def models_dir(case: Case) -> Iterator[Hit]:
    facts = case.facts
    found = facts.models_dir if facts is not None else None
    unit = case.unit("ollama.service")
    if found is None or unit is None or not unit.installed:
        return
    if not found.exists:
        yield Hit(
            title=f"the models directory {found.path} does not exist",
            cause="OLLAMA_MODELS names a directory that is not there: pulls fail",
            evidence=(f"stat {found.path}: no such directory",),
            fix=Fix(command=case.expect.deploy(case.host, "ollama"), where=Where.CONTROLLER)
            if case.expect
            else None,
            severity=Severity.CRITICAL,
        )
        return
    if found.owner is not None and found.owner != "ollama":
        yield Hit(
            title=f"the models directory {found.path} belongs to {found.owner}, not ollama",
            cause="Ollama runs as the ollama user and cannot write its models there",
            evidence=(f"stat {found.path}: {found.owner}:{found.group} {found.mode}",),
            fix=Fix(command=f"chown -R ollama:ollama {found.path}", where=Where.HOST),
            severity=Severity.CRITICAL,
        )
    if found.total_bytes and found.free_bytes is not None:
        share = found.free_bytes / found.total_bytes
        if share < LOW_SPACE:
            yield Hit(
                title=f"the models' file system has {_size(found.free_bytes)} free "
                f"({share:.0%} of {_size(found.total_bytes)})",
                cause="the next pull can fail half-way; remove models that are not in "
                "required_models (`ollama rm NAME`, or models_prune) or grow the file system",
                evidence=(f"df {found.path}: {_size(found.free_bytes)} free on {found.mount}",),
                severity=Severity.CRITICAL if share < VERY_LOW_SPACE else Severity.WARNING,
            )
    if found.total_inodes and found.free_inodes is not None:
        share = found.free_inodes / found.total_inodes
        if share < LOW_INODES:
            yield Hit(
                title=f"the models' file system has {share:.0%} of its inodes left",
                cause="many small files fill the inode table: new files cannot be made",
                evidence=(f"df -i {found.path}: {found.free_inodes} free",),
            )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def clock(case: Case) -> Iterator[Hit]:
    found = case.facts.clock if case.facts is not None else None
    if found is None or found.offset_s is None or abs(found.offset_s) < CLOCK_WARN_S:
        return
    offset = found.offset_s
    yield Hit(
        title=f"the host's clock is {abs(offset):.0f} s {'ahead' if offset > 0 else 'behind'}",
        cause="a wrong clock breaks TLS (certificates look expired or not yet valid) and "
        "ACME; NTP is "
        + {True: "synchronized yet wrong", False: "not synchronized", None: "unknown"}[
            found.ntp_synchronized
        ],
        evidence=(f"date on the host minus the controller's: {offset:+.1f} s",),
        fix=Fix(
            command="timedatectl set-ntp true",
            where=Where.HOST,
            note="needs an NTP client (systemd-timesyncd or chrony)",
        ),
        severity=Severity.CRITICAL if abs(offset) >= CLOCK_CRITICAL_S else Severity.WARNING,
    )


def certificates(case: Case) -> Iterator[Hit]:
    """Caddy's certificates near expiry, joined with its ACME errors and the TLS check."""
    caddy = case.facts.caddy if case.facts is not None else None
    outside = [c for c in case.failed_checks(FailureClass.TLS_EXPIRED) if c.check == "tls"]
    soon = [
        cert
        for cert in (caddy.certificates if caddy else ())
        # Caddy's own CA issues 12-hour certificates and renews them itself: never "soon"
        if (cert.not_after - case.now).days < CERT_WARN_DAYS and LOCAL_CA not in cert.issuer
    ]
    errors = caddy.acme_errors if caddy else ()
    if not soon and not outside:
        return
    if not errors and not soon:
        return  # an expiring certificate Caddy does not manage: the tls check says it
    cause = (
        "Caddy tries to renew and fails: the ACME errors say why (port 80 unreachable for the "
        "HTTP challenge, DNS pointing elsewhere, a rate limit)"
        if errors
        else "Caddy has not renewed it yet: it renews 30 days ahead, so it should have tried"
    )
    yield Hit(
        title="the TLS certificate expires soon" + (" and Caddy cannot renew it" if errors else ""),
        cause=cause,
        evidence=(
            *(
                f"Caddy storage: {', '.join(c.names) or c.path}: expires "
                f"{c.not_after:%Y-%m-%d} ({(c.not_after - case.now).days} days)"
                for c in soon
            ),
            *(f"journal ({CADDY_UNIT}): {line}" for line in errors[-3:]),
            *check_evidence(outside),
        ),
        fix=Fix(
            command=f"systemctl reload {CADDY_UNIT}",
            where=Where.HOST,
            note="retries at once, after what the errors name is fixed",
        ),
        severity=Severity.CRITICAL if outside else Severity.WARNING,
        explains=tuple(c.check for c in outside),
    )
