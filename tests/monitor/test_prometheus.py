"""A real Prometheus scrapes MonitorMetrics: the series, the rules and every Grafana query.

The exposition is served on 127.0.0.1 by uvicorn, linted by `promtool check metrics`, and
scraped every second by Debian's prometheus with the rules file loaded; the tests then read
everything back through Prometheus's HTTP API.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitor.fake_nvml import H200, RTX, FakeNvml
from monitor.live import binary, daemon
from monitor.metrics_samples import NOW, populate
from ollama_fleet.monitor.gpu import GpuCollector
from ollama_fleet.monitor.metrics import MonitorMetrics
from ollama_fleet.monitor.rules import render_rules
from ollama_fleet.testbed.servers import free_port, serve_in_thread

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "ollama-fleet-monitor.json"
JOB = "ollama-fleet-monitor"
READY_TIMEOUT_S = 60.0


@dataclasses.dataclass
class Monitor:
    port: int
    accepts: list[str]
    metrics: MonitorMetrics


@pytest.fixture(scope="module")
def monitor() -> Iterator[Monitor]:
    gpu = GpuCollector.start("auto", nvml=FakeNvml(gpus=[H200, RTX]))
    metrics = MonitorMetrics(version="9.9.9", collectors=[gpu], clock=lambda: NOW)
    populate(metrics)
    accepts: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http" and scope["path"] == "/metrics", scope
        accept = dict(scope["headers"]).get(b"accept", b"").decode()
        accepts.append(accept)
        body, content_type = metrics.exposition(accept)
        headers = [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with serve_in_thread(app) as port:
        yield Monitor(port=port, accepts=accepts, metrics=metrics)


class Prometheus:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.client.get("/api/v1/query", params={"query": expr})
        data = answer.json()
        assert answer.status_code == 200 and data["status"] == "success", (expr, data)
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def value(self, expr: str) -> float:
        (series,) = self.query(expr)
        return float(series["value"][1])

    def wait_for(self, expr: str, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.query(expr):
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus never had {what} ({expr})")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def prometheus(monitor: Monitor, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    root = tmp_path_factory.mktemp("prometheus")
    (root / "ollama-fleet.rules.yml").write_text(render_rules())
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(root / "ollama-fleet.rules.yml")],
        "scrape_configs": [
            {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{monitor.port}"]}]}
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus"),
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    base = f"http://127.0.0.1:{port}"
    with (
        daemon(command, f"{base}/-/ready", root / "prometheus.log"),
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        server = Prometheus(client)
        # three scrapes, so rate() over the dashboard's window has points to work with
        server.wait_for(
            f'count_over_time(ollama_fleet_monitor_info{{job="{JOB}"}}[1m]) >= 3', "3 scrapes"
        )
        yield server


# -- the exposition itself ----------------------------------------------------------------------


def test_promtool_lints_the_exposition_clean(monitor: Monitor) -> None:
    body = httpx.get(f"http://127.0.0.1:{monitor.port}/metrics").content
    done = subprocess.run(
        [binary("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == done.stderr.strip() == b""  # no lint findings at all


def test_promtool_would_flag_a_bad_exposition() -> None:
    # the lint above can fail: a counter without _total and with a HELP-less family is flagged
    bad = b"# TYPE ollama_fleet_bad counter\nollama_fleet_bad 1\n"
    done = subprocess.run(
        [binary("promtool"), "check", "metrics"], input=bad, capture_output=True, timeout=60
    )
    assert done.returncode != 0


# -- series read back through Prometheus ---------------------------------------------------------


def test_prometheus_scrapes_openmetrics_and_the_target_is_up(
    monitor: Monitor, prometheus: Prometheus
) -> None:
    assert prometheus.value(f'up{{job="{JOB}"}}') == 1
    assert any("application/openmetrics-text" in accept for accept in monitor.accepts)


def test_series_values_arrive(prometheus: Prometheus) -> None:
    value = prometheus.value
    assert value('ollama_fleet_check_success{target="gpu-1", check="connectivity"}') == 1
    assert value('ollama_fleet_check_success{target="gpu-2", check="connectivity"}') == 0
    assert value('ollama_fleet_check_status{target="gpu-1", check="tls", status="warn"}') == 1
    assert value('ollama_fleet_tls_cert_seconds_left{target="gpu-1"}') == 10 * 86400
    assert value('ollama_fleet_model_present{target="gpu-1", model="qwen2.5:7b"}') == 0
    assert value('ollama_fleet_model_vram_bytes{model="llama3.2:latest"}') == 3_338_801_152
    assert value('ollama_fleet_exposure_port_open{port="11434"}') == 1
    assert value('ollama_fleet_chat_tokens_per_second{target="gpu-1"}') == 61.5
    assert value('ollama_fleet_chat_first_token_seconds_sum{target="gpu-1"}') == 0.42
    assert value('ollama_fleet_ollama_version_info{target="gpu-1", version="0.5.7"}') == 1
    assert value('ollama_fleet_monitor_info{version="9.9.9"}') == 1
    assert value('ollama_fleet_gpu_temperature_celsius{gpu="0", name="NVIDIA H200"}') == 64
    assert value('ollama_fleet_gpu_ecc_errors_total{gpu="0", type="uncorrected"}') == 1
    assert prometheus.query('ollama_fleet_gpu_power_watts{gpu="1"}') == []  # not supported


def test_a_histogram_quantile_reads_the_buckets(prometheus: Prometheus) -> None:
    p50 = prometheus.value(
        "histogram_quantile(0.5, sum by (le) "
        '(ollama_fleet_check_duration_seconds_bucket{target="gpu-1", check="chat"}))'
    )
    assert 2.5 <= p50 <= 5.0  # the one chat took 3.4 s: it is in the (2.5, 5] bucket


# -- the rules, loaded by Prometheus -------------------------------------------------------------


def test_rules_load_with_health_ok_and_fire_on_the_data(prometheus: Prometheus) -> None:
    expected = len(yaml.safe_load(render_rules())["groups"][0]["rules"])
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        (group,) = prometheus.client.get("/api/v1/rules").json()["data"]["groups"]
        health = {rule["name"]: rule["health"] for rule in group["rules"]}
        if set(health.values()) == {"ok"} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert group["name"] == "ollama-fleet"
    assert len(health) == expected
    assert set(health.values()) == {"ok"}, {n: h for n, h in health.items() if h != "ok"}
    alerts = prometheus.client.get("/api/v1/alerts").json()["data"]["alerts"]
    states = {(a["labels"]["alertname"], a["labels"].get("target")): a["state"] for a in alerts}
    assert states[("OllamaFleetCertExpiringSoon", "gpu-1")] == "firing"  # for: 0m, 10 days
    assert states[("OllamaFleetTargetDown", "gpu-2")] == "pending"  # for: 5m
    assert states[("OllamaFleetPortExposed", "gpu-1")] == "pending"
    assert ("OllamaFleetMonitorAbsent", None) not in states
    assert ("OllamaFleetCertExpiryCritical", "gpu-1") not in states


# -- every query of the Grafana dashboard ------------------------------------------------------


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every panel target, Grafana's variables made concrete."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\$\{?target\}?", ".*", target["expr"])
            expr = re.sub(r"\$\{?__(rate_)?interval\}?", "1m", expr)
            assert "$" not in expr, (panel["title"], expr)
            found.append((panel["title"], expr))
    return found


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "target" and variable["datasource"]["uid"] == "${DS_PROMETHEUS}"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert panel["targets"], panel["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_dashboard_query_runs_and_has_data(prometheus: Prometheus) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    empty = [(title, expr) for title, expr in exprs if not prometheus.query(expr)]
    assert empty == []


def test_the_target_variable_lists_the_targets(prometheus: Prometheus) -> None:
    (variable,) = json.loads(DASHBOARD.read_text())["templating"]["list"]
    metric = re.fullmatch(r"label_values\((\w+), target\)", variable["definition"])
    assert metric is not None
    answer = prometheus.client.get(
        "/api/v1/label/target/values", params={"match[]": metric.group(1)}
    ).json()
    assert answer["data"] == ["gpu-1", "gpu-2"]


def test_a_broken_query_would_be_caught(prometheus: Prometheus) -> None:
    answer = prometheus.client.get("/api/v1/query", params={"query": "sum by (target ("})
    assert answer.status_code == 400 and answer.json()["status"] == "error"
    assert prometheus.query("ollama_fleet_no_such_metric") == []
