"""Rules on what is reachable: the firewall, listening ports, the proxy's Host header, DNS."""

from __future__ import annotations

from collections.abc import Iterator

from ollama_fleet.checks.model import FailureClass, Finding
from ollama_fleet.diagnose.case import FIREWALL_UNIT, Case, check_evidence, yes
from ollama_fleet.diagnose.findings import Fix, Severity, Where
from ollama_fleet.diagnose.rules.base import Hit

ALWAYS_OPEN = frozenset({22, 80, 443})  # SSH and the web ports: open by design


def _firewall_fix(case: Case) -> Fix | None:
    if case.expect is not None and not case.expect.firewall:
        return None  # firewall_enabled: false: the deploy would not touch it
    unit = case.unit(FIREWALL_UNIT)
    if unit is not None and unit.installed:
        return Fix(
            command=f"systemctl restart {FIREWALL_UNIT}",
            where=Where.HOST,
            note="loads the firewall role's rules again (/etc/ollama-fleet/nftables.conf)",
        )
    if case.expect is None:
        return None
    return Fix(command=case.expect.deploy(case.host, "firewall"), where=Where.CONTROLLER)


def firewall_missing(case: Case) -> Iterator[Hit]:
    facts, expect = case.facts, case.expect
    if facts is None or facts.firewall is None or expect is None or not expect.firewall:
        return
    if facts.firewall.ours:
        return
    yield Hit(
        title="the firewall's table (inet ollama_fleet) is not loaded",
        cause="the ruleset was flushed (`nft flush ruleset`, a package's firewall script) or "
        "the firewall role never ran: only the other tables, if any, filter incoming traffic",
        evidence=(
            f"nft: tables: {', '.join(facts.firewall.tables) or 'none'}",
            f"nft: incoming traffic dropped by default: {yes(facts.firewall.input_drops)}",
        ),
        fix=_firewall_fix(case),
    )


def _exposed(case: Case, check: str) -> list[Finding]:
    """The outside check's EXPOSED findings (exposure: a closed port open; auth: a write
    endpoint that is not refused)."""
    return [
        f
        for c in case.checks
        if c.check == check
        for f in c.findings
        if f.failure_class is FailureClass.EXPOSED
    ]


def ollama_exposed(case: Case) -> Iterator[Hit]:
    """Ollama's port reachable: seen from the controller, or listening wide with no filter."""
    facts, port = case.facts, case.expect.ollama_port if case.expect else 11434
    outside = _exposed(case, "exposure")
    firewall = facts.firewall if facts is not None else None
    listeners = facts.listeners if facts is not None and facts.listeners is not None else ()
    wide = [item for item in listeners if item.port == port and not item.loopback]
    admitted = firewall is not None and firewall.admits(port)
    if not outside and not (wide and admitted):
        return
    evidence = [f"outside: exposure: {f.message}" for f in outside]
    if wide:
        evidence.append("ss: Ollama listens on " + ", ".join(f"{i.address}:{i.port}" for i in wide))
    if firewall is not None:
        evidence.append(
            f"nft: incoming traffic dropped by default: {yes(firewall.input_drops)}"
            f"; port {port} admitted: {yes(admitted)}"
        )
    unfiltered = firewall is not None and not firewall.input_drops
    why = ["Ollama has no auth: anyone who reaches it can pull, delete and run models."]
    if unfiltered:
        why.append("No firewall drops incoming traffic.")
    if wide:
        why.append("Ollama listens on every address (ollama_host).")
    if not wide and not unfiltered:
        why.append(
            "A port that must be closed answers from here"
            + (
                ": the input chain drops it, so the way in is another path: a container's "
                "port forward (Docker's DNAT goes through forward, not input), IPv6, or a "
                "proxy on the host"
                if firewall is not None
                else ": a firewall or proxy opens it."
            )
        )
    fix = None
    if unfiltered:
        fix = _firewall_fix(case)
    elif wide and case.expect is not None:
        fix = Fix(
            command=case.expect.deploy(case.host, "ollama", "firewall"), where=Where.CONTROLLER
        )
    title = (
        f"Ollama's port {port} is reachable from outside"
        if wide or facts is not None
        else "a port that must be closed is reachable: " + ", ".join(f.message for f in outside)
    )
    yield Hit(
        title=title,
        cause=" ".join(why),
        evidence=tuple(evidence),
        fix=fix,
        explains=("exposure",) if outside else (),
    )


