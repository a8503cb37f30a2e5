"""Benchmark: what the sessions API adds to time to first token, its writes and the gateway's RSS.

One simulator process (the Ollama API simulator, a test double) is the node; the gateway runs
in its own process in front of it, with its sessions database in SQLite (a file in a temp dir)
and then PostgreSQL 15 (a cluster in a temp dir, made by tests/pg_cluster.py, set back to
PostgreSQL's durable defaults: fsync, synchronous_commit and full_page_writes on). Against each
gateway, 100 conversations stream at once, several turns each, both ways in the same run:

- plain: `POST /api/chat` (NDJSON), the client sending the whole history each turn;
- sessions: `POST /v1/chat` (SSE), the gateway storing the turns and sending the history.

Each round runs one phase of each (every conversation, every turn), the order alternating from
round to round, after a warm-up phase of each. Added TTFT = the sessions percentile minus the
plain one over all rounds (per-round figures printed too). Writes: the gateway's
`gateway_sessions_writes_total` over the sessions phases. RSS: VmHWM (the gateway's peak since
start) and VmRSS sampled every 0.2 s during the rounds. CPU from /proc/PID/stat.

    .venv/bin/python benchmarks/sessions/bench_sessions.py [--conversations 100] [--turns 3]
        [--rounds 4] [--tokens-per-second 50] [--max-tokens 32] [--backends sqlite,postgresql]
        [--no-access-log] [--profile DIR] [--keep DIR]

Exit status: 0 both goals met, 1 a goal missed or a turn failed, 2 a process did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "monitor"))
sys.path.insert(0, str(HERE.parents[0] / "gateway"))
sys.path.append(str(HERE.parents[1] / "tests"))  # after everything else: pg_cluster only

import conversations  # noqa: E402
from blackbox_stack import wait_ready  # noqa: E402
from chat_load import percentile  # noqa: E402
from conversations import Mode, Phase  # noqa: E402
from processes import (  # noqa: E402
    BenchError,
    Child,
    RssSampler,
    cpu_seconds,
    memory_kib,
    start,
    wait_for_line,  # noqa: E402
)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import pg_cluster  # noqa: E402
from ollama_fleet.testbed.servers import free_port  # noqa: E402

MODEL = "llama3.2:1b"
GOAL_ADDED_P99_MS = 10.0
GOAL_RSS_MB = 150.0
DURABLE = ("fsync", "synchronous_commit", "full_page_writes")  # the test cluster turns them off


@dataclass(slots=True, kw_only=True)
class Backend:
    """One gateway (one database) and what its phases measured."""

    kind: str
    phases: list[Phase] = field(default_factory=list)
    writes: int = 0  # over the measured sessions phases
    sessions_wall_s: float = 0.0
    database_cpu_s: float = 0.0  # PostgreSQL's processes, over the sessions phases
    cpu_s: dict[str, float] = field(default_factory=lambda: {"plain": 0.0, "sessions": 0.0})
    idle_rss_kib: int = 0
    sampled_rss_kib: int = 0
    hwm_kib: int = 0
    # the gateway's own time before the relay (gateway_added_latency_seconds), per mode:
    # {bucket upper bound in s: requests}, cumulative as Prometheus counts them
    own: dict[str, dict[float, float]] = field(
        default_factory=lambda: {"plain": {}, "sessions": {}}
    )

    def own_ms(self, mode: str, q: float) -> float:
        """The bucket bound under which a share `q` of the mode's requests fell (ms)."""
        buckets = sorted(self.own[mode].items())
        total = buckets[-1][1] if buckets else 0.0
        for bound, count in buckets:
            if total and count >= q * total:
                return 1000 * bound
        return float("inf")

    def own_share(self, mode: str, bound_s: float) -> float:
        buckets = self.own[mode]
        total = buckets.get(float("inf"), 0.0)
        return buckets.get(bound_s, 0.0) / total if total else 0.0

    def of(self, mode: str) -> list[Phase]:
        return [p for p in self.phases if p.mode == mode]

    def ttft_ms(self, mode: str, q: float) -> float:
        return 1000 * percentile([t for p in self.of(mode) for t in p.ttfts], q)

    def added_ms(self, q: float) -> float:
        return self.ttft_ms("sessions", q) - self.ttft_ms("plain", q)

    def added_by_round_ms(self, q: float) -> list[float]:
        return [
            1000 * (percentile(s.ttfts, q) - percentile(p.ttfts, q))
            for p, s in zip(self.of("plain"), self.of("sessions"), strict=True)
        ]

    def turns(self, mode: str) -> int:
        return sum(len(p.turns) for p in self.of(mode))


