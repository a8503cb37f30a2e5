"""`ollama-fleet check` as a new user runs it first: a plain Ollama URL, then an inventory.

A real simulator (a test double of Ollama's API) under uvicorn on 127.0.0.1, plain HTTP, the
way `check --url http://127.0.0.1:11434` meets a local Ollama; click's CliRunner runs the CLI.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from ollama_fleet.cli import main
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import free_port, serve_in_thread

pytestmark = pytest.mark.integration

MODEL = "llama3.2:1b"


@pytest.fixture(scope="module")
def ollama_url() -> Iterator[str]:
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def slow(ollama_url: str) -> Iterator[None]:
    """Every answer of the simulator 2.5 s late (its fault injection), reset afterwards."""
    httpx.put(f"{ollama_url}/_simulator/faults", json={"latency_ms": 2500}).raise_for_status()
    yield
    httpx.delete(f"{ollama_url}/_simulator/faults").raise_for_status()


def check(*args: str) -> Result:
    return CliRunner().invoke(main, ["check", *args], catch_exceptions=False)


def checks_run(result: Result) -> set[str]:
    return {line.split()[1] for line in result.stdout.splitlines()[1:] if line.startswith("127.")}


def test_the_first_natural_command_checks_what_it_was_told(ollama_url: str) -> None:
    result = check("--url", ollama_url, "--model", MODEL, "--public-access", "open")

    assert checks_run(result) == {"connectivity", "models", "chat", "auth"}  # no port probed
    assert "exposure" not in result.stdout
    # Ollama itself answers its write endpoints (pull, delete...): that is what the caddy
    # role's 403s are for, and the auth check says so instead of a port verdict
    assert result.exit_code == 1, result.output
    assert "POST /api/pull is exposed" in result.stdout


def test_closed_port_is_checked_only_when_asked(ollama_url: str) -> None:
    port = ollama_url.rsplit(":", 1)[1]
    args = ("--url", ollama_url, "--public-access", "open", "--only", "exposure")

    open_port = check(*args, "--open-port", port)
    closed = check(*args, "--closed-port", port)

    assert open_port.exit_code == 0, open_port.output
    assert closed.exit_code == 1, closed.output
    assert "exposed" in closed.stdout and f"port {port}" in closed.stdout


def test_a_bad_port_option_is_a_usage_error(ollama_url: str) -> None:
    result = check("--url", ollama_url, "--closed-port", "70000")

    assert result.exit_code == 2
    assert "--closed-port 70000: 70000 is not a port (1-65535)" in result.stderr


def test_a_run_that_checks_nothing_exits_2_and_says_why(ollama_url: str) -> None:
    result = check("--url", ollama_url, "--only", "tls")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert (
        f"Error: nothing was checked (no check applies: tls does not apply to {ollama_url}; "
        "tls needs an https:// URL)\n"
    ) == result.stderr


def test_an_inventory_without_targets_checks_nothing_and_exits_2(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    a:\n      ssh_hostname: 127.0.0.1\n")

    result = check(str(inventory))

    assert result.exit_code == 2
    assert "public_url" in result.stderr


def test_an_unreachable_target_exits_4(ollama_url: str) -> None:
    dead = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", dead)) != 0

    result = check(
        "--url", ollama_url, "--url", f"http://127.0.0.1:{dead}", "--public-access", "open"
    )

    assert result.exit_code == 4, result.output
    assert f"unreachable: 127.0.0.1:{dead}" in result.stderr
    assert "refused" in result.stdout


def test_latency_thresholds_warn_and_fail(ollama_url: str, slow: None) -> None:
    args = ("--url", ollama_url, "--public-access", "open", "--only", "connectivity")

    default = check(*args)
    strict = check(*args, "--latency", "first_byte_ms=500,1000")

    assert default.exit_code == 0, default.output  # 2.5 s: a warning at the defaults
    assert "slow" in default.stdout and "warn at 2000 ms" in default.stdout
    assert strict.exit_code == 1, strict.output
    assert "fail at 1000 ms" in strict.stdout


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("first_bite_ms=1,2", "unknown threshold 'first_bite_ms'"),
        ("connect_ms=2000,500", "WARN <= FAIL"),
        ("tokens_per_s=1,5", "WARN >= FAIL"),
        ("connect_ms=fast", "expected connect_ms=WARN,FAIL"),
    ],
)
def test_a_bad_latency_option_is_one_line(ollama_url: str, value: str, says: str) -> None:
    result = check("--url", ollama_url, "--latency", value)

    assert result.exit_code == 2
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _fleet(tmp_path: Path, url: str) -> Path:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        f"""\
all:
  vars:
    public_url: {url}
    public_access: open
    closed_ports: []
  children:
    gpu:
      hosts:
        gpu-1: {{}}
        gpu-2:
          public_url: {url}/
    edge:
      hosts:
        edge-1:
          public_url: {url}//
