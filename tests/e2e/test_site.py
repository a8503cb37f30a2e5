"""End to end on the lab VM: the whole site deploys, converges, survives a reboot, refuses harm.

The tests share one VM (the session's `lab_vm`) and run in file order, as an operator would:
a deploy stopped by a wrong vault password, the first deploy, a no-op re-deploy, what the
firewall lets through, a broken Caddy config, drift repaired, a reboot.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from ollama_fleet.checks.probes.exposure import tcp_state
from ollama_fleet.controller import CADDY_LOCAL_ROOT
from ollama_fleet.lab import LabInfo, load_info, reboot, run_ssh
from ollama_fleet.vault import VaultPassword, encrypt_value

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
SECRET = "https://hooks.example.test/T0KEN-e2e-secret"
HOST_VARS_INDENT = " " * 10  # where the lab inventory's host variables sit


@dataclass(frozen=True)
class Deploy:
    code: int
    out: str
    seconds: float


def deploy(inventory: Path, workdir: Path, *args: str, password: str = PASSWORD) -> Deploy:
    password_file = workdir / "vault-password"
    password_file.write_text(password + "\n")
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_fleet",
            "deploy",
            str(inventory),
            "-y",
            "--vault-password-file",
            str(password_file),
            "--report",
            str(workdir / "checks.html"),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=1800,
    )
    return Deploy(done.returncode, done.stdout + done.stderr, time.monotonic() - started)


def check(inventory: Path) -> subprocess.CompletedProcess[str]:
    password_file = inventory.parent / "vault-password"
    password_file.write_text(PASSWORD + "\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_fleet",
            "check",
            str(inventory),
            "--vault-password-file",
            str(password_file),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def with_vars(lab_vm: LabInfo, path: Path, extra: str = "") -> Path:
    """The lab's inventory plus a vault-encrypted webhook URL and `extra` host variables."""
    secret = encrypt_value("monitor_webhook_url", SECRET, VaultPassword(PASSWORD))
    lines = [HOST_VARS_INDENT + line for line in (secret + extra).splitlines() if line.strip()]
    path.write_text(lab_vm.inventory.read_text() + "\n".join(lines) + "\n")
    return path


