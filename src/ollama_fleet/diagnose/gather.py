"""HostFacts from the probe's outputs: the one entry point that runs every parser.

Pure and total: whatever came back (nothing, garbage, a half), the answer is a HostFacts whose
missing facts are None or empty, each with its reason in `gaps`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from . import parse_caddy, parse_gpu, parse_host, parse_network, parse_ollama, parse_units
from .facts import HostFacts, Unit
from .probe import COMMANDS, DEFAULT_MODELS_DIR, UNITS, Output

# the program each output needs, named in gaps and missing_tools
PROGRAMS: Mapping[str, str] = {
    "os_release": "cat",
    "uname": "uname",
    "uid": "id",
    "units": "systemctl",
    "journal": "journalctl",
    "sockets": "ss",
    "ruleset": "nft",
    "api_version": "curl",
    "api_tags": "curl",
    "api_ps": "curl",
    "models_dir": "stat",
    "models_df": "df",
    "models_dfi": "df",
    "nvidia_smi": "nvidia-smi",
    "nvidia_module_file": "modinfo",
    "caddy_validate": "caddy",
    "clock": "date",
    "ntp": "timedatectl",
    "dns": "getent",
}
_NOT_FOUND = re.compile(r"^sh: \d+: (?P<program>[^:\s]+): not found", re.M)


def host_facts(
    outputs: Mapping[str, Output],
    *,
    started: float,
    finished: float,
    public_name: str | None = None,
    controller_addresses: tuple[str, ...] | None = None,
    controller_error: str | None = None,
) -> HostFacts:
    """Every fact the outputs tell about one host, and why the others are missing."""
    gaps: dict[str, str] = {}

    def reason(name: str) -> str:
        return parse_host.failure_reason(outputs.get(name), program=PROGRAMS.get(name, name))

    os_name = parse_host.os_name(outputs.get("os_release"))
    if os_name is None:
        gaps["os"] = reason("os_release")
    kernel, arch = parse_host.kernel_and_arch(outputs.get("uname"))
    if kernel is None:
        gaps["kernel"] = reason("uname")
    root = parse_host.is_root(outputs.get("uid"))
    if root is None:
        gaps["root"] = reason("uid")

    units = _units(outputs, gaps)
    ollama_unit = units.get("ollama.service")

    sockets = outputs.get("sockets")
    listeners = parse_network.listeners(sockets.stdout) if sockets and sockets.ok else None
    if listeners is None:
        gaps["listeners"] = reason("sockets")

    firewall = None
    ruleset = outputs.get("ruleset")
    if ruleset is not None and ruleset.ok:
        reading = parse_network.firewall(ruleset.stdout)
        firewall = reading.firewall
        if reading.notes:
            key = "firewall" if firewall is None else "firewall.accepted_tcp"
            gaps[key] = "nft: " + "; ".join(reading.notes)
    else:
        gaps["firewall"] = reason("ruleset")

    release = parse_ollama.release(outputs.get("ollama_release"))
    if release is None:
        gaps["ollama_release"] = "no /opt/ollama/RELEASE (Ollama not installed by ollama-fleet)"

    ollama_api = None
    if outputs.get("api_version") is not None:
        ollama_api, api_gaps = parse_ollama.api(
            url=_asked(outputs.get("ollama_url")) or parse_ollama.api_url(ollama_unit),
            version=outputs.get("api_version"),
            tags=outputs.get("api_tags"),
            ps=outputs.get("api_ps"),
        )
        gaps.update(api_gaps)
    else:
        gaps["ollama_api"] = reason("api_version")

    default_models = (
        ollama_unit.environment.get("OLLAMA_MODELS", "") if ollama_unit is not None else ""
    ) or DEFAULT_MODELS_DIR
    models_dir, models_gap = parse_ollama.models_dir(outputs, default_path=default_models)
    if models_gap is not None:
        gaps["models_dir"] = models_gap

    gpu = parse_gpu.gpu_facts(outputs)
    if gpu is None:
        gaps["gpu"] = reason("pci")

    caddy = None
    if "caddy.service" in units or outputs.get("caddy_validate") is not None:
        caddy, caddy_gaps = parse_caddy.caddy_facts(outputs, unit=units.get("caddy.service"))
        gaps.update(caddy_gaps)
    else:
        gaps["caddy"] = reason("caddy_validate")

    clock = parse_host.clock(
        outputs.get("clock"), outputs.get("ntp"), started=started, finished=finished
    )
    if clock is None or clock.offset_s is None:
        gaps["clock"] = reason("clock")
    if clock is None or clock.ntp_synchronized is None:
        gaps["ntp"] = reason("ntp")

    dns = parse_host.dns(
        outputs.get("dns"),
        public_name=public_name,
        controller_addresses=controller_addresses,
        controller_error=controller_error,
    )
    if dns is not None and dns.from_host is None and dns.host_error:
        gaps["dns"] = dns.host_error

    return HostFacts(
        os=os_name,
        kernel=kernel,
        arch=arch,
        root=root,
        units=units,
        listeners=listeners,
        firewall=firewall,
        ollama_release=release,
        ollama_api=ollama_api,
        models_dir=models_dir,
        gpu=gpu,
        caddy=caddy,
        clock=clock,
        dns=dns,
        missing_tools=missing_tools(outputs),
        gaps=gaps,
    )


def _units(outputs: Mapping[str, Output], gaps: dict[str, str]) -> dict[str, Unit]:
    show = outputs.get("units")
    if show is None or not show.ok:
        gaps["units"] = parse_host.failure_reason(show, program="systemctl")
        return {}
    units = parse_units.parse_show(show.stdout)
    if not units:
        gaps["units"] = "systemctl: no unit in its output"
    for name in UNITS:
        unit = units.get(name)
        journal = outputs.get(f"journal:{name}")
        if unit is None:
            continue
        if journal is not None and journal.ok:
            units[name] = parse_units.with_journal(unit, journal.stdout)
        elif unit.installed and "journal" not in gaps:
            gaps["journal"] = parse_host.failure_reason(journal, program="journalctl")
    return units


def missing_tools(outputs: Mapping[str, Output]) -> tuple[str, ...]:
    """The programs the host lacks (exit status 127), in the probe's order, each once."""
    found: dict[str, None] = {}
    names = [*(n for n in COMMANDS if n in outputs), *(n for n in outputs if n not in COMMANDS)]
    for name in names:
        output = outputs[name]
        if not output.missing:
            continue
        named = _NOT_FOUND.search(output.stderr)
        program = named.group("program") if named else PROGRAMS.get(name.split(":")[0], "")
        if program:
            found.setdefault(program, None)
    return tuple(found)


def _asked(output: Output | None) -> str | None:
    """The URL the probe's prologue chose for Ollama's API, as it printed it."""
    text = output.stdout.strip() if output is not None and output.ok else ""
    return text if text.startswith(("http://", "https://")) else None
