"""End to end on the lab VM: the monitor under systemd, read through its forward, alerting.

The lab's inventory runs the monitor (connectivity every 5 s, on every address in the VM, its
port open only to qemu's gateway). These tests reuse the site that tests/e2e/test_site.py
deployed (tests/e2e/conftest.py runs them after it); run alone, they deploy it themselves. A
services-only deploy then points monitor_webhook_url at a receiver that runs in the VM, on its
loopback: stopping Ollama there must turn the connectivity series red and fire the alert to
it, and starting Ollama must resolve it. Nothing here connects to anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from ollama_fleet.lab import LabInfo, load_info, run_ssh

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

T = TypeVar("T")
UNIT = "ollama-fleet-monitor.service"
RECEIVER_PORT = 18099  # in the VM, on its loopback
ALERTS = "/root/monitor-alerts.jsonl"
# the path carries a token: a webhook URL is a secret, never in metrics, pages or logs
WEBHOOK = f"http://127.0.0.1:{RECEIVER_PORT}/alerts/T0KEN-monitor-e2e"
DEADLINE_S = 120.0
# The receiver: one line per POST (its path and body) appended to the file; run by systemd-run.
RECEIVER = """\
import http.server, json, sys

port, path = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(path, "a") as out:
            out.write(json.dumps({"path": self.path, "body": body.decode()}) + "\\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""
CONNECTIVITY = re.compile(
    r'^ollama_fleet_check_success\{[^}]*check="connectivity"[^}]*\} (?P<value>[0-9.e+-]+)$',
    re.MULTILINE,
)


@dataclass(frozen=True)
class Monitored:
    lab: LabInfo
    metrics_url: str
    deploy_out: str


def journal(lab: LabInfo) -> str:
    """The monitor's unit state and the end of its journal: what a failure shows."""
    shown = run_ssh(
        lab,
        f"systemctl status --no-pager {UNIT}; journalctl -u {UNIT} --no-pager -n 60",
        check=False,
    )
    return shown.stdout + shown.stderr


def poll(
    what: str, probe: Callable[[], T | None], lab: LabInfo, *, deadline_s: float = DEADLINE_S
) -> T:
    """`probe()` until it returns something; at the deadline a failure naming `what`, with
    the monitor's journal."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"within {deadline_s:.0f} s: {what}\n{journal(lab)}", pytrace=False)
        time.sleep(1.0)


def deploy(inventory: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_fleet",
            "deploy",
            str(inventory),
            "-y",
            "-e",
            f"monitor_webhook_url={WEBHOOK}",
            "--report",
            str(workdir / "checks.html"),
            # the lab's keys (host_vars/lab.yml, made by `lab up`) are vault-encrypted
            "--vault-password-file",
            str(inventory.parent / "vault-password"),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=1800,
    )


def site_is_deployed(lab: LabInfo) -> bool:
    found = run_ssh(
        lab, f"test -f /etc/systemd/system/{UNIT} && systemctl is-active caddy", check=False
    )
    return found.returncode == 0


@pytest.fixture(scope="module")
def monitored(lab_vm: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """The site deployed with the monitor alerting to the receiver in the VM."""
    lab = load_info(lab_vm.state_dir) or lab_vm  # the lab's tests may have restarted qemu
    assert lab.monitor_port is not None
    workdir = tmp_path_factory.mktemp("monitor-e2e")
    run_ssh(lab, "cat > /root/receiver.py", input=RECEIVER)
    run_ssh(
        lab,
        f"rm -f {ALERTS}; systemd-run --unit=e2e-alert-receiver --collect "
        f"/usr/bin/python3 /root/receiver.py {RECEIVER_PORT} {ALERTS}",
    )
    try:
        # reuse the site test_site.py deployed: only the services role, for the webhook
        roles = ("--roles", "services") if site_is_deployed(lab) else ()
        done = deploy(lab.inventory, workdir, *roles)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-3000:]
        yield Monitored(lab, f"http://127.0.0.1:{lab.monitor_port}", out)
    finally:
        run_ssh(lab, "systemctl start ollama; systemctl stop e2e-alert-receiver", check=False)


def connectivity(monitored: Monitored) -> float | None:
    """The connectivity series' value on /metrics, through the lab's forward; None: not yet."""
    try:
        answer = httpx.get(monitored.metrics_url + "/metrics", timeout=10)
    except httpx.HTTPError:
        return None  # still starting after the deploy's restart
    found = CONNECTIVITY.search(answer.text) if answer.status_code == 200 else None
    return float(found["value"]) if found else None


def received(monitored: Monitored, kind: str) -> dict[str, Any] | None:
    """The first connectivity alert of `kind` the receiver in the VM got; None: none yet."""
    lines = run_ssh(monitored.lab, f"cat {ALERTS} 2>/dev/null || true").stdout.splitlines()
    for line in lines:
        post = json.loads(line)
        body = json.loads(post["body"])
        if body.get("kind") == kind and body.get("check") == "connectivity":
            return {"path": post["path"], **body}
    return None


def test_the_monitor_runs_under_systemd_as_the_service_user(monitored: Monitored) -> None:
    lab = monitored.lab
    state = run_ssh(lab, f"systemctl is-active {UNIT}; systemctl is-enabled {UNIT}", check=False)
    assert state.stdout.split() == ["active", "enabled"], journal(lab)
    started = run_ssh(lab, f"systemctl show -p NRestarts --value {UNIT}").stdout.strip()
    assert started == "0", journal(lab)  # it stays up: no crash and restart since the deploy
    user = run_ssh(lab, f"stat -c %U /proc/$(systemctl show -p MainPID --value {UNIT})").stdout
    assert user.strip() == "ollama-fleet"
    owner = run_ssh(lab, "stat -c '%U %a' /var/lib/ollama-fleet/monitor").stdout.split()
    assert owner == ["ollama-fleet", "750"]
    reloaded = run_ssh(lab, f"systemctl reload {UNIT} && systemctl is-active {UNIT}", check=False)
    assert reloaded.stdout.split() == ["active"], journal(lab)  # SIGHUP: re-read, still up


def test_its_port_is_open_only_to_the_networks_allowed_for_metrics(monitored: Monitored) -> None:
    rules = run_ssh(monitored.lab, "nft list chain inet ollama_fleet input").stdout
    opened = [line.strip() for line in rules.splitlines() if "9464" in line]
    assert opened == ['ip saddr 10.0.2.2 tcp dport 9464 accept comment "firewall_allow_metrics"']


def test_metrics_through_the_forward_show_connectivity_up(monitored: Monitored) -> None:
    value = poll(
        "ollama_fleet_check_success{check=connectivity} 1",
        lambda: up if (up := connectivity(monitored)) == 1 else None,
        monitored.lab,
    )
    assert value == 1
    page = httpx.get(monitored.metrics_url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    metrics = httpx.get(monitored.metrics_url + "/metrics", timeout=10).text
    for shown in (page.text, metrics):
        assert "T0KEN" not in shown


def test_stopping_ollama_turns_connectivity_red_and_fires_the_alert(
    monitored: Monitored,
) -> None:
    poll(
        "connectivity up before the outage",
        lambda: connectivity(monitored) == 1 or None,
        monitored.lab,
    )
    run_ssh(monitored.lab, "systemctl stop ollama")

    poll(
        "ollama_fleet_check_success{check=connectivity} 0",
        lambda: True if connectivity(monitored) == 0 else None,
        monitored.lab,
    )
    alert = poll(
        "a firing alert at the receiver in the VM",
        lambda: received(monitored, "firing"),
        monitored.lab,
    )

    assert alert["path"] == "/alerts/T0KEN-monitor-e2e"
    assert alert["target"] and alert["severity"]


def test_starting_ollama_again_resolves_the_alert(monitored: Monitored) -> None:
    run_ssh(monitored.lab, "systemctl start ollama")

    poll(
        "connectivity up again",
        lambda: True if connectivity(monitored) == 1 else None,
        monitored.lab,
    )
    resolved = poll(
        "the resolved alert at the receiver",
        lambda: received(monitored, "resolved"),
        monitored.lab,
    )

    firing = received(monitored, "firing")
    assert firing is not None and resolved["target"] == firing["target"]
    journal = run_ssh(monitored.lab, f"journalctl -u {UNIT} --no-pager -o cat").stdout
    assert "T0KEN" not in journal  # the webhook URL is a secret
    assert "T0KEN" not in monitored.deploy_out
