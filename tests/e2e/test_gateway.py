"""End to end on the lab VM: the gateway behind Caddy, in front of the simulator, with keys.

The lab's own inventory (its vault beside it: the gateway on, an admin and a user key) is
deployed as `make demo` deploys it. Then, from this machine, through the forward of 443 only:
the `openai` client streams a chat through Caddy's TLS and the gateway to the simulator, a
wrong key gets 401, the gateway's metrics stay on the host, the monitor in the VM checks the
gateway with the lab's key, and the lines `ollama-fleet lab access` prints work as printed.
Run after tests/e2e/test_site.py (tests/e2e/conftest.py orders it), or alone.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from ollama_fleet.lab import LabInfo, load_info, run_ssh
from ollama_fleet.lab.vault import lab_key, password_file

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

T = TypeVar("T")
UNIT = "ollama-fleet-gateway.service"
DEADLINE_S = 120.0
OLLAMA_FLEET = Path(sys.executable).with_name("ollama-fleet")  # this venv's command
GATEWAY_CONNECTIVITY = re.compile(
    r'^ollama_fleet_check_success\{[^}]*check="connectivity"[^}]*\} (?P<value>[0-9.e+-]+)$',
    re.MULTILINE,
)


@dataclass(frozen=True)
class Site:
    lab: LabInfo
    url: str
    ca: Path
    key: str
    deploy_out: str


def journal(lab: LabInfo) -> str:
    shown = run_ssh(
        lab,
        f"systemctl status --no-pager {UNIT}; journalctl -u {UNIT} --no-pager -n 40",
        check=False,
    )
    return shown.stdout + shown.stderr


def poll(what: str, probe: Callable[[], T | None], lab: LabInfo) -> T:
    deadline = time.monotonic() + DEADLINE_S
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"within {DEADLINE_S:.0f} s: {what}\n{journal(lab)}", pytrace=False)
        time.sleep(1.0)
    return found


@pytest.fixture(scope="module")
def site(lab_vm: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The lab's own inventory deployed, with its vault's password, as `make demo` does."""
    lab = load_info(lab_vm.state_dir) or lab_vm  # the lab's tests may have restarted qemu
    workdir = tmp_path_factory.mktemp("gateway-e2e")
    done = subprocess.run(
        [
            str(OLLAMA_FLEET),
            "deploy",
            str(lab.inventory),
            "-y",
            "--vault-password-file",
            str(password_file(lab.state_dir)),
            "--checks",
            "all",
            "--report",
            str(workdir / "checks.html"),
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=1800,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    return Site(
        lab=lab,
        url=f"https://localhost:{lab.https_port}",
        ca=lab.state_dir / "tls" / "ca.pem",
        key=lab_key(lab.state_dir),
        deploy_out=out,
    )


def trust(site: Site) -> ssl.SSLContext:
    """The lab's CA, which signs Caddy's certificate for localhost."""
    return ssl.create_default_context(cafile=str(site.ca))


def client(site: Site, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{site.url}/v1",
        api_key=key,
        http_client=httpx.Client(verify=trust(site), timeout=60),
        max_retries=0,
    )


def test_the_deploy_ran_the_gateway_and_its_checks_passed_through_it(site: Site) -> None:
    assert "[lab] changed services: ollama-fleet-gateway.service" in site.deploy_out
    assert "checks passed" in site.deploy_out  # with api_key, public_access closed
    assert site.key not in site.deploy_out
    state = run_ssh(site.lab, f"systemctl is-active {UNIT}; systemctl is-enabled {UNIT}")
    assert state.stdout.split() == ["active", "enabled"], journal(site.lab)
    modes = run_ssh(
        site.lab, "stat -c '%a %U %G' /etc/ollama-fleet/gateway.yml /etc/ollama-fleet/checks.yml"
    ).stdout.splitlines()
    assert modes == ["640 root ollama-fleet"] * 2
    hashed = run_ssh(site.lab, f"grep -c {site.key} /etc/ollama-fleet/gateway.yml", check=False)
    assert hashed.stdout.strip() == "0"  # only its sha256 is there


def test_openai_streams_a_chat_through_caddy_and_the_gateway(site: Site) -> None:
    with client(site, site.key) as llm:
        stream = llm.chat.completions.create(
            model="llama3.2:1b",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
        )
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) > 1  # streamed, not one buffered answer
    assert "".join(pieces).strip()


def test_a_wrong_key_gets_401_and_no_key_too(site: Site) -> None:
    with (
        client(site, "ofk_not-a-key-of-this-lab") as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.models.list()
    answer = httpx.get(f"{site.url}/api/tags", verify=trust(site), timeout=30)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].lower().startswith("bearer")


def test_the_gateways_metrics_stay_on_the_host(site: Site) -> None:
    outside = httpx.get(f"{site.url}/metrics", verify=trust(site), timeout=30)
    assert outside.status_code == 404
    inside = run_ssh(site.lab, "curl -fsS http://127.0.0.1:8080/metrics").stdout
    assert "gateway_requests_total" in inside
    assert site.key not in inside


def test_the_monitor_checks_the_gateway_with_the_labs_key(site: Site) -> None:
    assert site.lab.monitor_port is not None
    metrics_url = f"http://127.0.0.1:{site.lab.monitor_port}/metrics"
    target = run_ssh(site.lab, "grep -E 'public_url|api_key' /etc/ollama-fleet/checks.yml").stdout
    assert "public_url: http://127.0.0.1:8080" in target  # the gateway, not Ollama itself
    assert "api_key:" in target

    def connectivity() -> float | None:
        try:
            text = httpx.get(metrics_url, timeout=10).text
        except httpx.HTTPError:
            return None
        found = GATEWAY_CONNECTIVITY.search(text)
        return float(found["value"]) if found and float(found["value"]) == 1 else None

    assert poll("the monitor's connectivity check of the gateway at 1", connectivity, site.lab)
    log = run_ssh(site.lab, f"journalctl -u {UNIT} --no-pager -o cat").stdout
    assert site.key not in log


def test_a_reload_keeps_the_gateway_running(site: Site) -> None:
    before = run_ssh(site.lab, f"systemctl show -p MainPID --value {UNIT}").stdout.strip()
    reloaded = run_ssh(site.lab, f"systemctl reload {UNIT} && systemctl is-active {UNIT}")
    assert reloaded.stdout.split() == ["active"], journal(site.lab)
    after = run_ssh(site.lab, f"systemctl show -p MainPID --value {UNIT}").stdout.strip()
    assert after == before  # SIGHUP: the same process, its streams go on


def test_the_lines_lab_access_prints_work_as_printed(site: Site) -> None:
    shown = subprocess.run(
        [str(OLLAMA_FLEET), "lab", "access", "--state-dir", str(site.lab.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert site.key not in shown
    lines = {label: rest.strip() for label, rest in (ln.split(":", 1) for ln in shown.splitlines())}
    for label in ("key", "curl", "openai"):
        ran = subprocess.run(
            ["bash", "-c", lines[label]], capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, (label, ran.stdout, ran.stderr)
        assert ran.stdout.strip(), label
    key = subprocess.run(["bash", "-c", lines["key"]], capture_output=True, text=True, timeout=60)
    assert key.stdout.strip() == site.key


def test_a_session_streams_through_caddy_and_is_kept_on_the_host(site: Site) -> None:
    """The sessions API behind Caddy's TLS: SSE unbuffered, history kept in the unit's state
    directory (SQLite, mode 0600, the service user's), continued on the next turn."""
    headers = {"Authorization": f"Bearer {site.key}"}
    with httpx.Client(base_url=site.url, verify=trust(site), timeout=60, headers=headers) as web:
        body = {"message": "Say hello", "model": "llama3.2:1b", "options": {"max_tokens": 8}}
        with connect_sse(web, "POST", "/v1/chat", json=body) as events:
            assert events.response.status_code == 200, events.response.read()
            seen = [json.loads(event.data) for event in events.iter_sse()]
        assert [e["type"] for e in seen[-2:]] == ["token", "done"] and len(seen) > 2
        session_id = seen[-1]["session_id"]
        again = web.post(
            "/v1/chat", json={"message": "again", "session_id": session_id, "stream": False}
        )
        assert again.status_code == 200, again.text
        stored = web.get(f"/v1/sessions/{session_id}/messages").json()["data"]
        assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
        page = web.get("/chat")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        health = web.get("/health").json()
    assert health["services"]["database"] == "ok"
    where = "/var/lib/ollama-fleet/gateway/sessions.sqlite3"
    mode = run_ssh(site.lab, f"stat -c '%a %U' {where}").stdout.strip()
    assert mode == "600 ollama-fleet"
    config = run_ssh(site.lab, "grep database_url /etc/ollama-fleet/gateway.yml").stdout
    assert f"sqlite:///{where}" in config
