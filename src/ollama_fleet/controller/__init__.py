"""`ollama-fleet deploy` on the controller: plan, run pyinfra in a child, follow it, check.

The controller's side of a deploy, one module per step: plan.py chooses and validates hosts
and prepares what they need (release.py: the Ollama archive and its checksum; bundle.py: this
project's services), child.py runs pyinfra in a child process (ollama_fleet.deploys.runner)
and tallies its events into outcome.py's records, after.py runs the checks on the hosts that
changed. Not to be confused with ollama_fleet.deploys, the pyinfra roles that run in that
child. Nothing here imports pyinfra; every decrypted vault value is redacted from what the
child prints and from what these modules show.
"""

from __future__ import annotations

from ollama_fleet.controller.after import (
    CADDY_LOCAL_ROOT,
    check_hosts,
    read_host_files,
    trust_caddy_roots,
    write_retry_file,
)
from ollama_fleet.controller.bundle import Bundle, build_bundle, service_requirements
from ollama_fleet.controller.child import Event, run_runner
from ollama_fleet.controller.outcome import DeployFailed, DeployResult, HostOutcome
from ollama_fleet.controller.plan import (
    PREPARED_KEY,
    DeployOptions,
    Plan,
    hosts_to_check,
    make_plan,
    select_roles,
)
from ollama_fleet.controller.release import (
    ARCHIVES,
    SIMULATOR,
    Release,
    file_sha256,
    resolve_release,
    sha256_from_sums,
)
from ollama_fleet.hostpatterns import select_hosts

__all__ = [
    "ARCHIVES",
    "CADDY_LOCAL_ROOT",
    "PREPARED_KEY",
    "SIMULATOR",
    "Bundle",
    "DeployFailed",
    "DeployOptions",
    "DeployResult",
    "Event",
    "HostOutcome",
    "Plan",
    "Release",
    "build_bundle",
    "check_hosts",
    "file_sha256",
    "hosts_to_check",
    "make_plan",
    "read_host_files",
    "resolve_release",
    "run_runner",
    "select_hosts",
    "select_roles",
    "service_requirements",
    "sha256_from_sums",
    "trust_caddy_roots",
    "write_retry_file",
]
