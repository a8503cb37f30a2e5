"""Benchmark: the monitor's CPU per check and memory vs blackbox_exporter + Prometheus.

N simulated targets (the Ollama API simulator, a test double, in a few processes that the
targets share), 3 checks each (connectivity, models, exposure of one closed port) every
--interval seconds. First `ollama-fleet monitor` runs them; then, against the same
simulators, blackbox_exporter (Debian's package) probes the same targets with a module per
check as a real Prometheus scrapes its /probe at the same interval. One side after the
other, so neither competes with the other for the cores. Each side gets a warm-up, then a
window in which its CPU (/proc/PID/stat) and memory (/proc/PID/status) are measured and its
checks or probes counted. Prints CPU per check of each side, their ratio, and the goals.

    .venv/bin/python benchmarks/monitor/bench_monitor.py [--targets 300] [--seconds 120]
        [--warmup 30] [--interval 10] [--simulators 5] [--profile FILE]
    .venv/bin/python benchmarks/monitor/bench_monitor.py --targets 50 --seconds 30  # quick

Exit status: 0 both goals met, 1 a goal missed, 2 a tool missing or a process that failed.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import blackbox_stack
import httpx
import yaml
from processes import BenchError, Child, Window, measure, start
from processes import wait_for_line as wait_for
from prometheus_client.parser import text_string_to_metric_families

from ollama_fleet.testbed.servers import free_ports

MODEL = "llama3.2:1b"
CHECKS = ("connectivity", "models", "exposure")
GOAL_RSS_MB = 80.0
GOAL_RATIO = 1.0  # the monitor's CPU per check over blackbox's + Prometheus's per probe


def unused_port() -> int:
    """A port nothing listens on, below the range the kernel hands out for port 0: other
    programs' servers on free ports (tests running beside the benchmark) never land there."""
    lowest_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in range(lowest_ephemeral - 1, 1024, -1):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        except ConnectionRefusedError:
            return port
        except OSError:
            continue
    raise BenchError("no unused port below the ephemeral range")


def start_simulators(stack: ExitStack, workdir: Path, count: int) -> list[tuple[Child, str]]:
    """`count` simulator processes and their base URLs."""
    command = [sys.executable, "-m", "ollama_fleet", "simulator", "--port", "0"]
    command += ["--tokens-per-second", "0", "--model", MODEL]
    found = []
    for index in range(count):
        child = start(stack, f"simulator {index}", command, workdir / f"sim-{index}.log")
        found.append((child, wait_for(child, r"listening on (http://127\.0\.0\.1:\d+)").group(1)))
    return found


def monitor_config(
    targets: Mapping[str, str], *, closed_port: int, interval_s: int, concurrency: int, state: Path
) -> dict[str, Any]:
    return {
        "listen": "127.0.0.1:0",
        "state_dir": str(state),
        "gpu": "off",
        "shutdown_grace": "5s",
        "checks": list(CHECKS),
        "intervals": {check: f"{interval_s}s" for check in CHECKS},
        "concurrency": concurrency,
        "targets": [
            {
                "name": name,
                "url": url,
                "required_models": [MODEL],
                "closed_ports": [closed_port],
                "public_access": "open",  # no keys in front of the simulators: open on purpose
                "check_write_endpoints": False,
            }
            for name, url in targets.items()
        ],
    }


def monitor_counts(url: str) -> tuple[int, int]:
    """(checks finished, of which ok) from the monitor's own /metrics."""
    done = ok = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}metrics", timeout=10.0).text):
        for sample in family.samples:
            if sample.name == "ollama_fleet_check_runs_total":
                done += sample.value
                ok += sample.value if sample.labels.get("status") == "ok" else 0.0
    return round(done), round(ok)


def monitor_side(
    workdir: Path,
    targets: Mapping[str, str],
    simulators: Sequence[Child],
    *,
    closed_port: int,
    args: argparse.Namespace,
) -> Window:
    config = workdir / "monitor.yml"
    settings = monitor_config(
        targets,
        closed_port=closed_port,
        interval_s=args.interval,
        concurrency=args.concurrency,
        state=workdir / "monitor-state",
    )
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    command = [sys.executable, "-m", "ollama_fleet", "monitor", "--config", str(config)]
    if args.profile:  # cProfile writes its file when the monitor exits on SIGTERM
        command[1:1] = ["-m", "cProfile", "-o", str(Path(args.profile).resolve())]
    with ExitStack() as stack:
        child = start(stack, "monitor", command, workdir / "monitor.log")
        url = wait_for(child, r"on (http://127\.0\.0\.1:\d+/)").group(1)
        return measure(
            [child],
            simulators,
            lambda: monitor_counts(url),
            warmup_s=args.warmup,
            seconds=args.seconds,
        )


def reference_side(
    workdir: Path,
    targets: Mapping[str, str],
    simulators: Sequence[Child],
    *,
    closed_port: int,
    args: argparse.Namespace,
) -> tuple[Window, dict[str, tuple[int, int]]]:
    """blackbox_exporter and Prometheus's window, and per module (probes, succeeded)."""
    blackbox_port, prometheus_port = free_ports(2)
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    config = blackbox_stack.prometheus_config(
        targets=targets,
        closed_port=closed_port,
        blackbox=f"127.0.0.1:{blackbox_port}",
        interval_s=args.interval,
    )
    with ExitStack() as stack:
        blackbox = blackbox_stack.start_blackbox(stack, workdir, port=blackbox_port, model=MODEL)
        prometheus = blackbox_stack.start_prometheus(
            stack, workdir, port=prometheus_port, config=config
        )
        window = measure(
            [blackbox, prometheus],
            simulators,
            lambda: blackbox_stack.probes_so_far(prometheus_url),
            warmup_s=args.warmup,
            seconds=args.seconds,
        )
        return window, blackbox_stack.probe_counts(prometheus_url, round(window.seconds))


