"""Benchmark: the full check suite on N simulated targets behind real Caddy vs the manual way.

The manual way is what operators did before: curl and openssl, one command after the other,
one target after the other, covering the same checks (version, tags, ps, chat plain and
streamed, certificate, legacy TLS, redirect, HSTS, port 11434). Both run in this process's
run against the same fleet; the script prints both wall times and their ratio.

    .venv/bin/python benchmarks/checks/bench_checks.py [--targets 100] [--rounds 3]
        [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ollama_fleet.checks.model import Status
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.targets import targets_from_inventory
from ollama_fleet.inventory import load_inventory
from ollama_fleet.simulator import Faults
from ollama_fleet.testbed.fleet import LocalFleet, SiteSpec
from ollama_fleet.testbed.servers import free_port

MODEL = "llama3.2:1b"
GOAL_SECONDS = 3.0
GOAL_RATIO = 20.0


def manual_commands(url: str, http_url: str, ca_file: str, closed_port: int) -> list[list[str]]:
    """The manual procedure for one target, as the commands an operator would type."""
    host_port = url.removeprefix("https://")
    chat = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Reply OK."}],
        "options": {"num_predict": 4},
    }
    curl = ["curl", "-sS", "--cacert", ca_file, "-o", "/dev/null", "-w", "%{http_code}\n"]
    return [
        [*curl, f"{url}/api/version"],
        [*curl, f"{url}/api/tags"],
        [*curl, f"{url}/api/ps"],
        [*curl, f"{url}/api/chat", "-d", json.dumps({**chat, "stream": False})],
        [*curl, "-N", f"{url}/api/chat", "-d", json.dumps({**chat, "stream": True})],
        [
            "sh",
            "-c",
            f"openssl s_client -connect {host_port} -servername localhost "
            f"-CAfile {ca_file} -alpn h2 </dev/null 2>/dev/null | openssl x509 -noout -dates "
            "-subject -ext subjectAltName",
        ],
        [
            "sh",
            "-c",
            f"openssl s_client -connect {host_port} -tls1_1 </dev/null >/dev/null 2>&1; true",
        ],
        [*curl, "-I", http_url],
        ["curl", "-sS", "--cacert", ca_file, "-I", f"{url}/"],
        ["sh", "-c", f"timeout 1 bash -c '</dev/tcp/127.0.0.1/{closed_port}' 2>/dev/null; true"],
    ]


def run_manual(fleet: LocalFleet, closed_port: int) -> float:
    start = time.perf_counter()
    for site in fleet.sites.values():
        for command in manual_commands(
            site.url, site.http_url or "", str(fleet.ca_file), closed_port
        ):
            subprocess.run(command, check=False, capture_output=True)
    return time.perf_counter() - start


def run_ours(inventory: Path) -> tuple[float, int, int]:
    targets = targets_from_inventory(load_inventory(inventory))
    start = time.perf_counter()
    run = asyncio.run(run_checks(targets))
    elapsed = time.perf_counter() - start
    failed = sum(1 for r in run.results if r.status is not Status.OK)
    return elapsed, len(run.results), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="runs of ours; the median counts")
    parser.add_argument("--simulators", type=int, default=2, help="simulator processes")
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        help="delay every simulator answer, standing for hosts that are not on loopback",
    )
    args = parser.parse_args()
    for tool in ("curl", "openssl", "caddy"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (make setup installs caddy)", file=sys.stderr)
            return 2
    specs = [SiteSpec(name=f"gpu-{i:03d}") for i in range(args.targets)]
    closed_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"starting {args.targets} Caddy sites and {args.simulators} simulator processes "
            f"(the Ollama API simulator, a test double), latency {args.latency_ms} ms...",
            flush=True,
        )
        with LocalFleet(
            Path(tmp),
            specs,
            shared_simulators=args.simulators,
            shared_faults=Faults(latency_ms=args.latency_ms) if args.latency_ms else None,
            simulators_in_processes=True,
        ) as fleet:
            inventory = fleet.write_inventory(
                Path(tmp) / "bench.yml",
                required_models=[MODEL],
                closed_ports=[closed_port],
                public_access="open",  # no keys in front of the simulators: open on purpose
            )
            run_ours(inventory)  # warm-up: imports, caches, Caddy's first handshakes
            rounds = [run_ours(inventory) for _ in range(args.rounds)]
            ours = statistics.median(r[0] for r in rounds)
            checks, failed = rounds[0][1], rounds[0][2]
            print(
                f"ollama-fleet check: {checks} checks on {args.targets} targets, "
                f"{failed} not ok, median {ours:.2f} s over {args.rounds} rounds "
                f"({', '.join(f'{r[0]:.2f}' for r in rounds)})",
                flush=True,
            )
            manual = run_manual(fleet, closed_port)
            print(f"manual curl+openssl, one at a time: {manual:.2f} s")
    ratio = manual / ours
    print(f"ratio manual/ours: {ratio:.1f}x")
    print(
        f"goal: {args.targets} targets under {GOAL_SECONDS:g} s: "
        f"{'met' if ours < GOAL_SECONDS else 'NOT met'}; at least {GOAL_RATIO:g}x: "
        f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}"
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
