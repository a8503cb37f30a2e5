"""Diagnose: outside checks joined with read-only facts from each host into findings with fixes.

    facts = gather.host_facts(probe.split_outputs(output), started=..., finished=...)
    findings = rules.evaluate(Case(host="gpu-1", expect=..., facts=facts, checks=...))

The script that reads the facts is `probe.probe_script`; the pyinfra child runs it (see
controller.probe); nothing here imports pyinfra or touches SSH.
"""

from ollama_fleet.diagnose.case import Case, Expect
from ollama_fleet.diagnose.findings import Diagnosis, Finding, Fix, HostReport, Severity, Where

__all__ = ["Case", "Diagnosis", "Expect", "Finding", "Fix", "HostReport", "Severity", "Where"]