def mb(kib: int) -> float:
    return kib * 1024 / 1e6


def report(
    args: argparse.Namespace,
    ours: Window,
    reference: Window,
    modules: Mapping[str, tuple[int, int]],
) -> int:
    expected = args.targets * len(CHECKS) * ours.seconds / args.interval
    per_check = ours.cpu_s / max(ours.done, 1)
    per_probe = reference.cpu_s / max(reference.done, 1)
    monitor = ours.usage[0]
    print(
        f"monitor: {ours.done} checks in {ours.seconds:.0f} s (a full schedule is ~{expected:.0f})"
        f", {ours.ok} ok; CPU {ours.cpu_s:.2f} s = {per_check * 1000:.3f} ms per check; RSS peak "
        f"{mb(monitor.peak_rss_kib):.1f} MB, at the end {mb(monitor.end_rss_kib):.1f} MB, "
        f"VmHWM {mb(monitor.hwm_kib):.1f} MB"
    )
    by_module = ", ".join(f"{name} {ok}/{done}" for name, (done, ok) in sorted(modules.items()))
    print(
        f"blackbox_exporter + Prometheus: {reference.done} probes in {reference.seconds:.0f} s "
        f"(succeeded/stored by module: {by_module}; closed_port fails by design); CPU "
        + " + ".join(f"{u.name} {u.cpu_s:.2f} s" for u in reference.usage)
        + f" = {per_probe * 1000:.3f} ms per probe; RSS peak "
        + ", ".join(
            f"{u.name} {mb(u.peak_rss_kib):.1f} MB (VmHWM {mb(u.hwm_kib):.1f})"
            for u in reference.usage
        )
    )
    print(
        f"simulators' CPU in the window: {ours.simulators_cpu_s:.2f} s under the monitor, "
        f"{reference.simulators_cpu_s:.2f} s under blackbox_exporter"
    )
    ratio = per_check / per_probe if per_probe else float("inf")
    print(f"ratio CPU per check, monitor / (blackbox_exporter + Prometheus): {ratio:.2f}x")
    rss_met = mb(monitor.hwm_kib) < GOAL_RSS_MB  # VmHWM: start-up and warm-up count too
    cpu_met = ratio <= GOAL_RATIO
    print(
        f"goal: monitor RSS (VmHWM) under {GOAL_RSS_MB:g} MB: {'met' if rss_met else 'NOT met'}; "
        f"CPU per check no more than blackbox_exporter + Prometheus per probe: "
        f"{'met' if cpu_met else 'NOT met'}"
    )
    if modules.get("closed_port", (0, 0))[1]:
        print("warning: something accepted connections on the closed port during the run")
    if ours.ok < ours.done:
        print(f"warning: {ours.done - ours.ok} of the monitor's checks were not ok; see its log")
    return 0 if rss_met and cpu_met and ours.ok == ours.done else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--interval", type=int, default=10, help="seconds between runs")
    parser.add_argument("--seconds", type=int, default=120, help="measured window, each side")
    parser.add_argument("--warmup", type=int, default=30, help="seconds before each window")
    parser.add_argument("--simulators", type=int, default=5, help="simulator processes")
    parser.add_argument("--concurrency", type=int, default=16, help="the monitor's bound")
    parser.add_argument(
        "--profile", metavar="FILE", help="run the monitor under cProfile into FILE (costs CPU)"
    )
    parser.add_argument("--keep", metavar="DIR", help="keep configs and logs in DIR")
    args = parser.parse_args()
    for tool in (blackbox_stack.BLACKBOX, blackbox_stack.PROMETHEUS):
        if shutil.which(tool) is None:
            print(f"error: {tool} is missing (make setup installs it)", file=sys.stderr)
            return 2
    with ExitStack() as outer:
        if args.keep:
            workdir = Path(args.keep)
            workdir.mkdir(parents=True, exist_ok=False)
        else:
            workdir = Path(outer.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        try:
            with ExitStack() as stack:
                print(
                    f"{args.targets} targets x {len(CHECKS)} checks every {args.interval} s on "
                    f"{args.simulators} simulator processes (the Ollama API simulator, a test "
                    f"double); each side: {args.warmup} s warm-up, {args.seconds} s measured, "
                    "one side after the other",
                    flush=True,
                )
                pairs = start_simulators(stack, workdir, args.simulators)
                simulators = [child for child, _ in pairs]
                names = [f"target-{i:03d}" for i in range(args.targets)]
                targets = {name: pairs[i % len(pairs)][1] for i, name in enumerate(names)}
                closed_port = unused_port()
                ours = monitor_side(
                    workdir, targets, simulators, closed_port=closed_port, args=args
                )
                reference, modules = reference_side(
                    workdir, targets, simulators, closed_port=closed_port, args=args
                )
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return report(args, ours, reference, modules)


if __name__ == "__main__":
    sys.exit(main())
