"""The reference for the monitor's benchmark: blackbox_exporter probing, Prometheus scraping.

Three blackbox modules stand for the monitor's three checks: `ollama_version` (GET
/api/version, 2xx with a version in the body: connectivity), `ollama_models` (GET /api/tags,
the required model in the body: models) and `closed_port` (a TCP connect to the port that
must be closed: exposure; blackbox cannot say "must be closed", it only probes, and the probe
fails, which is the answer wanted). Prometheus scrapes /probe for every (target, module) on
one interval, the way blackbox's README relabels targets.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from processes import BenchError, Child, start, tail

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
PROMETHEUS = "/usr/bin/prometheus"
MODULES = ("ollama_version", "ollama_models", "closed_port")


def blackbox_config(model: str) -> dict[str, Any]:
    http = {"preferred_ip_protocol": "ip4", "ip_protocol_fallback": False}
    return {
        "modules": {
            "ollama_version": {
                "prober": "http",
                "timeout": "5s",
                "http": {**http, "fail_if_body_not_matches_regexp": ['"version"']},
            },
            "ollama_models": {
                "prober": "http",
                "timeout": "5s",
                "http": {
                    **http,
                    "fail_if_body_not_matches_regexp": [f'"name":\\s*"{re.escape(model)}"'],
                },
            },
            "closed_port": {
                "prober": "tcp",
                "timeout": "2s",
                "tcp": {"preferred_ip_protocol": "ip4", "ip_protocol_fallback": False},
            },
        }
    }


def prometheus_config(
    *,
    targets: Mapping[str, str],
    closed_port: int,
    blackbox: str,
    interval_s: int,
) -> dict[str, Any]:
    """Scrape jobs for every target name -> base URL; names keep targets that share a URL
    (several targets on one simulator) apart."""
    addresses = {
        "ollama_version": lambda url: f"{url}/api/version",
        "ollama_models": lambda url: f"{url}/api/tags",
        "closed_port": lambda url: f"127.0.0.1:{closed_port}",
    }
    jobs = []
    for module in MODULES:
        jobs.append(
            {
                "job_name": f"blackbox_{module}",
                "metrics_path": "/probe",
                "params": {"module": [module]},
                "static_configs": [
                    {"targets": [addresses[module](url)], "labels": {"target_name": name}}
                    for name, url in targets.items()
                ],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": blackbox},
                ],
            }
        )
    return {
        "global": {
            "scrape_interval": f"{interval_s}s",
            "scrape_timeout": f"{min(interval_s, 5)}s",
            "evaluation_interval": "1m",
        },
        "scrape_configs": jobs,
    }


def start_blackbox(stack: ExitStack, workdir: Path, *, port: int, model: str) -> Child:
    config = workdir / "blackbox.yml"
    config.write_text(json.dumps(blackbox_config(model), indent=1))  # JSON is YAML
    command = [
        BLACKBOX,
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    child = start(stack, "blackbox_exporter", command, workdir / "blackbox.log")
    wait_ready(child, f"http://127.0.0.1:{port}/-/healthy")
    return child


def start_prometheus(
    stack: ExitStack, workdir: Path, *, port: int, config: Mapping[str, Any]
) -> Child:
    path = workdir / "prometheus.yml"
    path.write_text(json.dumps(config, indent=1))
    (workdir / "tsdb").mkdir()
    command = [
        PROMETHEUS,
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    child = start(stack, "prometheus", command, workdir / "prometheus.log")
    wait_ready(child, f"http://127.0.0.1:{port}/-/ready")
    return child


def wait_ready(child: Child, url: str, *, timeout_s: float = 30.0) -> None:
    """Until `url` answers 200; a child that exits first is an error naming its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise BenchError(f"{child.name} exited with {child.proc.returncode}{tail(child)}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{child.name} not ready at {url} in {timeout_s:g} s{tail(child)}")


def probes_so_far(prometheus_url: str) -> tuple[int, int]:
    """(probes stored, of which succeeded) since Prometheus started, every module."""
    counts = []
    for expression in (
        "sum(count_over_time(probe_success[1d]))",
        "sum(sum_over_time(probe_success[1d]))",
    ):
        rows = query(prometheus_url, expression)
        counts.append(round(float(rows[0]["value"][1])) if rows else 0)
    return counts[0], counts[1]


def query(prometheus_url: str, expression: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    response = httpx.get(
        f"{prometheus_url}/api/v1/query", params={"query": expression}, timeout=10.0
    )
    body = response.json()
    if body.get("status") != "success":
        raise BenchError(f"Prometheus refused {expression!r}: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def probe_counts(prometheus_url: str, window_s: int) -> dict[str, tuple[int, int]]:
    """Per module: (probes in the last window_s, of which succeeded), from the stored series."""
    found: dict[str, tuple[int, int]] = {}
    for expression, slot in (
        (f"sum by (job) (count_over_time(probe_success[{window_s}s]))", 0),
        (f"sum by (job) (sum_over_time(probe_success[{window_s}s]))", 1),
    ):
        for row in query(prometheus_url, expression):
            module = str(row["metric"]["job"]).removeprefix("blackbox_")
            done = found.get(module, (0, 0))
            value = round(float(row["value"][1]))
            found[module] = (value, done[1]) if slot == 0 else (done[0], value)
    return found
