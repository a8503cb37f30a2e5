"""Fact sets for the rule tests: a healthy deployed GPU host, and a way to break one part.

The healthy set mirrors what the lab VM reports (tests/data/diagnose/lab-healthy.json), with
one NVIDIA GPU added as nvidia-smi documents it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ollama_fleet.checks.model import CheckResult, FailureClass, fail, ok
from ollama_fleet.diagnose.case import Case, Expect
from ollama_fleet.diagnose.facts import (
    CaddyFacts,
    Certificate,
    Clock,
    Dns,
    Firewall,
    Gpu,
    GpuFacts,
    HostFacts,
    Listener,
    LoadedModel,
    ModelsDir,
    OllamaApi,
    Unit,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
HOST = "gpu-1"
INVENTORY = "inventories/prod.yml"
MODELS = ("llama3.2:1b", "qwen2.5:0.5b")
GIB = 1024**3


def unit(name: str, **changes: Any) -> Unit:
    base = Unit(
        name=name,
        load_state="loaded",
        active_state="active",
        sub_state="running",
        result="success",
        restarts=0,
        since=NOW - dt.timedelta(days=2),
        fragment=f"/etc/systemd/system/{name}",
    )
    return dataclasses.replace(base, **changes)


UNITS = (
    "ollama.service",
    "caddy.service",
    "ollama-fleet-gateway.service",
    "ollama-fleet-monitor.service",
    "ollama-fleet-firewall.service",
)


def healthy() -> HostFacts:
    return HostFacts(
        os="Debian GNU/Linux 12 (bookworm)",
        kernel="6.1.0-50-amd64",
        arch="x86_64",
        root=True,
        units={name: unit(name) for name in UNITS},
        listeners=(
            Listener(address="0.0.0.0", port=22, process="sshd"),
            Listener(address="127.0.0.1", port=11434, process="ollama"),
            Listener(address="127.0.0.1", port=8080, process="ollama-fleet"),
            Listener(address="*", port=443, process="caddy"),
            Listener(address="*", port=80, process="caddy"),
            Listener(address="0.0.0.0", port=9464, process="ollama-fleet"),
        ),
        firewall=Firewall(
            tables=("inet ollama_fleet",),
            ours=True,
            input_drops=True,
            accepted_tcp=frozenset({22, 80, 443}),
        ),
        ollama_release="0.12.0",
        ollama_api=OllamaApi(
            url="http://127.0.0.1:11434",
            answered=True,
            version="0.12.0",
            models=MODELS,
            loaded=(LoadedModel(name="llama3.2:1b", size=1_321_098_329, size_vram=1_321_098_329),),
        ),
        models_dir=ModelsDir(
            path="/usr/share/ollama/.ollama/models",
            exists=True,
            owner="ollama",
            group="ollama",
            mode="755",
            total_bytes=500 * GIB,
            free_bytes=300 * GIB,
            total_inodes=1_000_000,
            free_inodes=900_000,
            mount="/",
        ),
        gpu=GpuFacts(
            nvidia_devices=1,
            smi_installed=True,
            gpus=(
                Gpu(
                    index=0,
                    name="NVIDIA H100 80GB HBM3",
                    driver="550.54.15",
                    memory_total_mib=81559,
                    memory_used_mib=1400,
                    ecc_uncorrected=0,
                    temperature_c=41,
                    persistence=True,
                ),
            ),
            modules=frozenset({"nvidia", "nvidia_uvm", "nvidia_modeset"}),
            kernel_module_version="550.54.15",
            module_for_kernel=True,
        ),
        caddy=CaddyFacts(
            installed=True,
            config_valid=True,
            rewrites_host=None,
            proxies_to=("127.0.0.1:8080",),
            certificates=(
                Certificate(
                    path="/var/lib/caddy/.local/share/caddy/certificates/acme/gpu-1.crt",
                    names=("gpu-1.example.com",),
                    not_after=NOW + dt.timedelta(days=60),
                    issuer="R11",
                ),
            ),
        ),
        clock=Clock(offset_s=0.0, ntp_synchronized=True),
        dns=Dns(
            name="gpu-1.example.com",
            from_host=("192.0.2.10",),
            from_controller=("192.0.2.10",),
        ),
    )


def expect(**changes: Any) -> Expect:
    base = Expect(
        inventory=INVENTORY,
        gateway=True,
        monitor=True,
        required_models=MODELS,
    )
    return dataclasses.replace(base, **changes)


def check(name: str, *findings: Any) -> CheckResult:
    return CheckResult(
        target=HOST,
        url="https://gpu-1.example.com",
        check=name,
        findings=findings or (ok("fine"),),
        elapsed_ms=5.0,
    )


def healthy_checks() -> tuple[CheckResult, ...]:
    return tuple(
        check(name) for name in ("connectivity", "tls", "models", "chat", "auth", "exposure")
    )


def failed(name: str, failure_class: FailureClass, message: str) -> CheckResult:
    return check(name, fail(failure_class, message))


def case(
    facts: HostFacts | None = None,
    *,
    checks: tuple[CheckResult, ...] | None = None,
    **changes: Any,
) -> Case:
    base = Case(
        host=HOST,
        expect=expect(),
        facts=healthy() if facts is None else facts,
        inside=True,
        checks=healthy_checks() if checks is None else checks,
        now=NOW,
    )
    return dataclasses.replace(base, **changes)


def with_unit(facts: HostFacts, name: str, **changes: Any) -> HostFacts:
    units = dict(facts.units)
    units[name] = dataclasses.replace(units[name], **changes)
    return dataclasses.replace(facts, units=units)


def replace_checks(*results: CheckResult) -> tuple[CheckResult, ...]:
    """The healthy checks with `results` in place of the ones of the same name."""
    given = {r.check: r for r in results}
    return tuple(given.get(c.check, c) for c in healthy_checks())
