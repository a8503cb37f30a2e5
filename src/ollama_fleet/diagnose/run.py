"""Diagnose a set of hosts: the outside checks and the inside facts at once, then the rules.

The inside view comes through `read_inside` (the CLI passes the controller's pyinfra child);
this module never touches SSH itself, so it runs the same against a test's reader.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from ollama_fleet.checks.model import CheckResult, RunContext, Target
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.settings import ProbeSettings
from ollama_fleet.diagnose.case import Case
from ollama_fleet.diagnose.findings import Diagnosis, HostReport
from ollama_fleet.diagnose.gather import host_facts
from ollama_fleet.diagnose.probe import is_address, probe_script, split_outputs
from ollama_fleet.diagnose.rules import evaluate
from ollama_fleet.diagnose.subjects import Subject


class InsideOutcome(Protocol):
    """One host's answer to its script (controller.probe.ProbeOutcome is one)."""

    @property
    def output(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def unreachable(self) -> bool: ...
    @property
    def started(self) -> float: ...
    @property
    def finished(self) -> float: ...


InsideReader = Callable[[Mapping[str, str]], Mapping[str, InsideOutcome]]
Lookup = tuple[tuple[str, ...] | None, str | None]


def diagnose(
    subjects: Sequence[Subject],
    *,
    read_inside: InsideReader | None,
    settings: ProbeSettings | None = None,
    context: RunContext | None = None,
    progress: Callable[[str], None] = lambda line: None,
    redact: Callable[[str], str] = lambda text: text,
) -> Diagnosis:
    """Every subject diagnosed; the inside view only for inventory hosts (and a reader)."""
    started_at = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    targets = [s.target for s in subjects if s.target is not None]
    inside = {
        s.name: probe_script(public_name=s.public_name)
        for s in subjects
        if s.host is not None and read_inside is not None
    }
    names = {s.public_name for s in subjects if s.public_name and s.name in inside}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outside = pool.submit(_outside, targets, settings)
        lookups = {name: pool.submit(_resolve, name) for name in names if not is_address(name)}
        if inside and read_inside is not None:
            progress(f"reading facts on {len(inside)} host(s) over SSH...")
            answers = read_inside(inside)
        else:
            answers = {}
        checks = outside.result()
        resolved = {name: future.result() for name, future in lookups.items()}
    reports = []
    for subject in subjects:
        answer = answers.get(subject.name)
        facts = None
        if answer is not None and answer.output is not None:
            addresses, error = resolved.get(subject.public_name or "", (None, None))
            outputs = {  # before parsing: a cut-off line must not keep half of a secret
                name: replace(found, stdout=redact(found.stdout), stderr=redact(found.stderr))
                for name, found in split_outputs(answer.output).items()
            }
            facts = host_facts(
                outputs,
                started=answer.started,
                finished=answer.finished,
                public_name=subject.public_name,
                controller_addresses=addresses,
                controller_error=error,
            )
        unreachable = probe_error = None
        if answer is not None and answer.output is None:
            if answer.unreachable:
                unreachable = redact(answer.error or "no answer")
            else:  # SSH got in, the script did not run: sudo, a full /tmp, a time out
                probe_error = redact(answer.error or "no output")
        case = Case(
            host=subject.name,
            expect=subject.expect,
            facts=facts,
            inside=subject.name in inside,
            unreachable=unreachable,
            probe_error=probe_error,
            checks=tuple(c for c in checks if c.target == subject.name),
        )
        reports.append(
            HostReport(
                name=subject.name,
                url=subject.target.url if subject.target is not None else None,
                inside=case.inside,
                facts=facts,
                unreachable=unreachable,
                checks=case.checks,
                findings=evaluate(case),
            )
        )
    return Diagnosis(
        hosts=tuple(reports),
        started_at=started_at.isoformat().replace("+00:00", "Z"),
        duration_ms=(time.monotonic() - clock) * 1000,
        context=context or RunContext(),
    )


def _outside(targets: Sequence[Target], settings: ProbeSettings | None) -> tuple[CheckResult, ...]:
    if not targets:
        return ()
    run = asyncio.run(run_checks(targets, settings=settings))
    return run.results


def _resolve(name: str) -> Lookup:
    """The public name's addresses as the controller sees them, or why there are none."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return (), exc.strerror or str(exc)
    except OSError as exc:
        return None, str(exc)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos)), None