""",
        encoding="utf-8",
    )
    return inventory


@pytest.mark.parametrize(
    ("limit", "hosts"),
    [
        (("gpu",), ["gpu-1", "gpu-2"]),
        (("gpu-*:!gpu-2",), ["gpu-1"]),
        (("all:!gpu",), ["edge-1"]),
    ],
)
def test_check_takes_the_same_limit_patterns_as_deploy(
    tmp_path: Path, ollama_url: str, limit: Sequence[str], hosts: list[str]
) -> None:
    inventory = _fleet(tmp_path, ollama_url)
    args = [arg for pattern in limit for arg in ("--limit", pattern)]

    listed = check(str(inventory), *args, "--list-hosts")
    ran = check(str(inventory), *args, "--only", "connectivity", "--format", "json")

    assert listed.exit_code == 0
    assert (
        listed.stdout
        == "\n".join([f"  hosts ({len(hosts)}):", *(f"    {h}" for h in hosts)]) + "\n"
    )
    assert ran.exit_code == 0, ran.output
    assert [r["target"] for r in json.loads(ran.stdout)["results"]] == hosts


def test_the_report_says_which_command_inventory_and_machine_made_it(
    tmp_path: Path, ollama_url: str
) -> None:
    inventory = _fleet(tmp_path, ollama_url)
    out = tmp_path / "r.json"

    result = check(str(inventory), "--limit", "edge", "--only", "models", "-o", str(out))

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["context"]["inventory"] == str(inventory)
    assert document["context"]["controller"]
    assert "check" in document["context"]["command"]
    assert document["target_groups"] == {"edge-1": ["all", "edge"]}


def test_extra_vars_reach_the_checks(tmp_path: Path, ollama_url: str) -> None:
    inventory = _fleet(tmp_path, ollama_url)

    result = check(
        str(inventory),
        "--limit",
        "gpu-1",
        "-e",
        "required_models=[no-such-model:7b]",
        "--only",
        "models",
    )

    assert result.exit_code == 1, result.output
    assert "no-such-model:7b" in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--model", "nonexistent:9b"], "--model"),
        (["--closed-port", "5"], "--closed-port"),
        (["--latency", "connect_ms=1,2", "--public-access", "open"], "--public-access, --latency"),
    ],
)
def test_url_options_without_a_url_are_an_error_not_ignored(
    tmp_path: Path, ollama_url: str, args: list[str], named: str
) -> None:
    inventory = _fleet(tmp_path, ollama_url)

    result = check(str(inventory), *args)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"Error: {named}: only for --url targets; for inventory hosts set the variable" in (
        result.stderr
    )


def test_hosts_without_a_public_url_are_named_not_silently_skipped(
    tmp_path: Path, ollama_url: str
) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        f"all:\n  hosts:\n    a:\n      public_url: {ollama_url}\n"
        "      public_access: open\n    b:\n      ssh_hostname: 127.0.0.1\n"
    )

    listed = check(str(inventory), "--list-hosts")
    ran = check(str(inventory), "--only", "connectivity")

    assert (listed.exit_code, listed.stdout) == (0, "  hosts (1):\n    a\n")
    assert "not checked (no public_url): b" in listed.stderr
    assert ran.exit_code == 0, ran.output
    assert "not checked (no public_url): b" in ran.stderr
