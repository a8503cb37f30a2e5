"""`ollama-fleet diagnose` as an operator meets it: usage errors, --url, unreachable SSH, secrets.

Real parts only: the simulator (a test double of Ollama's API) under uvicorn on 127.0.0.1,
ports nothing listens on, a TCP listener that answers garbage instead of SSH, a keyed HTTP
server that echoes the key it gets back in its errors. Usage errors run through click's
CliRunner; runs that start the pyinfra child run the real command as a subprocess, so what
the child prints is in the captured output too. No host is ever changed: SSH never gets in.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ollama_fleet.cli import diagnose as diagnose_cli
from ollama_fleet.cli import main
from ollama_fleet.diagnose import reports
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.simulator.config import Faults
from ollama_fleet.testbed.servers import free_port, serve_in_thread
from ollama_fleet.vault import VaultPassword, encrypt_value
from raw_servers import raw_servers

# usage errors stop before anything is contacted: nothing listens here, and nothing must try
NOWHERE = "http://127.0.0.1:9"
PASSWORD = "pw-diagnose-5e1f"
SECRET = "sk-diag-vault-93f1c7"
WRITE_PATHS = (
    "/api/pull",
    "/api/push",
    "/api/delete",
    "/api/create",
    "/api/copy",
    "/api/blobs/sha256:" + "0" * 64,
)


def diagnose(*args: str) -> Result:
    return CliRunner().invoke(main, ["diagnose", *args], catch_exceptions=False)


def run_diagnose(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own: the pyinfra child's output is captured too."""
    return subprocess.run(
        [sys.executable, "-m", "ollama_fleet", "diagnose", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=240,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "NO_COLOR": "1"},
    )


def one_error_line(result: Result) -> str:
    """Exit 2, nothing on stdout, no traceback, exactly one `Error:` line; returns it."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def findings(document: dict[str, object], rule: str) -> list[dict[str, object]]:
    hosts = document["hosts"]
    assert isinstance(hosts, list)
    return [f for h in hosts for f in h["findings"] if f["rule"] == rule]


def validate(document: object) -> None:
    jsonschema.Draft202012Validator(reports.load_schema()).validate(document)


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def refused_port() -> int:
    """A port on 127.0.0.1 nothing listens on (checked: a connect is refused)."""
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


@pytest.fixture
def garbage_ssh() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts, sends a line that is no SSH banner, and waits."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\xffHELLO this is not ssh\r\n" * 4)
        await writer.drain()
        await reader.read()  # until the client gives up
        writer.close()

    with raw_servers({"garbage": garbage}) as ports:
        yield ports["garbage"]


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    """A fresh ed25519 key in OpenSSH format, mode 0600: the inventory's ssh_key loads."""
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path = tmp_path / "id_ed25519"
    path.write_bytes(key)
    path.chmod(0o600)
    return path


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "vault-password"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def write_inventory(
    tmp_path: Path,
    *,
    ssh_key: Path,
    ssh_port: int,
    host_lines: Sequence[str] = (),
    vault_lines: Sequence[str] = (),
) -> Path:
    lines = [
        "all:",
        "  vars:",
        "    ssh_hostname: 127.0.0.1",
        f"    ssh_port: {ssh_port}",
        "    ssh_user: root",
        f"    ssh_key: {ssh_key}",
        *vault_lines,
        "  hosts:",
        "    gpu-1:",
        *(host_lines or ["      ollama_artifact: simulator"]),
    ]
    path = tmp_path / "inv.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- usage -------------------------------------------------------------------------------------


def test_nothing_to_diagnose_is_a_usage_error() -> None:
    line = one_error_line(diagnose())

    assert line == "Error: give an INVENTORY, or at least one --url"


def test_limit_without_an_inventory_is_a_usage_error() -> None:
    line = one_error_line(diagnose("--url", NOWHERE, "--limit", "gpu-1"))

    assert "--limit" in line and "INVENTORY" in line


def test_an_unknown_report_suffix_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "report.txt"

    line = one_error_line(diagnose("--url", NOWHERE, "-o", str(out)))

    assert str(out) in line and ".html, .md or .json" in line
    assert not out.exists()


