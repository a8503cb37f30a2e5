"""`ollama-fleet monitor`: --check-config, the INVENTORY form, usage errors, `rules`, the wiring.

Pure: no server starts. The service itself (run_monitor) is replaced where a test gets that
far, by a double that records what the command handed it and fails on a second call.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from ollama_fleet import vault
from ollama_fleet.cli import main
from ollama_fleet.monitor import service
from ollama_fleet.monitor.settings import MonitorConfig

HOOK = "https://hooks.example.com/services/cli-hook-secret-91c2"
KEY = "sk-cli-monitor-secret-0d4b"
CONFIG = f"""\
listen: 127.0.0.1:9500
state_dir: state
targets:
  - name: gpu-1
    url: https://gpu-1.example.com
    required_models: [llama3.2:1b]
  - url: http://127.0.0.1:11434
receivers:
  - {{name: ops, type: webhook, url: {HOOK}}}
  - {{name: pager, type: slack, url: {HOOK}/2}}
"""
INVENTORY = """\
all:
  hosts:
    gpu-1:
      public_url: https://gpu-1.example.com
    gpu-2:
      public_url: https://gpu-2.example.com
    mon-1: {}
"""


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    (tmp_path / "monitor.yml").write_text(CONFIG)
    (tmp_path / "inv.yml").write_text(INVENTORY)
    return tmp_path


def invoke(args: Sequence[str]) -> Result:
    return CliRunner().invoke(main, ["monitor", *args], catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    assert "Traceback" not in result.output
    return result.stderr.strip().splitlines()


class FakeService:
    """Stands in for run_monitor: records one call and answers `status`."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[tuple[MonitorConfig, Callable[[], MonitorConfig]]] = []

    def __call__(self, config: MonitorConfig, *, reload: Callable[[], MonitorConfig]) -> int:
        assert not self.calls, "run_monitor called twice"
        self.calls.append((config, reload))
        return self.status


@pytest.fixture
def fake_service(monkeypatch: pytest.MonkeyPatch) -> FakeService:
    fake = FakeService()
    monkeypatch.setattr(service, "run_monitor", fake)
    return fake


# -- --check-config ------------------------------------------------------------------------


