"""The monitor process against live simulators, with faults switched on and off while it runs.

An alert fires after its threshold and resolves; a restart in the middle neither sends it again
nor forgets it; a receiver that fails gets the alert on a later try; SIGHUP takes a good config
and refuses a bad one; SIGTERM exits 0.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread

from .live import MonitorProcess, receiver, wait_for

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-t0ken"


@pytest.fixture
def simulators() -> Iterator[list[str]]:
    """Two simulated Ollama hosts (test doubles), fast tokens."""
    config = SimulatorConfig(tokens_per_second=0)
    with serve_in_thread(create_app(config)) as one, serve_in_thread(create_app(config)) as two:
        yield [f"http://127.0.0.1:{one}", f"http://127.0.0.1:{two}"]


def set_faults(url: str, **faults: Any) -> None:
    response = httpx.put(f"{url}/_simulator/faults", json=faults, timeout=5)
    assert response.status_code == 200, response.text


def write_config(path: Path, urls: list[str], hook: str, **extra: Any) -> Path:
    document: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "state_dir": str(path.parent / "state"),
        "targets": [
            {
                "name": f"sim-{index}",
                "url": url,
                "required_models": ["llama3.2:1b"],
                "public_access": "open",
                "check_write_endpoints": False,
            }
            for index, url in enumerate(urls, start=1)
        ],
        "checks": ["connectivity", "models"],
        "intervals": {"connectivity": "200ms", "models": "200ms"},
        "jitter": 0.0,
        "shutdown_grace": "2s",
        "alerts": {
            "failure_threshold": 2,
            "success_threshold": 2,
            "send_on_resolved": True,
            "retry": "1s",
        },
        "receivers": [{"name": "ops", "type": "webhook", "url": hook}],
        **extra,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_an_alert_fires_after_the_threshold_resolves_and_survives_a_restart(
    simulators: list[str], tmp_path: Path
) -> None:
    with receiver() as (hooks, hook):
        config = write_config(tmp_path / "monitor.yml", simulators, hook)
        log = tmp_path / "monitor.log"
        with MonitorProcess(config, log) as monitor:
            wait_for(
                "sim-1 connectivity to be up",
                lambda: (
                    monitor.metric(
                        "ollama_fleet_check_success", target="sim-1", check="connectivity"
                    )
                    == 1.0
                ),
            )
            set_faults(simulators[0], status=500, paths=["/api/version"])
            wait_for("the firing alert", lambda: hooks.kinds("connectivity") == ["firing"])
            assert (
                monitor.metric("ollama_fleet_check_success", target="sim-1", check="connectivity")
                == 0.0
            )
            # the healthy host stays green and alerts nothing
            assert (
                monitor.metric("ollama_fleet_check_success", target="sim-2", check="connectivity")
                == 1.0
            )
            alert = hooks.bodies[0]
            assert (alert["target"], alert["severity"]) == ("sim-1", "critical")
            status = monitor.get("/api/v1/status").json()
            assert [(a["target"], a["check"]) for a in status["alerts"]] == [
                ("sim-1", "connectivity")
            ]
            assert monitor.stop() == 0

        # restarted while the alert is open: it is neither sent again nor forgotten
        with MonitorProcess(config, log) as monitor:
            wait_for(
                "a few checks after the restart",
                lambda: (
                    (
                        monitor.metric(
                            "ollama_fleet_check_runs_total",
                            target="sim-1",
                            check="connectivity",
                            status="fail",
                        )
                        or 0
                    )
                    >= 4
                ),
            )
            assert hooks.kinds("connectivity") == ["firing"]
            status = monitor.get("/api/v1/status").json()
            assert [(a["target"], a["check"]) for a in status["alerts"]] == [
                ("sim-1", "connectivity")
            ]
            set_faults(simulators[0])
            wait_for(
                "the resolved alert",
                lambda: hooks.kinds("connectivity") == ["firing", "resolved"],
            )
            # the page and its API share a snapshot cached for a second (app.SNAPSHOT_TTL_S)
            wait_for(
                "the status API without the alert",
                lambda: monitor.get("/api/v1/status").json()["alerts"] == [],
                timeout_s=5,
            )
            assert monitor.stop() == 0
    assert SECRET not in log.read_text()


def test_a_receiver_that_fails_gets_the_alert_on_a_later_try_exactly_once(
    simulators: list[str], tmp_path: Path
) -> None:
    with receiver(fail_first=2) as (hooks, hook):
        config = write_config(
            tmp_path / "monitor.yml",
            simulators[:1],
            hook,
            checks=["models"],
            intervals={"models": "200ms"},
        )
        log = tmp_path / "monitor.log"
        set_faults(simulators[0], status=503, paths=["/api/tags"])
        with MonitorProcess(config, log) as monitor:
            wait_for("the alert past two failed sends", lambda: hooks.kinds("models"))
            assert hooks.attempts == 3
            wait_for(
                "the failed deliveries counted",
                lambda: (
                    monitor.metric(
                        "ollama_fleet_monitor_alert_deliveries_total",
                        receiver="ops",
                        result="error",
                    )
                    == 2.0
                ),
            )
            assert hooks.kinds("models") == ["firing"]
            assert monitor.stop() == 0
    text = log.read_text()
    assert "ops" in text  # the failed send is logged by the receiver's name ...
    assert SECRET not in text  # ... never by its URL


def test_sighup_takes_a_good_config_and_refuses_a_bad_one(
    simulators: list[str], tmp_path: Path
) -> None:
    with receiver() as (_, hook):
        config = write_config(tmp_path / "monitor.yml", simulators[:1], hook)
        log = tmp_path / "monitor.log"
        with MonitorProcess(config, log) as monitor:
            wait_for(
                "sim-1 up",
                lambda: monitor.metric(
                    "ollama_fleet_check_success", target="sim-1", check="connectivity"
                ),
            )
            good = config.read_text()
            config.write_text(good.replace("jitter: 0.0", "jitter: fast"))
            monitor.signal(signal.SIGHUP)
            wait_for("the refusal in the log", lambda: "new config refused" in monitor.text())
            refusal = next(x for x in monitor.text().splitlines() if "config refused" in x)
            assert "jitter" in refusal
            assert monitor.get("/healthz").status_code == 200  # the old config keeps running

            write_config(config, simulators, hook)
            monitor.signal(signal.SIGHUP)
            wait_for(
                "the new target checked",
                lambda: (
                    monitor.metric(
                        "ollama_fleet_check_success", target="sim-2", check="connectivity"
                    )
                    == 1.0
                ),
            )
            assert "config reloaded: 2 targets" in monitor.text()
            assert monitor.stop() == 0


def test_a_running_monitor_serves_its_page_api_and_badges(
    simulators: list[str], tmp_path: Path
) -> None:
    with receiver() as (_, hook):
        config = write_config(tmp_path / "monitor.yml", simulators, hook)
        with MonitorProcess(config, tmp_path / "monitor.log") as monitor:
            wait_for(
                "both targets checked",
                lambda: (
                    all(
                        t["status"] == "ok" for t in monitor.get("/api/v1/status").json()["targets"]
                    )
                    and len(monitor.get("/api/v1/status").json()["targets"]) == 2
                ),
            )
            page = monitor.get("/", headers={"Accept-Encoding": "gzip"})
            assert page.status_code == 200
            assert page.headers["content-encoding"] == "gzip"
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert 'data-target="sim-1"' in page.text and 'data-target="sim-2"' in page.text
            assert "simulator" in page.text.lower()  # the test double says what it is
            badge = monitor.get("/api/v1/badges/sim-1/status.svg")
            assert badge.headers["content-type"].startswith("image/svg+xml")
            assert ">ok<" in badge.text
            assert monitor.get("/api/v1/badges/sim-1/uptime/24h.svg").status_code == 200
            assert monitor.get("/api/v1/badges/nobody/status.svg").status_code == 404
            assert monitor.get("/api/v1/badges/sim-1/uptime/1y.svg").status_code == 404
            assert hook not in page.text and SECRET not in monitor.get("/metrics").text
            assert monitor.stop() == 0