def sha(lab_vm: LabInfo, path: str) -> str:
    return run_ssh(lab_vm, f"sha256sum {path}").stdout.split()[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def inventory(lab_vm: LabInfo, workdir: Path) -> Path:
    return with_vars(lab_vm, workdir / "lab.yml")


@pytest.fixture(scope="module")
def first(lab_vm: LabInfo, inventory: Path, workdir: Path) -> Deploy:
    return deploy(inventory, workdir, "--diff")


def test_wrong_vault_password_stops_the_deploy_before_the_host_is_touched(
    lab_vm: LabInfo, inventory: Path, workdir: Path
) -> None:
    result = deploy(inventory, workdir, password="not the password")

    assert result.code == 2
    assert f"{inventory}: line" in result.out
    assert "wrong password or tampered data" in result.out
    assert "connected" not in result.out
    untouched = run_ssh(lab_vm, "id ollama; ls /etc/caddy /opt/ollama", check=False)
    assert "no such user" in untouched.stderr
    assert "/etc/caddy" in untouched.stderr and "/opt/ollama" in untouched.stderr


def test_the_whole_site_deploys_and_its_checks_pass(first: Deploy, workdir: Path) -> None:
    assert first.code == 0, first.out[-3000:]
    for role in ("ollama", "models", "caddy", "firewall", "services"):
        assert f"[lab] changed {role}:" in first.out
    assert "gpu: no NVIDIA GPU" in first.out
    assert "SIMULATOR artifact" in first.out
    assert "checks passed" in first.out
    assert (workdir / "checks.html").is_file()


def test_no_secret_in_the_output_even_with_diffs(first: Deploy, lab_vm: LabInfo) -> None:
    assert "diff of /etc/caddy/Caddyfile" in first.out  # --diff shows plain configs...
    assert "/etc/ollama-fleet/monitor.yml changes (not shown: it may hold secrets)" in first.out
    assert "/etc/caddy/tls/key.pem changes (not shown" in first.out  # ...never secret ones
    assert "T0KEN" not in first.out
    on_host = run_ssh(
        lab_vm,
        "stat -c '%a %U %G' /etc/ollama-fleet/monitor.yml; "
        "grep -c T0KEN /etc/ollama-fleet/monitor.yml",
    ).stdout.split("\n")
    assert on_host[:2] == ["640 root ollama-fleet", "1"]


def test_a_second_deploy_changes_nothing(first: Deploy, inventory: Path, workdir: Path) -> None:
    again = deploy(inventory, workdir)

    assert again.code == 0, again.out[-3000:]
    assert "lab: no changes" in again.out, again.out[-4000:]
    assert "changed" not in again.out.replace("nothing changed", "")


def test_ollama_answers_on_the_host_only_and_ssh_still_works(
    first: Deploy, lab_vm: LabInfo
) -> None:
    inside = run_ssh(lab_vm, "curl -fsS http://127.0.0.1:11434/api/version")
    assert "simulator" in inside.stdout
    outside = asyncio.run(tcp_state("127.0.0.1", lab_vm.ollama_port, timeout_s=3, speak=True))
    assert outside != "open"
    assert run_ssh(lab_vm, "echo still here").stdout.strip() == "still here"
    rules = run_ssh(lab_vm, "nft list chain inet ollama_fleet input").stdout
    assert "policy drop" in rules
    assert "11434" not in rules


def test_from_outside_chat_works_and_the_write_endpoints_get_403(
    first: Deploy, lab_vm: LabInfo
) -> None:
    # through the forward of 443, as a stranger would: Caddy in front of the simulator
    url = f"https://localhost:{lab_vm.https_port}"
    with httpx.Client(base_url=url, verify=False, timeout=60) as http:  # noqa: S501
        chat = http.post(
            "/api/chat",
            json={
                "model": "llama3.2:1b",
                "stream": False,
                "messages": [{"role": "user", "content": "hello"}],
            },
        )
        assert chat.status_code == 200, chat.text
        for method, path in (
            ("POST", "/api/pull"),
            ("DELETE", "/api/delete"),
            ("POST", "/api/create"),
            ("POST", "/API/Pull/"),
        ):
            refused = http.request(method, path, json={"model": "llama3.2:1b"})
            assert refused.status_code == 403, (path, refused.text)
            assert "error" in refused.json()
    models = run_ssh(lab_vm, "curl -fsS http://127.0.0.1:11434/api/tags").stdout
    assert "llama3.2:1b" in models  # the DELETE never reached Ollama


def test_the_checks_report_open_access_as_the_lab_declares_it(
    first: Deploy, inventory: Path
) -> None:
    password_file = inventory.parent / "vault-password"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ollama_fleet",
            "check",
            str(inventory),
            "--format",
            "json",
            "--vault-password-file",
            str(password_file),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    auth = [r for r in json.loads(done.stdout)["results"] if r["check"] == "auth"]
    assert len(auth) == 1 and auth[0]["status"] != "fail", auth
    messages = " ".join(f["message"] for f in auth[0]["findings"])
    assert "public_access: open" in messages, messages  # reported, not failed
    assert "403" in messages  # the write endpoints are refused from outside


def test_secrets_and_admin_apis_are_closed_on_the_host(first: Deploy, lab_vm: LabInfo) -> None:
    modes = run_ssh(
        lab_vm,
        "stat -c '%a %U %n' "
        "/etc/systemd/system/ollama.service.d/ollama-fleet.conf "
        "/etc/ollama-fleet/monitor.yml /etc/ollama-fleet/gateway.yml "
        "/etc/caddy/tls/key.pem",
    ).stdout.splitlines()
    for line in modes:
        mode = line.split()[0]
        assert mode[-1] == "0", line  # nothing secret-bearing is world-readable
    assert modes[0].startswith("600 root ")
    listening = run_ssh(lab_vm, "ss -Hltn").stdout
    assert ":2019 " not in listening  # Caddy's admin API is not on TCP...
    assert run_ssh(lab_vm, "test -S /run/caddy/admin.sock && echo socket").stdout.strip() == (
        "socket"
    )  # ...but on its socket, which `systemctl reload caddy` uses
    assert run_ssh(lab_vm, "systemctl reload caddy && echo reloaded").stdout.strip() == "reloaded"


def test_a_broken_caddy_config_is_rejected_and_the_old_one_keeps_serving(
    first: Deploy, lab_vm: LabInfo, inventory: Path, workdir: Path
) -> None:
    before = sha(lab_vm, "/etc/caddy/Caddyfile")
    broken = with_vars(
        lab_vm, workdir / "broken.yml", "\ncaddy_extra_directives: reverse_proxyy nowhere"
    )

    result = deploy(broken, workdir)

    assert result.code == 1
    assert "FAILED caddy: Caddyfile (validated on the host first)" in result.out
    assert "reverse_proxyy" in result.out  # caddy validate's own complaint
    assert sha(lab_vm, "/etc/caddy/Caddyfile") == before
    assert run_ssh(lab_vm, "ls /etc/caddy").stdout.split() == ["Caddyfile", "tls"]
    served = check(inventory)
    assert served.returncode == 0, served.stdout


def test_drift_on_the_host_is_found_and_repaired(
    first: Deploy, lab_vm: LabInfo, inventory: Path, workdir: Path
) -> None:
    dropin = "/etc/systemd/system/ollama.service.d/ollama-fleet.conf"
    wanted = sha(lab_vm, dropin)
    run_ssh(lab_vm, f"echo 'Environment=OLLAMA_HOST=0.0.0.0:11434' >> {dropin}")

    result = deploy(inventory, workdir)

    assert result.code == 0, result.out[-3000:]
    assert "[lab] changed ollama: environment drop-in" in result.out
    assert "[lab] changed ollama: restart for the change" in result.out
    assert sha(lab_vm, dropin) == wanted


def test_tls_internal_verifies_against_the_hosts_own_caddy_root(
    first: Deploy, lab_vm: LabInfo, inventory: Path, workdir: Path
) -> None:
    # the default caddy_tls: Caddy's own CA on the host; no tls_ca_file for the checks
    document = yaml.safe_load(lab_vm.inventory.read_text())
    lab = document["all"]["children"]["gpu"]["hosts"]["lab"]
    for key in ("caddy_tls_cert_file", "caddy_tls_key_file", "tls_ca_file"):
        del lab[key]
    lab["caddy_tls"] = "internal"
    internal = workdir / "internal.yml"
    internal.write_text(yaml.safe_dump(document, sort_keys=False))

    result = deploy(internal, workdir, "--roles", "caddy", "--checks", "all")

    assert result.code == 0, result.out[-3000:]
    assert "checks passed" in result.out  # TLS verified, not switched off
    root = run_ssh(lab_vm, f"cat {CADDY_LOCAL_ROOT}").stdout
    assert root.startswith("-----BEGIN CERTIFICATE-----")
    restored = deploy(inventory, workdir, "--roles", "caddy")  # the lab's own CA again
    assert restored.code == 0, restored.out[-3000:]


def test_everything_comes_back_after_a_reboot(
    first: Deploy, lab_vm: LabInfo, inventory: Path
) -> None:
    reboot(load_info(lab_vm.state_dir) or lab_vm)  # the lab's tests may have restarted qemu

    deadline = time.monotonic() + 180
    while (result := check(inventory)).returncode != 0 and time.monotonic() < deadline:
        time.sleep(5)  # services may still be starting once SSH answers
    assert result.returncode == 0, result.stdout
    assert "policy drop" in run_ssh(lab_vm, "nft list chain inet ollama_fleet input").stdout
    units = "ollama-fleet-check.timer ollama caddy ollama-fleet-firewall"
    enabled = run_ssh(lab_vm, f"systemctl is-enabled {units}")
    assert enabled.stdout.split() == ["enabled"] * 4
