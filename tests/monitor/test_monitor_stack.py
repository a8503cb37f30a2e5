"""The monitor beside the engines it is meant to run with: a real Prometheus scrapes the
monitor process, a real Alertmanager receives its alerts, and both are read back through
their own HTTP APIs while a simulated host fails and recovers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import free_port, serve_in_thread

from .live import MonitorProcess, binary, daemon, wait_for

pytestmark = pytest.mark.integration


def prometheus(root: Path, monitor_url: str) -> tuple[list[str], str]:
    root.mkdir()
    target = monitor_url.removeprefix("http://").rstrip("/")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "ollama-fleet", "static_configs": [{"targets": [target]}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus"),
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return command, f"http://127.0.0.1:{port}"


def query(base: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def value(base: str, expr: str) -> float | None:
    result = query(base, expr)
    return float(result[0]["value"][1]) if result else None


def active_alerts(base: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{base}/api/v2/alerts", params={"active": "true"}, timeout=10).json()
    return [alert for alert in alerts if alert["status"]["state"] == "active"]


def test_prometheus_sees_the_failure_and_alertmanager_gets_the_alert_then_its_end(
    tmp_path: Path, alertmanager: str
) -> None:
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        sim = f"http://127.0.0.1:{port}"
        document = {
            "listen": "127.0.0.1:0",
            "state_dir": str(tmp_path / "state"),
            "targets": [{"name": "gpu-1", "url": sim, "public_access": "open"}],
            "checks": ["connectivity"],
            "intervals": {"connectivity": "250ms"},
            "alerts": {"failure_threshold": 2, "success_threshold": 2, "retry": "1s"},
            "receivers": [{"name": "am", "type": "alertmanager", "url": alertmanager}],
        }
        config = tmp_path / "monitor.yml"
        config.write_text(yaml.safe_dump(document))
        with MonitorProcess(config, tmp_path / "monitor.log") as monitor:
            command, base = prometheus(tmp_path / "prometheus", monitor.url)
            with daemon(command, f"{base}/-/ready", tmp_path / "prometheus.log"):
                success = 'ollama_fleet_check_success{target="gpu-1",check="connectivity"}'
                wait_for("Prometheus to scrape success 1", lambda: value(base, success) == 1.0)
                assert value(base, 'up{job="ollama-fleet"}') == 1.0

                httpx.put(f"{sim}/_simulator/faults", json={"status": 500}).raise_for_status()
                wait_for("Prometheus to see the failure", lambda: value(base, success) == 0.0)
                firing = 'ollama_fleet_alert_firing{target="gpu-1",check="connectivity"}'
                wait_for("the alert in the metrics", lambda: value(base, firing) == 1.0)
                (alert,) = wait_for(
                    "the alert in Alertmanager", lambda: active_alerts(alertmanager)
                )
                assert alert["labels"]["target"] == "gpu-1"
                assert alert["labels"]["check"] == "connectivity"
                assert alert["labels"]["severity"] == "critical"
                assert "500" in alert["annotations"]["summary"]

                httpx.put(f"{sim}/_simulator/faults", json={}).raise_for_status()
                wait_for("Prometheus to see the recovery", lambda: value(base, success) == 1.0)
                wait_for("Alertmanager to end it", lambda: not active_alerts(alertmanager))
            assert monitor.stop() == 0