def test_a_malformed_inventory_names_file_and_line(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-1:\n      ssh_port: [22\n", encoding="utf-8")

    line = one_error_line(diagnose(str(inventory)))

    assert line.startswith(f"Error: {inventory}:")
    assert line.split(":")[2].strip().isdigit(), line  # file:LINE: ...


@pytest.mark.integration
def test_list_hosts_lists_and_contacts_nothing(tmp_path: Path, ssh_key: Path) -> None:
    connections: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(await reader.read(64))
        writer.close()

    with raw_servers({"ssh": record, "https": record}) as ports:
        inventory = write_inventory(
            tmp_path,
            ssh_key=ssh_key,
            ssh_port=ports["ssh"],
            host_lines=[f"      public_url: http://127.0.0.1:{ports['https']}", "    gpu-2: {}"],
        )
        result = diagnose(str(inventory), "--limit", "gpu-*", "--list-hosts")

    assert result.exit_code == 0, result.output
    assert result.stdout == "  hosts (2):\n    gpu-1\n    gpu-2\n"
    assert connections == []


def test_help_explains_the_exit_codes() -> None:
    result = diagnose("--help")

    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "0 no finding above info" in text
    assert "1 findings" in text
    assert "2 usage or inventory error" in text


def test_the_cli_offers_exactly_the_report_formats() -> None:
    # the CLI keeps its own copy so --help does not import the reporters
    assert diagnose_cli.FORMATS == reports.FORMATS


# -- --url: outside only -----------------------------------------------------------------------


def test_url_is_diagnosed_from_outside_only(tmp_path: Path, sim_url: str) -> None:
    out = tmp_path / "report.json"

    result = diagnose("--url", sim_url, "-o", str(out))

    assert "SSH" not in result.stderr  # "outside checks (read-only)", no inside view
    document = json.loads(out.read_text(encoding="utf-8"))
    validate(document)
    (host,) = document["hosts"]
    assert (host["url"], host["inside"], host["facts"]) == (sim_url, False, None)
    assert not host["unreachable"]
    checks = {c["check"]: c["status"] for c in host["checks"]}
    assert checks["connectivity"] == checks["models"] == "ok"
    assert findings(document, "ssh-unreachable") == []
    assert f"json report written to {out}" in result.stdout


@pytest.mark.integration
def test_an_endpoint_behind_caddy_like_the_deploys_exits_0(tmp_path: Path) -> None:
    # real Caddy with TLS in front of the simulator, the write endpoints refused (as the
    # caddy role does); open on purpose, as the lab is, so no key is asked for
    from ollama_fleet.testbed.fleet import LocalFleet, SiteSpec

    with LocalFleet(tmp_path, (SiteSpec(name="edge"),)) as fleet:
        site = fleet.sites["edge"]
        result = diagnose(
            "--url", site.url, "--ca-file", str(fleet.ca_file), "--model", "llama3.2:1b",
            "--public-access", "open",
        )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "no findings on 1 host(s)" in result.stdout


@pytest.mark.integration
def test_a_bare_ollama_url_is_found_open_with_its_write_endpoints(sim_url: str) -> None:
    result = diagnose("--url", sim_url)

    assert result.exit_code == 1, result.output
    assert "write-endpoints-open" in result.stdout
    assert "11434" not in result.stdout  # the URL's own port, never a default one


def test_url_options_without_a_url_are_refused(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-1: {}\n", encoding="utf-8")
    result = diagnose(str(inventory), "--model", "llama3.2:1b")

    assert result.exit_code == 2
    assert "--model: only for --url targets" in result.output


@pytest.mark.integration
def test_an_endpoint_that_fails_is_an_outside_check_finding(tmp_path: Path) -> None:
    config = SimulatorConfig(tokens_per_second=0, faults=Faults(status=500))
    out = tmp_path / "report.json"
    with serve_in_thread(create_app(config)) as port:
        result = diagnose("--url", f"http://127.0.0.1:{port}", "-o", str(out))

    assert result.exit_code == 1, result.output
    assert "outside-check: connectivity check: GET /api/version: HTTP 500" in result.stdout
    document = json.loads(out.read_text(encoding="utf-8"))
    validate(document)
    (finding, *_) = findings(document, "outside-check")
    assert "500" in str(finding["title"]) and finding["severity"] == "critical"


@pytest.mark.parametrize("suffix", [".json", ".md", ".html"])
def test_each_report_format_is_written(tmp_path: Path, sim_url: str, suffix: str) -> None:
    out = tmp_path / f"diagnosis{suffix}"

    result = diagnose("--url", sim_url, "-o", str(out))

    assert result.exit_code in (0, 1), result.output
    text = out.read_text(encoding="utf-8")
    name = sim_url.removeprefix("http://")
    assert name in text
    assert "auth" in text  # the outside checks are in every format
    if suffix == ".json":
        validate(json.loads(text))
    elif suffix == ".html":
        assert text.lstrip().lower().startswith("<!doctype html>")
        assert "ollama-fleet diagnose: " in text
    else:
        assert text.startswith("#")


# -- an inventory host SSH cannot reach --------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("listener", ["refused", "garbage"])
def test_unreachable_ssh_is_a_finding_not_a_crash(
    tmp_path: Path,
    ssh_key: Path,
    refused_port: int,
    garbage_ssh: int,
    sim_url: str,
    listener: str,
) -> None:
    port = refused_port if listener == "refused" else garbage_ssh
    inventory = write_inventory(
        tmp_path,
        ssh_key=ssh_key,
        ssh_port=port,
        host_lines=[
            f"      public_url: {sim_url}",
            "      public_access: open",
            "      required_models: [no-such-model:7b]",
        ],
    )
    out = tmp_path / "report.json"

    done = run_diagnose(str(inventory), "-o", str(out), cwd=tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    validate(document)
    (host,) = document["hosts"]
    assert host["inside"] is True and host["facts"] is None and host["unreachable"]
    (finding,) = findings(document, "ssh-unreachable")
    assert finding["severity"] == "critical"
    cause = str(finding["cause"])
    assert f"127.0.0.1:{port}" in cause
    assert "ssh_port" in cause  # what to check
    assert ("connection refused" if listener == "refused" else "not with SSH") in cause
    assert "ssh-unreachable" in done.stdout
    # the outside still ran: the model the inventory requires is missing there
    assert any("no-such-model:7b" in str(f["title"]) for f in findings(document, "outside-check"))


# -- secrets -----------------------------------------------------------------------------------


@pytest.fixture
def echoing_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server that refuses every request with 401 and says which key it got."""
    seen: list[str] = []

    class Echo(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            got = self.headers.get("Authorization", "")
            seen.append(got)
            body = json.dumps({"error": f"unauthorized: key {got!r} is not valid"}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_HEAD = answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.integration
@pytest.mark.parametrize("suffix", [".json", ".md", ".html"])
def test_a_vault_secret_appears_in_no_report_and_no_output(
    tmp_path: Path,
    ssh_key: Path,
    refused_port: int,
    password_file: Path,
    echoing_server: tuple[int, list[str]],
    suffix: str,
) -> None:
    port, seen = echoing_server
    block = encrypt_value("api_key", SECRET, VaultPassword(PASSWORD))
    inventory = write_inventory(
        tmp_path,
        ssh_key=ssh_key,
        ssh_port=refused_port,
        host_lines=[f"      public_url: http://127.0.0.1:{port}"],
        vault_lines=[f"    {line}" for line in block.splitlines()],
    )
    out = tmp_path / f"report{suffix}"

    done = run_diagnose(
        str(inventory), "--vault-password-file", str(password_file), "-o", str(out), cwd=tmp_path
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert any(SECRET in key for key in seen)  # the key was sent, and the server echoed it
    report = out.read_text(encoding="utf-8")
    for where, text in (("stdout", done.stdout), ("stderr", done.stderr), (suffix, report)):
        assert SECRET not in text, f"the vault value leaked into {where}"
    assert "unauthorized: key" in report and "***" in report  # redacted, not just dropped
    assert PASSWORD not in done.stdout + done.stderr + report