def gateway_config(
    *, port: int, node: str, key: str, database_url: str, slots: int, access_log: bool
) -> dict[str, Any]:
    """Only the key's digest goes in the file; the node takes every stream (no queueing)."""
    return {
        "listen": f"127.0.0.1:{port}",
        "nodes": [{"name": "node-0", "url": node, "max_parallel": slots, "queue": slots}],
        "keys": [
            {
                "name": "bench",
                "sha256": hashlib.sha256(key.encode()).hexdigest(),
                "role": "user",
                "models": ["*"],
            }
        ],
        "sessions": {"database_url": database_url, "flush_interval": "500ms"},
        "access_log": access_log,
    }


def start_gateway(
    stack: ExitStack,
    workdir: Path,
    *,
    kind: str,
    node: str,
    database_url: str,
    args: argparse.Namespace,
) -> tuple[Child, str, dict[str, str]]:
    key = "ofk_" + secrets.token_urlsafe(32)
    port = free_port()
    config = workdir / f"gateway-{kind}.yml"
    settings = gateway_config(
        port=port,
        node=node,
        key=key,
        database_url=database_url,
        slots=args.conversations,
        access_log=not args.no_access_log,
    )
    config.write_text(json.dumps(settings, indent=1))  # JSON is YAML
    command = [sys.executable, "-m", "ollama_fleet", "gateway", "--config", str(config)]
    if args.profile:
        profile = Path(args.profile).resolve() / f"gateway-{kind}.prof"
        command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    child = start(stack, f"gateway ({kind})", command, workdir / f"gateway-{kind}.log")
    base = f"http://127.0.0.1:{port}"
    wait_ready(child, f"{base}/ready")
    return child, base, {"Authorization": f"Bearer {key}"}


def writes_so_far(base: str) -> int:
    text = httpx.get(f"{base}/metrics", timeout=10.0).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_sessions_writes_total":
                return round(sample.value)
    raise BenchError("the gateway's /metrics has no gateway_sessions_writes_total")


def own_buckets(base: str) -> dict[float, float]:
    """gateway_added_latency_seconds' cumulative buckets now ({le: count})."""
    text = httpx.get(f"{base}/metrics", timeout=10.0).text
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_added_latency_seconds_bucket"
    }


