"""Diagnose's inside view: one read-only script per host, run by the pyinfra child, in parallel.

Nothing is planned or changed: the child connects, runs each host's script as a fact (with the
host's sudo settings), and sends its whole output back as a "probe" event.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from ollama_fleet.controller.child import Event, run_runner
from ollama_fleet.controller.plan import host_entry
from ollama_fleet.errors import FleetError
from ollama_fleet.inventory import Host

PROBE_TIMEOUT_S = 90


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeOutcome:
    """What came back from one host: the script's output, or why there is none."""

    output: str | None
    error: str | None = None
    unreachable: bool = False  # SSH never got in (error says why, in one line)
    started: float = 0.0  # time.time() before the child started
    finished: float = 0.0  # when this host's output arrived


def probe_hosts(
    hosts: Sequence[Host],
    scripts: Mapping[str, str],
    *,
    secrets: Iterable[str] = (),
    log: IO[str] | None = None,
    verbose: bool = False,
) -> dict[str, ProbeOutcome]:
    """{host name: ProbeOutcome} for every host in `scripts`."""
    chosen = [h for h in hosts if h.name in scripts]
    if not chosen:
        return {}
    secrets = tuple(secrets)
    spec = {
        "hosts": [host_entry(h, {}) for h in chosen],
        "probe": {h.name: scripts[h.name] for h in chosen},
        "probe_timeout": PROBE_TIMEOUT_S,
        "dry": True,
        "verbose": verbose,
        "redact": sorted(secrets),
    }
    started = time.time()
    found: dict[str, ProbeOutcome] = {}
    connect_errors: dict[str, str] = {}

    def keep(event: Event) -> None:
        kind, name = event.get("event"), str(event.get("host"))
        if kind == "connect" and not event.get("ok", False):
            connect_errors[name] = str(event.get("error") or "cannot connect")
        elif kind == "probe":
            found[name] = ProbeOutcome(
                output=event.get("output") if event.get("ok") else None,
                error=None if event.get("ok") else str(event.get("error")),
                started=started,
                finished=time.time(),
            )

    try:
        run_runner(spec, on_event=keep, log=log, secrets=secrets)
    except FleetError as exc:  # the child itself died: every host without an answer says so
        for host in chosen:
            found.setdefault(host.name, ProbeOutcome(output=None, error=str(exc)))
    for host in chosen:
        if host.name not in found:
            why = connect_errors.get(host.name)
            found[host.name] = ProbeOutcome(
                output=None,
                error=why or "no answer from the host",
                unreachable=why is not None,
                started=started,
                finished=time.time(),
            )
    return found
