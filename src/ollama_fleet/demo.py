"""`ollama-fleet demo`: check a local testbed (simulator behind real Caddy) and write a report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from ollama_fleet.checks.reports import render_html, render_text
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.targets import targets_from_inventory
from ollama_fleet.fsutil import atomic_write
from ollama_fleet.inventory import load_inventory
from ollama_fleet.simulator import Faults
from ollama_fleet.testbed.fleet import LocalFleet, SiteSpec

REQUIRED_MODELS = ["llama3.2:1b", "qwen2.5:0.5b"]

# gpu-1 is healthy; gpu-2 is deliberately wrong, to show what findings look like.
DEMO_SITES = (
    SiteSpec(name="gpu-1"),
    SiteSpec(
        name="gpu-2",
        cert="expiring",
        hsts=False,
        faults=Faults(status=404, paths=("/api/chat",)),
        host_vars={"required_models": [*REQUIRED_MODELS, "llama3.1:70b"]},
    ),
)


def run_demo(*, workdir: Path, echo: Callable[[str], None]) -> Path:
    """Start the testbed, check it through its inventory, write report.html; return its path."""
    echo("Starting the Ollama API simulator (a test double, not Ollama: the real binary")
    echo("cannot be downloaded here) behind a real Caddy with TLS on 127.0.0.1 ...")
    with LocalFleet(workdir, DEMO_SITES) as fleet:
        inventory_path = fleet.write_inventory(
            # the demo's sites have no API keys: open on purpose, writes refused by Caddy
            workdir / "inventory.yml",
            required_models=REQUIRED_MODELS,
            public_access="open",
        )
        for name, site in fleet.sites.items():
            echo(f"  {name}: {site.url} -> simulator on 127.0.0.1:{site.simulator_port}")
        echo(f"Inventory: {inventory_path}")
        echo("gpu-2 is broken on purpose: certificate expiring in 5 days, no HSTS,")
        echo("a required model missing and chat answering 404.")
        targets = targets_from_inventory(load_inventory(inventory_path))
        run = asyncio.run(run_checks(targets))
    echo(render_text(run).rstrip("\n"))
    report = workdir / "report.html"
    atomic_write(report, render_html(run), mode=0o644, what="report")
    return report