def test_check_config_prints_one_line_without_secrets(here: Path) -> None:
    result = invoke(["--config", "monitor.yml", "--check-config"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "monitor.yml: ok: 2 target(s), 8 check(s) "
        "(connectivity, tls, models, chat, auth, exposure), receivers: ops, pager; "
        f"listen 127.0.0.1:9500, state in {here / 'state'}\n"
    )
    assert "hook-secret" not in result.output


def test_check_config_with_overrides(here: Path) -> None:
    result = invoke(
        ["-c", "monitor.yml", "--listen", "[::1]:9700", "--state-dir", "s", "--check-config"]
    )
    assert result.exit_code == 0, result.output
    assert f"listen [::1]:9700, state in {here / 's'}\n" in result.stdout


def test_check_config_lists_every_problem_and_exits_2(here: Path) -> None:
    (here / "bad.yml").write_text(
        "listen: nowhere\ntargets:\n  - url: ftp://x\n"
        f"receivers:\n  - {{name: a, type: webhook, url: '{HOOK} x'}}\n"
    )
    result = invoke(["--config", "bad.yml", "--check-config"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert error_lines(result) == [
        "Error: bad.yml:1: listen: 'nowhere' is not HOST:PORT ([IPv6]:PORT) or a port number",
        "bad.yml:3: targets[0].url: invalid URL 'ftp://x': expected http(s)://HOST[:PORT]",
        "bad.yml:5: receivers[0].url: expected an http(s) URL "
        "(the value is not shown: it is a secret)",
    ]
    assert "hook-secret" not in result.output


def test_a_missing_config_is_one_line(here: Path) -> None:
    result = invoke(["--config", "nope.yml"])
    assert result.exit_code == 2
    assert error_lines(result) == ["Error: nope.yml: no such monitor config"]


def test_inventory_form(here: Path) -> None:
    result = invoke(["inv.yml", "--check-config"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("inv.yml: ok: 2 target(s), 10 check(s) ")
    assert f"receivers: none; listen 127.0.0.1:9464, state in {here / 'monitor-state'}" in (
        result.stdout
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--listen", "9800", "inv.yml", "-l", "gpu-2", "--check-config"],
        ["--check-config", "-l", "gpu-2", "inv.yml", "--listen=9800"],
        ["-lgpu-2", "--listen", "9800", "--check-config", "--", "inv.yml"],
    ],
)
def test_the_inventory_is_found_among_options(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("inv.yml: ok: 1 target(s), 5 check(s) ")
    assert "listen 127.0.0.1:9800," in result.stdout


def test_inventory_problems_are_one_line_each(here: Path) -> None:
    (here / "inv.yml").write_text("all:\n  hosts:\n    gpu-1:\n      public_url: ftp://x\n")
    result = invoke(["inv.yml", "--check-config"])
    assert result.exit_code == 2
    assert error_lines(result) == [
        "Error: inv.yml:4: public_url: invalid URL 'ftp://x': expected http(s)://HOST[:PORT]"
    ]


# -- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give either --config FILE or an INVENTORY (not both)"),
        (["inv.yml", "--config", "monitor.yml"], "give either --config FILE or an INVENTORY"),
        (["--config", "monitor.yml", "-l", "gpu-1"], "--limit and -e select from an INVENTORY"),
        (["--config", "monitor.yml", "-e", "x_a=1"], "--limit and -e select from an INVENTORY"),
        (["inv.yml", "other.yml"], "No such command 'other.yml'"),
        (["inv.yml", "rules"], "`monitor rules` takes no --config or INVENTORY"),
        (["--config", "monitor.yml", "rules"], "`monitor rules` takes no --config or INVENTORY"),
        (["--bogus"], "No such option"),
    ],
)
def test_usage_errors_exit_2(args: list[str], says: str, fake_service: FakeService) -> None:
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert not fake_service.calls


def test_a_bad_listen_option_is_a_config_error() -> None:
    result = invoke(["--config", "monitor.yml", "--listen", "nowhere", "--check-config"])
    assert result.exit_code == 2
    assert error_lines(result) == [
        "Error: --listen: 'nowhere' is not HOST:PORT ([IPv6]:PORT) or a port"
    ]


# -- the service's wiring ------------------------------------------------------------------


def test_config_form_runs_the_service_and_reload_reads_the_file_again(
    here: Path, fake_service: FakeService
) -> None:
    result = invoke(["--config", "monitor.yml", "--state-dir", "elsewhere"])
    assert result.exit_code == 0, result.output
    ((config, reload),) = fake_service.calls
    assert [t.name for t in config.targets] == ["gpu-1", "127.0.0.1:11434"]
    assert config.state_dir == here / "elsewhere"
    (here / "monitor.yml").write_text(CONFIG.replace("gpu-1", "gpu-7"))
    again = reload()
    assert [t.name for t in again.targets] == ["gpu-7", "127.0.0.1:11434"]
    assert again.state_dir == here / "elsewhere"  # the options stay on top
    (here / "monitor.yml").write_text("listen: x\n")
    with pytest.raises(Exception, match="monitor.yml:1: listen"):
        reload()


def test_inventory_form_reload_reads_the_inventory_again(
    here: Path, fake_service: FakeService
) -> None:
    assert invoke(["inv.yml", "--listen", "9900"]).exit_code == 0
    ((config, reload),) = fake_service.calls
    assert [t.name for t in config.targets] == ["gpu-1", "gpu-2"]
    (here / "inv.yml").write_text(INVENTORY.replace("gpu-2", "gpu-3"))
    again = reload()
    assert [t.name for t in again.targets] == ["gpu-1", "gpu-3"]
    assert again.listen_port == 9900


def test_the_services_exit_status_is_the_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "run_monitor", FakeService(status=3))
    assert invoke(["--config", "monitor.yml"]).exit_code == 3


# -- rules ---------------------------------------------------------------------------------


def rule_names(text: str) -> list[str]:
    document: Any = yaml.safe_load(text)
    return [rule["alert"] for group in document["groups"] for rule in group["rules"]]


def test_rules_to_stdout_and_to_a_file(here: Path) -> None:
    from ollama_fleet.monitor.rules import render_rules

    printed = invoke(["rules"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == render_rules()
    assert "OllamaFleetTargetDown" in rule_names(printed.stdout)
    written = invoke(["rules", "-o", "out/rules.yml"])
    assert written.exit_code == 0, written.output
    assert written.stdout == ""
    assert (here / "out" / "rules.yml").read_text() == printed.stdout


def test_rules_uses_the_rules_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from ollama_fleet.monitor import rules

    monkeypatch.setattr(rules, "render_rules", lambda: "groups: []\n")
    assert invoke(["rules"]).stdout == "groups: []\n"


def test_inventory_with_vault_values_and_a_password_file(
    here: Path, monkeypatch: pytest.MonkeyPatch, fake_service: FakeService
) -> None:
    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)
    monkeypatch.delenv(vault.PASSWORD_ENV, raising=False)
    password = vault.VaultPassword("cli-monitor-pass")
    (here / "pass.txt").write_text(password.secret)
    (here / "pass.txt").chmod(0o600)
    (here / "inv.yml").write_text(
        INVENTORY.replace("    mon-1: {}\n", "")
        + "  vars:\n"
        + "".join(
            f"    {line}\n" for line in vault.encrypt_value("api_key", KEY, password).splitlines()
        )
    )
    refused = invoke(["inv.yml"])
    assert refused.exit_code == 2
    assert "no vault password" in refused.stderr
    result = invoke(["inv.yml", "--vault-password-file", "pass.txt"])
    assert result.exit_code == 0, result.output
    ((config, reload),) = fake_service.calls
    assert {t.api_key for t in config.targets} == {KEY}
    assert {t.api_key for t in reload().targets} == {KEY}  # the password file read again
    assert KEY not in result.output


@pytest.mark.parametrize("args", [["monitor", "--help"], ["monitor", "rules", "--help"]])
def test_help_imports_no_monitor_module(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from ollama_fleet.cli import main\n"
        f"result = CliRunner().invoke(main, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'Usage:' in result.output, result.output\n"
        "heavy = sorted(m for m in sys.modules if m.startswith('ollama_fleet.monitor')\n"
        "               or m in ('yaml', 'httpx', 'prometheus_client'))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
