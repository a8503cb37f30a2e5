"""The `ollama-fleet` command line: help texts, usage errors, exit codes and report files.

The pure tests need no servers. The others share one LocalFleet (the simulator behind a
real Caddy) for the whole module and run `check` against it through click's CliRunner,
plus a few runs as a real subprocess to see the exit status end to end.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import click
import jsonschema
import pytest
from click.testing import CliRunner, Result

from ollama_fleet.checks.model import CHECK_NAMES
from ollama_fleet.checks.reports import load_schema
from ollama_fleet.checks.runner import plan_checks
from ollama_fleet.checks.targets import targets_from_inventory
from ollama_fleet.cli import main
from ollama_fleet.inventory import load_inventory
from ollama_fleet.simulator import Faults
from ollama_fleet.testbed.fleet import LocalFleet, SiteSpec

integration = pytest.mark.integration

MODELS = ["llama3.2:1b"]
KEY = "cli-test-key-4f1d9a7e"  # not a secret; only must never be echoed
KEY_VAR = "OLLAMA_FLEET_TEST_API_KEY"
UNSET_VAR = "OLLAMA_FLEET_TEST_SURELY_UNSET"

OPEN = {"public_access": "open"}  # these sites have no keys, on purpose
SPECS = [
    SiteSpec(name="good", host_vars=OPEN),
    SiteSpec(name="warned", cert="expiring", host_vars=OPEN),
    SiteSpec(name="bad", faults=Faults(status=500), host_vars=OPEN),
    SiteSpec(name="keyed", api_key=KEY, host_vars={"api_key": KEY}),
]
TARGETS = [spec.name for spec in SPECS]
SUMMARY_LINE = re.compile(r"(\d+) ok, (\d+) warn, (\d+) fail in ")


# -- helpers ----------------------------------------------------------------------------


def invoke(args: Sequence[str], env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    """The lines of stderr that carry the error itself (click's `Error: ...`)."""
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def assert_one_line_error(result: Result, *, code: int = 2) -> str:
    """Exit `code`, no traceback, exactly one error line; returns that line."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def assert_only_error_line(result: Result, *, code: int = 2) -> str:
    """Like assert_one_line_error, and stderr holds nothing but that one line."""
    line = assert_one_line_error(result, code=code)
    assert result.stderr.strip().splitlines() == [line]
    return line


def counts(stdout: str) -> tuple[int, int, int]:
    match = SUMMARY_LINE.search(stdout)
    assert match, stdout
    ok, warn, fail = (int(n) for n in match.groups())
    return ok, warn, fail


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)  # the groups load their commands lazily
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(main))
COMMAND_IDS = [" ".join(path) or "main" for path, _ in COMMANDS]


# -- pure: the command tree --------------------------------------------------------------


def test_tree_has_the_documented_commands() -> None:
    assert {path for path, _ in COMMANDS} >= {(), ("check",), ("simulator",), ("demo",)}


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_and_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no help text"
    assert (command.get_short_help_str() or "").strip()
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{path}: option {param.opts} has no help"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=COMMAND_IDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_zero(path: tuple[str, ...], flag: str) -> None:
    result = invoke([*path, flag])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    if path == ():
        for name in main.commands:
            assert name in result.stdout


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("ollama-fleet, version ")


# -- pure: usage and config errors ---------------------------------------------------------


def test_check_needs_inventory_or_url() -> None:
    line = assert_one_line_error(invoke(["check"]))
    assert "INVENTORY" in line
    assert "--url" in line


@pytest.mark.parametrize(
    "url",
    ["ftp://x", "localhost:11434", "https://", "https://h:0", "https://h:99999", "http://[::1"],
)
def test_check_rejects_invalid_url(url: str) -> None:
    line = assert_only_error_line(invoke(["check", "--url", url]))
    assert "--url" in line
    assert url in line


def test_check_malformed_inventory_names_file_and_line(tmp_path: Path) -> None:
    inventory = tmp_path / "broken.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-1:\n      public_url: [https://x\n")
    line = assert_only_error_line(invoke(["check", str(inventory)]))
    assert re.search(rf"{re.escape(str(inventory))}:\d+: invalid YAML", line), line


def test_check_missing_inventory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    line = assert_only_error_line(invoke(["check", str(missing)]))
    assert str(missing) in line


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected a mapping"),
        ("- a\n- b\n", "expected a mapping"),
        ("all:\n  hosts:\n    a:\n      public_url: 42\n", "inv.yml:4: public_url: expected"),
        ("all:\n  hosts:\n    a:\n      public_url: ftp://x\n", "inv.yml:4: public_url: invalid"),
        (
            "all:\n  hosts:\n    a:\n      public_url: https://x\n      closed_ports: [abc]\n",
            "closed_ports",
        ),
        (
            "all:\n  hosts:\n    a:\n      public_url: https://x\n      tls_ca_file: no.pem\n",
            "tls_ca_file",
        ),
        ("all:\n  bogus: 1\n", "inv.yml:2: bogus: unknown key in group all"),
        (
            "all:\n  hosts:\n    a:\n      public_url: https://x\n      public_access: public\n",
            "inv.yml:5: public_access: expected 'closed' or 'open', got 'public'",
        ),
    ],
)
def test_check_invalid_inventory_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(text)
    line = assert_only_error_line(invoke(["check", str(inventory)]))
    assert str(inventory) in line
    assert says in line


def test_check_inventory_is_a_directory(tmp_path: Path) -> None:
    assert str(tmp_path) in assert_only_error_line(invoke(["check", str(tmp_path)]))


def test_check_inventory_without_public_urls(tmp_path: Path) -> None:
    inventory = tmp_path / "private.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-1:\n      ssh_hostname: 10.0.0.1\n")
    line = assert_only_error_line(invoke(["check", str(inventory)]))
    assert "public_url" in line


@pytest.mark.parametrize("only", ["bogus", "tls,bogus", " ,tls,nope"])
def test_check_unknown_only(only: str) -> None:
    line = assert_one_line_error(invoke(["check", "--url", "https://localhost", "--only", only]))
    assert "--only" in line
    assert "bogus" in line or "nope" in line
    for name in CHECK_NAMES:
        assert name in line


def test_check_unknown_public_access() -> None:
    line = assert_one_line_error(
        invoke(["check", "--url", "https://localhost", "--public-access", "public"])
    )
    assert "--public-access" in line


def test_check_unknown_format() -> None:
    result = invoke(["check", "--url", "https://localhost", "--format", "yaml"])
    assert_one_line_error(result)


def test_check_api_key_env_unset() -> None:
    result = invoke(
        ["check", "--url", "https://localhost", "--api-key-env", UNSET_VAR],
        env={UNSET_VAR: None},
    )
    line = assert_only_error_line(result)
    assert UNSET_VAR in line


def test_check_api_key_env_empty() -> None:
    result = invoke(
        ["check", "--url", "https://localhost", "--api-key-env", UNSET_VAR],
        env={UNSET_VAR: ""},
    )
    assert UNSET_VAR in assert_only_error_line(result)


def test_check_ca_file_must_exist(tmp_path: Path) -> None:
    result = invoke(["check", "--url", "https://localhost", "--ca-file", str(tmp_path / "x.pem")])
    assert_one_line_error(result)


def test_same_url_twice_is_checked_once_but_a_clash_is_an_error(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:8443:\n      public_url: https://x\n")
    result = invoke(["check", str(inventory), "--url", "https://localhost:8443"])
    assert "listed twice" in assert_only_error_line(result)


def test_python_dash_m_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ollama_fleet", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "check" in proc.stdout


def test_python_dash_m_usage_error_exit_code() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ollama_fleet", "check", "--url", "ftp://x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--url" in proc.stderr


# -- integration: a local fleet ------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with LocalFleet(tmp_path_factory.mktemp("cli-fleet"), SPECS) as running:
        yield running


@pytest.fixture(scope="module")
def inventory(fleet: LocalFleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-inv") / "fleet.yml"
    return fleet.write_inventory(path, required_models=MODELS)


@pytest.fixture(scope="module")
def planned(inventory: Path) -> set[tuple[str, str]]:
    """(target, check) of every check the inventory run must report."""
    targets = targets_from_inventory(load_inventory(inventory))
    return {(t.name, check) for t in targets for check in plan_checks(t)}


def url_args(fleet: LocalFleet, site: str) -> list[str]:
    """--url options for `site`; the sites without a key are declared open, as they are."""
    access = [] if site == "keyed" else ["--public-access", "open"]
    return ["--url", fleet.sites[site].url, "--ca-file", str(fleet.ca_file), *access]


def url_name(fleet: LocalFleet, site: str) -> str:
    return fleet.sites[site].url.removeprefix("https://")


@integration
def test_check_url_good_exits_zero_with_a_table(fleet: LocalFleet) -> None:
    result = invoke(["check", *url_args(fleet, "good")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "CHECK", "STATUS", "CLASS", "SUMMARY"]
    rows = [line.split() for line in lines[1:] if line.startswith(url_name(fleet, "good"))]
    # a bare --url probes no port: exposure runs only with --closed-port/--open-port
    assert {row[1] for row in rows} == {"connectivity", "tls", "models", "auth"}
    assert {row[2] for row in rows} == {"OK"}
    assert "1 target, 4 checks: 4 ok, 0 warn, 0 fail" in result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: no colour
    assert "checking 1 target(s)" in result.stderr


@integration
def test_check_url_without_a_key_is_open_access_unless_declared(fleet: LocalFleet) -> None:
    args = ["--url", fleet.sites["good"].url, "--ca-file", str(fleet.ca_file)]
    result = invoke(["check", *args])
    assert result.exit_code == 1, result.output
    assert counts(result.stdout)[2] == 1
    assert "open_access" in result.stdout
    declared = invoke(["check", *args, "--public-access", "open", "--strict", "--only", "auth"])
    assert declared.exit_code == 0, declared.output  # reported, not failed, even with --strict
    assert "open access, as declared (public_access: open)" in declared.stdout


@integration
def test_check_url_warned_exits_zero_unless_strict(fleet: LocalFleet) -> None:
    result = invoke(["check", *url_args(fleet, "warned")])
    assert result.exit_code == 0, result.output
    assert counts(result.stdout)[1:] == (1, 0)
    assert "tls_expired" in result.stdout
    strict = invoke(["check", "--strict", *url_args(fleet, "warned")])
    assert strict.exit_code == 1, strict.output


@integration
def test_check_url_bad_exits_one(fleet: LocalFleet) -> None:
    result = invoke(["check", *url_args(fleet, "bad")])
    assert result.exit_code == 1, result.output
    assert counts(result.stdout)[2] > 0
    assert "server_error" in result.stdout
    assert "hint:" in result.stdout


@integration
def test_check_with_model_adds_chat(fleet: LocalFleet) -> None:
    result = invoke(["check", *url_args(fleet, "good"), "--model", MODELS[0]])
    assert result.exit_code == 0, result.output
    assert "1 target, 5 checks: 5 ok" in result.stdout


@integration
def test_two_urls_report_both(fleet: LocalFleet) -> None:
    result = invoke(["check", *url_args(fleet, "good"), "--url", fleet.sites["bad"].url])
    assert result.exit_code == 1, result.output
    assert url_name(fleet, "good") in result.stdout
    assert url_name(fleet, "bad") in result.stdout
    assert "2 targets" in result.stdout


@integration
def test_inventory_json_report(
    inventory: Path, planned: set[tuple[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    result = invoke(["check", str(inventory), "--format", "json", "-o", str(out)])
    assert result.exit_code == 1, result.output  # "bad" fails
    document = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(document, load_schema())
    assert {r["target"] for r in document["results"]} == set(TARGETS)
    assert {(r["target"], r["check"]) for r in document["results"]} == planned
    assert document["status"] == "fail"
    # the terminal still gets the text summary, and where the report went
    assert result.stdout.splitlines()[0].startswith("TARGET")
    ok, warn, fail = counts(result.stdout)
    assert document["summary"] == {
        "targets": len(TARGETS),
        "checks": len(planned),
        "ok": ok,
        "warn": warn,
        "fail": fail,
    }
    assert f"json report written to {out}" in result.stdout
    assert not list(tmp_path.glob(".*.tmp"))


@integration
def test_inventory_junit_report_from_suffix(
    inventory: Path, planned: set[tuple[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "checks.xml"
    result = invoke(["check", str(inventory), "-o", str(out)])
    assert result.exit_code == 1, result.output
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    cases = list(root.iter("testcase"))
    assert {
        (suite.get("name"), case.get("name"))
        for suite in root.iter("testsuite")
        for case in suite.iter("testcase")
    } == planned
    assert not [c.get("classname") for c in cases if "." in c.get("classname", "")]
    assert len(cases) == len(planned)
    failed = [case for case in cases if case.find("failure") is not None]
    fail = counts(result.stdout)[2]
    assert fail > 0
    assert len(failed) == fail
    assert int(root.get("failures", "-1")) == fail
    assert int(root.get("tests", "-1")) == len(planned)
    assert f"junit report written to {out}" in result.stdout


@integration
def test_inventory_html_report_from_suffix(
    fleet: LocalFleet, inventory: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    result = invoke(["check", str(inventory), "-o", str(out)])
    assert result.exit_code == 1, result.output
    html = out.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    for name in TARGETS:
        assert f">{name}<" in html
        assert fleet.sites[name].url in html
    assert f"html report written to {out}" in result.stdout


@integration
def test_format_overrides_suffix(fleet: LocalFleet, tmp_path: Path) -> None:
    out = tmp_path / "report.xml"
    result = invoke(["check", *url_args(fleet, "good"), "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["status"] == "ok"


@integration
def test_unknown_suffix_writes_text(fleet: LocalFleet, tmp_path: Path) -> None:
    out = tmp_path / "report.log"
    result = invoke(["check", *url_args(fleet, "good"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("TARGET")
    assert f"text report written to {out}" in result.stdout


@integration
def test_format_to_stdout(fleet: LocalFleet) -> None:
    result = invoke(["check", *url_args(fleet, "good"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["checks"] == 4


@integration
@pytest.mark.parametrize(
    "bad_args",
    [
        ["--url", "ftp://x"],
        ["--only", "bogus"],
        ["--api-key-env", UNSET_VAR],
    ],
    ids=["bad-url", "bad-only", "unset-key-env"],
)
def test_config_error_keeps_existing_report(
    inventory: Path, tmp_path: Path, bad_args: list[str]
) -> None:
    out = tmp_path / "out.json"
    previous = '{"previous": "report"}\n'
    out.write_text(previous)
    result = invoke(["check", str(inventory), *bad_args, "-o", str(out)], env={UNSET_VAR: None})
    assert result.exit_code == 2, result.output
    assert out.read_text() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@integration
def test_unwritable_report_is_a_config_error(fleet: LocalFleet, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    result = invoke(
        ["check", *url_args(fleet, "good"), "--only", "connectivity", "-o", str(blocker / "r.json")]
    )
    line = assert_one_line_error(result)
    assert "cannot write the report" in line


@integration
def test_only_runs_the_named_checks(inventory: Path, tmp_path: Path) -> None:
    out = tmp_path / "only.json"
    result = invoke(["check", str(inventory), "--only", "tls,models", "-o", str(out)])
    assert result.exit_code == 1, result.output
    document = json.loads(out.read_text())
    by_target: dict[str, set[str]] = {}
    for r in document["results"]:
        by_target.setdefault(r["target"], set()).add(r["check"])
    assert by_target == dict.fromkeys(TARGETS, {"tls", "models"})


@integration
def test_only_repeatable(fleet: LocalFleet) -> None:
    result = invoke(["check", *url_args(fleet, "good"), "--only", "tls", "--only", "models"])
    assert result.exit_code == 0, result.output
    assert "1 target, 2 checks: 2 ok" in result.stdout


@integration
@pytest.mark.parametrize("suffix", [".json", ".xml", ".html", ".txt"])
def test_api_key_never_echoed(fleet: LocalFleet, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"keyed{suffix}"
    result = invoke(
        ["check", *url_args(fleet, "keyed"), "--api-key-env", KEY_VAR, "-o", str(out)],
        env={KEY_VAR: KEY},
    )
    assert result.exit_code == 0, result.output
    assert "auth" in result.stdout  # --api-key-env turns on the auth check
    assert KEY not in result.stdout
    assert KEY not in result.stderr
    assert KEY not in out.read_text(encoding="utf-8")


@integration
def test_api_key_from_inventory_never_echoed(inventory: Path, tmp_path: Path) -> None:
    assert KEY in inventory.read_text()  # the "keyed" host carries it
    for name in ("k.json", "k.xml", "k.html"):
        out = tmp_path / name
        result = invoke(["check", str(inventory), "-o", str(out)])
        assert result.exit_code == 1, result.output
        assert KEY not in result.output
        assert KEY not in out.read_text(encoding="utf-8")


@integration
def test_api_key_env_without_key_fails_auth_on_keyed_site(fleet: LocalFleet) -> None:
    # the key is required there, so a wrong one must fail
    result = invoke(
        ["check", *url_args(fleet, "keyed"), "--api-key-env", KEY_VAR],
        env={KEY_VAR: "wrong-key"},
    )
    assert result.exit_code == 1, result.output
    assert "auth" in result.stdout


def _subprocess_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ollama_fleet", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@integration
@pytest.mark.parametrize(("site", "code"), [("good", 0), ("bad", 1)])
def test_subprocess_exit_codes(fleet: LocalFleet, site: str, code: int) -> None:
    proc = _subprocess_check(*url_args(fleet, site))
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert url_name(fleet, site) in proc.stdout


@integration
def test_console_script_strict(fleet: LocalFleet) -> None:
    script = Path(sys.executable).with_name("ollama-fleet")
    assert script.exists(), "the ollama-fleet console script is not installed (pyproject scripts)"
    proc = subprocess.run(
        [str(script), "check", "--strict", *url_args(fleet, "warned")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