def write_endpoints_open(case: Case) -> Iterator[Hit]:
    """Ollama's write endpoints answer through the public URL instead of being refused."""
    passed = _exposed(case, "auth")
    if not passed:
        return
    caddy = case.expect is not None and case.expect.caddy
    yield Hit(
        title="Ollama's write endpoints pass the proxy: "
        + "; ".join(f.message for f in passed[:2]),
        cause="Ollama has no auth: whoever reaches the public URL can pull, delete and "
        "create models; the proxy in front must refuse them with 403 (the caddy role does, "
        "unless caddy_open_admin_endpoints is set)",
        evidence=tuple(f"outside: auth: {f.message}" for f in passed),
        fix=Fix(command=case.expect.deploy(case.host, "caddy"), where=Where.CONTROLLER)
        if caddy and case.expect is not None
        else None,
        explains=("auth",),
    )


def ports_open(case: Case) -> Iterator[Hit]:
    """Other services listening on every address with nothing in front of them."""
    facts = case.facts
    if facts is None or facts.firewall is None or facts.listeners is None:
        return
    ollama_port = case.expect.ollama_port if case.expect else 11434
    on_purpose = set(case.expect.open_on_purpose) if case.expect else set()
    open_ports = sorted(
        {
            (item.port, item.process or "?")
            for item in facts.listeners
            if not item.loopback
            and item.port not in ALWAYS_OPEN | on_purpose
            and item.port != ollama_port
            and facts.firewall.admits(item.port)
        }
    )
    if not open_ports:
        return
    yield Hit(
        title="port(s) open to everyone: "
        + ", ".join(f"{port} ({process})" for port, process in open_ports),
        cause="these services listen on every address and the firewall admits them from "
        "anywhere; a firewall role host admits only SSH, 80 and 443 (plus "
        "firewall_extra_tcp_ports)",
        evidence=(
            *(f"ss: {process} listens on port {port}" for port, process in open_ports),
            f"nft: tables: {', '.join(facts.firewall.tables) or 'none'}",
        ),
        fix=_firewall_fix(case),
    )


def host_header(case: Case) -> Iterator[Hit]:
    """A 403 through Caddy because Ollama on loopback sees the public Host header."""
    facts = case.facts
    caddy = facts.caddy if facts is not None else None
    if caddy is None:
        return
    port = case.expect.ollama_port if case.expect else 11434
    to_ollama = [u for u in caddy.unrewritten if u.rsplit(":", 1)[-1] == str(port)]
    if not to_ollama:
        return
    refused = [
        c
        for c in case.failed_checks(FailureClass.AUTH)
        if any("403" in f.message for f in c.findings)
    ]
    yield Hit(
        title="Caddy passes the public Host header on to Ollama"
        + (": requests get 403" if refused else ""),
        cause="Ollama bound to 127.0.0.1 answers 403 to a Host header that is not local; the "
        "reverse_proxy needs `header_up Host localhost:11434`",
        evidence=(
            f"Caddyfile: reverse_proxy {', '.join(to_ollama)} without header_up Host",
            *check_evidence(refused),
        ),
        fix=Fix(command=case.expect.deploy(case.host, "caddy"), where=Where.CONTROLLER)
        if case.expect
        else None,
        severity=Severity.CRITICAL if refused else Severity.WARNING,
        explains=tuple(c.check for c in refused),
    )


def dns_disagrees(case: Case) -> Iterator[Hit]:
    dns = case.facts.dns if case.facts is not None else None
    if dns is None:
        return
    if dns.from_controller == () or (dns.from_controller is None and dns.controller_error):
        yield Hit(
            title=f"{dns.name} does not resolve from here",
            cause="the public name has no DNS record (or the controller's resolver fails)",
            evidence=(f"controller: {dns.name}: {dns.controller_error or 'no address'}",),
            severity=Severity.CRITICAL,
            explains=tuple(c.check for c in case.failed_checks(FailureClass.DNS)),
        )
        return
    if not dns.from_host or not dns.from_controller:
        return
    if set(dns.from_host) & set(dns.from_controller):
        return
    yield Hit(
        title=f"{dns.name} resolves differently on the host and here",
        cause="split DNS, a stale record or /etc/hosts entry: clients may reach another "
        "machine, and an ACME HTTP challenge can fail",
        evidence=(
            f"on the host: {dns.name}: {', '.join(dns.from_host)}",
            f"controller: {dns.name}: {', '.join(dns.from_controller)}",
        ),
    )
