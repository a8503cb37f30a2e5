"""The pyinfra child process: the plan on its stdin, JSON events on its stdout, tallied here.

Nothing here imports pyinfra; every decrypted value is redacted from what the child prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from ollama_fleet.controller.outcome import DeployResult, HostOutcome
from ollama_fleet.errors import FleetError
from ollama_fleet.redact import redact_strings, redactor
from ollama_fleet.vault import NEW_PASSWORD_ENV, PASSWORD_ENV


@dataclass(slots=True)
class _Tally:
    ops: int = 0
    changed: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    error: str | None = None
    unreachable: bool = False


Event = dict[str, Any]


def run_runner(
    spec: Mapping[str, Any],
    *,
    on_event: Callable[[Event], None],
    log: IO[str] | None = None,
    secrets: Iterable[str] = (),
) -> DeployResult:
    """Run the pyinfra child with `spec` (sent on its stdin, never on disk) and tally its events."""
    redact = redactor(secrets)
    log = log or sys.stderr
    # The child gets the decrypted values it needs in the plan; it never needs the password.
    hidden = {PASSWORD_ENV, NEW_PASSWORD_ENV}
    env = {**{k: v for k, v in os.environ.items() if k not in hidden}, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(  # noqa: S603 - our own module, no shell
        [sys.executable, "-m", "ollama_fleet.deploys.runner"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdin and process.stdout and process.stderr

    def pump_log() -> None:
        assert process.stderr
        for line in process.stderr:
            log.write(redact(line))
            log.flush()

    pump = threading.Thread(target=pump_log, daemon=True)
    pump.start()
    process.stdin.write(json.dumps(spec))
    process.stdin.close()
    tallies: dict[str, _Tally] = {h["name"]: _Tally() for h in spec["hosts"]}
    finished = False
    for line in process.stdout:
        try:
            event = redact_strings(json.loads(line), redact)
        except ValueError:
            log.write(redact(line))
            continue
        _tally(tallies, event)
        finished = finished or event.get("event") == "done"
        on_event(event)
    code = process.wait()
    pump.join(timeout=5)
    process.stdout.close()
    process.stderr.close()
    if code not in (0, 1) or not finished:
        raise FleetError(
            f"the deploy process stopped unexpectedly (status {code}); see its log above"
        )
    return DeployResult(
        hosts=tuple(
            HostOutcome(
                name=n,
                ops=t.ops,
                changed=tuple(t.changed),
                error=t.error,
                planned=tuple(t.planned),
                unreachable=t.unreachable,
            )
            for n, t in tallies.items()
        ),
        dry=bool(spec.get("dry")),
    )


def _tally(tallies: dict[str, _Tally], event: Event) -> None:
    kind, name = event.get("event"), event.get("host")
    tally = tallies.get(str(name)) if name is not None else None
    if kind == "done":
        for failed in event.get("failed", []):
            if failed in tallies and tallies[failed].error is None:
                tallies[failed].error = event.get("error") or "failed"
        return
    if tally is None:
        return
    if kind == "op":
        tally.ops += 1
        if event.get("changed"):
            tally.changed.append(str(event["op"]))
        if not event.get("ok") and tally.error is None:
            detail = str(event.get("error") or "").strip()
            tally.error = f"{event['op']}: {detail}" if detail else str(event["op"])
    elif kind == "plan" and event.get("change"):
        tally.planned.append(str(event["op"]))
    elif kind in ("prepare_error", "connect") and not event.get("ok", False):
        tally.unreachable = tally.unreachable or (tally.error is None and kind == "connect")
        tally.error = tally.error or str(event.get("error"))
