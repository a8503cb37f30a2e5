"""The gateway under test: `ollama-fleet gateway --config F` in front of both simulators.

The config follows gateway.yml's schema (docs/gateway.md): both nodes, one user key stored as
its SHA-256, defaults elsewhere, except each node's `max_parallel` and `queue`, set to the
benchmark's concurrency: the simulator has no slot limit, and Caddy and LiteLLM queue
nothing, so neither does the gateway here (a real node's OLLAMA_NUM_PARALLEL would), and
`prefer_loaded` off (below).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from blackbox_stack import wait_ready
from processes import Child, start
from prometheus_client.parser import text_string_to_metric_families


def gateway_config(
    *, port: int, nodes: Sequence[str], key: str, slots: int, access_log: bool
) -> dict[str, Any]:
    """`nodes` are base URLs; only the key's digest goes in the file."""
    return {
        "listen": f"127.0.0.1:{port}",
        "nodes": [
            {"name": f"node-{index}", "url": url, "max_parallel": slots, "queue": slots}
            for index, url in enumerate(nodes)
        ],
        "keys": [
            {
                "name": "bench",
                "sha256": hashlib.sha256(key.encode()).hexdigest(),
                "role": "user",
                "models": ["*"],
            }
        ],
        # pure least-connections, as Caddy's least_conn: with every node's slots free,
        # prefer_loaded would send everything to the first node that served the model
        "balancing": {"strategy": "least-connections", "prefer_loaded": False},
        "access_log": access_log,
    }


def start_gateway(
    stack: ExitStack,
    workdir: Path,
    *,
    port: int,
    nodes: Sequence[str],
    slots: int,
    access_log: bool,
) -> tuple[Child, str, dict[str, str]]:
    """The gateway running with a healthy node; returns it, its base URL, the auth header."""
    key = "ofk_" + secrets.token_urlsafe(32)
    config = workdir / "gateway.yml"
    settings = gateway_config(port=port, nodes=nodes, key=key, slots=slots, access_log=access_log)
    config.write_text(json.dumps(settings, indent=1))  # JSON is YAML
    executable = Path(sys.executable).with_name("ollama-fleet")
    command = [str(executable), "gateway", "--config", str(config)]
    child = start(stack, "gateway", command, workdir / "gateway.log")
    base = f"http://127.0.0.1:{port}"
    wait_ready(child, f"{base}/ready")
    return child, base, {"Authorization": f"Bearer {key}"}


def own_view(base: str) -> str:
    """The gateway's own means from /metrics: its time before the upstream request, and its
    time to first token (from the request's arrival in its handler, not in the socket)."""
    sums: dict[str, float] = {}
    try:
        text = httpx.get(f"{base}/metrics", timeout=10.0).text
    except httpx.HTTPError as exc:
        return f"/metrics did not answer: {exc}"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    parts = []
    for name, label in (
        ("gateway_added_latency_seconds", "before the upstream request"),
        ("gateway_time_to_first_token_seconds", "time to first token"),
    ):
        count = sums.get(f"{name}_count", 0.0)
        if count:
            mean_ms = 1000 * sums[f"{name}_sum"] / count
            parts.append(f"{label} {mean_ms:.2f} ms on average ({count:.0f} requests)")
    return "; ".join(parts) or "no latency histograms in /metrics"