def tree_cpu_seconds(root: int) -> float:
    """CPU of `root` and its children (PostgreSQL's postmaster and its backends)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            text = stat.read_text()
            pid, ppid = int(stat.parent.name), int(text[text.rindex(")") + 2 :].split()[1])
            if root in (pid, ppid):
                total += cpu_seconds(pid)
    return total


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[tuple[str, Callable[[], float]]]:
    """The sessions database's URL for `kind` and its server's CPU so far (SQLite: in the
    gateway's process, so 0 here), removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'sessions.sqlite3'}", lambda: 0.0
        return
    with pg_cluster.running_cluster() as cluster:
        with psycopg.connect(cluster.url(), autocommit=True, connect_timeout=10) as conn:
            for name in DURABLE:
                conn.execute(f"ALTER SYSTEM SET {name} = on".encode())
            conn.execute(b"SELECT pg_reload_conf()")
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        yield cluster.new_database(), lambda: tree_cpu_seconds(postmaster)


async def run_rounds(
    gateway: Child,
    base: str,
    headers: dict[str, str],
    backend: Backend,
    args: argparse.Namespace,
    *,
    database_cpu: Callable[[], float],
) -> None:
    chats = conversations.scripts(
        conversations=args.conversations,
        turns=args.turns,
        max_tokens=args.max_tokens,
        spread_s=args.spread,
    )
    async with conversations.new_client(timeout_s=120.0) as client:

        async def phase(mode: conversations.Mode) -> Phase:
            return await conversations.run_phase(
                client, mode=mode, base=base, headers=headers, model=MODEL, conversations=chats
            )

        for mode in ("plain", "sessions"):  # warm-up: connections, first-use imports, caches
            warm = await phase(mode)
            if warm.failed:
                raise BenchError(f"{backend.kind}: warm-up {mode} failed: {warm.failed[0].error}")
        backend.idle_rss_kib = memory_kib(gateway.pid)["VmRSS"]
        with RssSampler([gateway.pid], every_s=0.2) as sampler:
            for index in range(args.rounds):
                order: tuple[Mode, Mode] = ("plain", "sessions")
                order = order if index % 2 == 0 else (order[1], order[0])
                for mode in order:
                    writes0, cpu0 = writes_so_far(base), cpu_seconds(gateway.pid)
                    db0, own0 = database_cpu(), own_buckets(base)
                    found = await phase(mode)
                    backend.cpu_s[mode] += cpu_seconds(gateway.pid) - cpu0
                    for bound, count in own_buckets(base).items():
                        kept = backend.own[mode]
                        kept[bound] = kept.get(bound, 0.0) + count - own0.get(bound, 0.0)
                    if mode == "sessions":
                        backend.writes += writes_so_far(base) - writes0
                        backend.database_cpu_s += database_cpu() - db0
                        backend.sessions_wall_s += found.wall_s
                    backend.phases.append(found)
                print(f"{backend.kind}: round {index + 1}/{args.rounds} done", flush=True)
        backend.sampled_rss_kib = sampler.peak_kib[gateway.pid]
        backend.hwm_kib = memory_kib(gateway.pid)["VmHWM"]


def mb(kib: int) -> float:
    return kib * 1024 / 1e6


def report(backends: Sequence[Backend], args: argparse.Namespace) -> int:
    expected = args.conversations * args.turns * args.rounds
    print(
        "\n| database | mode | ok / turns | TTFT p50 | TTFT p99 | added p50 | added p99 "
        "| gateway CPU per turn | gateway CPU | client CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for b in backends:
        for mode in ("plain", "sessions"):
            ok = sum(len(p.ttfts) for p in b.of(mode))
            failed = failed or ok < expected
            added = (
                f"{b.added_ms(0.5):+.2f} ms | {b.added_ms(0.99):+.2f} ms"
                if mode == "sessions"
                else "- | -"
            )
            wall = sum(p.wall_s for p in b.of(mode))
            client = sum(p.client_cpu_s for p in b.of(mode))
            print(
                f"| {b.kind} | {mode} | {ok} / {expected} | {b.ttft_ms(mode, 0.5):.2f} ms | "
                f"{b.ttft_ms(mode, 0.99):.2f} ms | {added} | "
                f"{1000 * b.cpu_s[mode] / max(b.turns(mode), 1):.2f} ms | "
                f"{100 * b.cpu_s[mode] / wall:.0f}% of a core | "
                f"{100 * client / wall:.0f}% of a core |"
            )
    print(
        "\n| database | writes/s (sessions phases) | writes per turn | RSS idle after warm-up "
        "| RSS sampled peak | VmHWM | PostgreSQL CPU per turn |"
    )
    print("|---|---|---|---|---|---|---|")
    for b in backends:
        print(
            f"| {b.kind} | {b.writes / b.sessions_wall_s:.0f} | "
            f"{b.writes / max(b.turns('sessions'), 1):.2f} | {mb(b.idle_rss_kib):.1f} MB | "
            f"{mb(b.sampled_rss_kib):.1f} MB | {mb(b.hwm_kib):.1f} MB | "
            + (
                f"{1000 * b.database_cpu_s / max(b.turns('sessions'), 1):.2f} ms |"
                if b.kind == "postgresql"
                else "- (in the gateway) |"
            )
        )
    for b in backends:
        for mode in ("plain", "sessions"):
            errors = [t.error for p in b.of(mode) for t in p.failed]
            if errors:
                print(f"warning: {b.kind} {mode}: {len(errors)} turns failed, first: {errors[0]}")
        rounds = ", ".join(
            f"p{round(q * 100)} " + " ".join(f"{v:+.1f}" for v in b.added_by_round_ms(q))
            for q in (0.5, 0.99)
        )
        print(f"added TTFT by round, {b.kind} (ms): {rounds}")
    print(
        "\nthe gateway's own time before the relay (gateway_added_latency_seconds, by bucket: "
        "body, key, limits, and for sessions the history read and the message written):"
    )
    for b in backends:
        within = 100 * b.own_share("sessions", GOAL_ADDED_P99_MS / 1000)
        print(
            f"{b.kind}: plain p50 <= {b.own_ms('plain', 0.5):g} ms, p99 <= "
            f"{b.own_ms('plain', 0.99):g} ms; sessions p50 <= {b.own_ms('sessions', 0.5):g} ms, "
            f"p99 <= {b.own_ms('sessions', 0.99):g} ms; sessions turns within "
            f"{GOAL_ADDED_P99_MS:g} ms: {within:.1f}%"
        )
    met_all = True
    for b in backends:
        added_p99 = b.added_ms(0.99)
        met = added_p99 <= GOAL_ADDED_P99_MS
        met_all = met_all and met
        print(
            f"goal: {b.kind}: added TTFT p99 <= {GOAL_ADDED_P99_MS:g} ms: {added_p99:+.2f} ms: "
            f"{'met' if met else 'NOT met'}"
        )
        peak = mb(max(b.hwm_kib, b.sampled_rss_kib))
        met = peak < GOAL_RSS_MB
        met_all = met_all and met
        print(
            f"goal: {b.kind}: RSS < {GOAL_RSS_MB:g} MB at {args.conversations} streams: "
            f"peak {peak:.1f} MB: {'met' if met else 'NOT met'}"
        )
    print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[0]}")
    return 0 if met_all and not failed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100, help="streaming at once")
    parser.add_argument("--turns", type=int, default=3, help="per conversation")
    parser.add_argument("--rounds", type=int, default=4, help="each a phase of both modes")
    parser.add_argument("--tokens-per-second", type=float, default=50.0, help="simulator pace")
    parser.add_argument("--max-tokens", type=int, default=32, help="mean answer (half to 1.5x)")
    parser.add_argument("--spread", type=float, default=1.0, help="s over which chats start")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the gateway into DIR")
    parser.add_argument("--keep", metavar="DIR", help="keep configs and logs in DIR")
    args = parser.parse_args()
    kinds = [k for k in args.backends.split(",") if k]
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    print(
        f"{args.conversations} conversations at once, {args.turns} turns each, {args.rounds} "
        f"rounds; simulator at {args.tokens_per_second:g} tokens/s, answers of "
        f"{args.max_tokens} tokens on average; access log "
        f"{'off' if args.no_access_log else 'on'}",
        flush=True,
    )
    backends = []
    with ExitStack() as outer:
        if args.keep:
            workdir = Path(args.keep)
            workdir.mkdir(parents=True, exist_ok=False)
        else:
            workdir = Path(outer.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        try:
            command = [
                sys.executable,
                "-m",
                "ollama_fleet",
                "simulator",
                "--port",
                "0",
                "--model",
                MODEL,
                "--tokens-per-second",
                f"{args.tokens_per_second:g}",
            ]
            simulator = start(outer, "simulator", command, workdir / "simulator.log")
            node = wait_for_line(simulator, r"listening on (http://127\.0\.0\.1:\d+)").group(1)
            for kind in kinds:
                backend = Backend(kind=kind)
                with ExitStack() as stack:
                    url, database_cpu = stack.enter_context(database(kind, workdir))
                    gateway, base, headers = start_gateway(
                        stack, workdir, kind=kind, node=node, database_url=url, args=args
                    )
                    asyncio.run(
                        run_rounds(gateway, base, headers, backend, args, database_cpu=database_cpu)
                    )
                backends.append(backend)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return report(backends, args)


if __name__ == "__main__":
    sys.exit(main())
