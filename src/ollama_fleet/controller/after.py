"""After the deploy: the checks on the hosts that changed, trusting each host's own Caddy root."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from ollama_fleet import hostvars
from ollama_fleet.controller.child import Event, run_runner
from ollama_fleet.controller.outcome import DeployResult
from ollama_fleet.controller.plan import Plan
from ollama_fleet.errors import ConfigError
from ollama_fleet.fsutil import atomic_write
from ollama_fleet.redact import escaped_forms, redactor

# Where Debian's caddy (user caddy, home /var/lib/caddy) keeps the root of `tls internal`.
CADDY_LOCAL_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


def read_host_files(
    plan: Plan, names: Sequence[str], paths: Sequence[str], *, log: IO[str] | None = None
) -> dict[str, dict[str, str | None]]:
    """{host: {path: text or None}} read over SSH by the pyinfra child; nothing is changed."""
    entries = [e for e in plan.spec["hosts"] if e["name"] in set(names)]
    if not entries or not paths:
        return {}
    spec = {**plan.spec, "hosts": entries, "read": list(paths), "dry": True}
    found: dict[str, dict[str, str | None]] = {}

    def keep(event: Event) -> None:
        if event.get("event") == "file":
            found.setdefault(str(event["host"]), {})[str(event["path"])] = event.get("text")

    run_runner(spec, on_event=keep, log=log, secrets=plan.secrets)
    return found


def trust_caddy_roots(plan: Plan, targets: Sequence[Any]) -> list[Any]:
    """Targets of `caddy_tls: internal` hosts verified against that host's own Caddy root.

    Caddy's local CA lives on the host; it is fetched after the deploy (it may have just been
    made), kept under the cache folder, and named as the target's CA, so the checks verify
    the chain and the name instead of turning verification off. A target that names its
    own tls_ca_file keeps it.
    """

    hosts = {h.name: h for h in plan.hosts}
    internal = [
        t.name
        for t in targets
        if t.tls.ca_file is None
        and t.name in hosts
        and hostvars.enabled(hosts[t.name].vars, "caddy")
        and hostvars.resolved(hosts[t.name].vars, "caddy")["caddy_tls"] == "internal"
    ]
    if not internal:
        return list(targets)
    roots = read_host_files(plan, internal, [CADDY_LOCAL_ROOT])
    trusted = []
    for target in targets:
        pem = roots.get(target.name, {}).get(CADDY_LOCAL_ROOT)
        if target.name in internal and pem and "BEGIN CERTIFICATE" in pem:
            path = plan.cache_dir / "caddy-roots" / f"{_safe_name(target.name)}.pem"
            atomic_write(path, pem, mode=0o644, what="Caddy root certificate")
            target = replace(target, tls=replace(target.tls, ca_file=str(path)))
        trusted.append(target)
    return trusted


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def check_hosts(plan: Plan, names: Sequence[str], report: Path, *, command: str = "") -> Any:
    """Run every check on `names` (hosts with a public_url); write the HTML report atomically."""
    import asyncio

    from ollama_fleet.checks.model import RunContext
    from ollama_fleet.checks.reports import render_html
    from ollama_fleet.checks.runner import run_checks

    chosen = [t for t in plan.targets if t.name in set(names)]
    targets = trust_caddy_roots(plan, chosen)
    run = asyncio.run(run_checks(targets))
    context = RunContext.here(command=command, inventory=str(plan.inventory.path))
    run = replace(run, context=context)
    redact = redactor(escaped_forms(plan.secrets))
    atomic_write(report, redact(render_html(run)), what="report")
    return run


def write_retry_file(path: Path, result: DeployResult) -> Path | None:
    """The failed and unreachable hosts, one per line, for `--limit @FILE` (as Ansible's)."""
    names = [h.name for h in result.failed]
    if not names:
        return None
    try:
        atomic_write(path, "".join(f"{name}\n" for name in names), what="retry file")
    except ConfigError:
        return None  # a retry file is a convenience: the deploy's own error says what failed
    return path
