"""The strict fake connector and its harness: a command without an answer fails the test."""

from __future__ import annotations

import gc
import io
import warnings
from pathlib import Path
from typing import Any

import pytest

from ollama_fleet.controller import DeployOptions, make_plan, run_runner
from ollama_fleet.deploys.facts import SshdPorts
from ollama_fleet.errors import FleetError
from ollama_fleet.inventory import load_inventory

from .answers import answer, octal, regex, symbolic
from .captured import fact_command
from .commands import apt_install
from .conftest import (
    deploy_fakes,
    gpu_host,
    headers,
    host,
    run_strict,
    strict_fakes,
    unanswered,
    write_inventory,
)
from .strict_fake.strict_fake import find_answer, guarded, match, ran_in_order, shell_error

GUARDED = "if command -v dpkg >/dev/null 2>&1; then ( dpkg -l ); else echo '##PYINFRA_NOCMD##'; fi"

# -- pure: how an answer is found ----------------------------------------------------------------


def test_exact_takes_the_whole_command_or_the_one_inside_pyinfras_guard() -> None:
    assert guarded(GUARDED) == "dpkg -l"
    assert match({"exact": "dpkg -l"}, GUARDED)
    assert match({"exact": "dpkg -l"}, "dpkg -l")
    assert not match({"exact": "dpkg -l"}, "dpkg -l | grep caddy")
    assert not match({"exact": "dpkg"}, GUARDED)


def test_regex_must_take_the_whole_command_and_contains_any_part() -> None:
    assert match({"regex": r"uname -[rs]"}, "uname -r")
    assert not match({"regex": r"uname -[rs]"}, "uname -r; reboot")
    assert match({"contains": "command -v dpkg"}, GUARDED)
    with pytest.raises(ValueError, match="needs exact, regex or contains"):
        match({"stdout": ["x"]}, "uname -r")


def test_after_needs_those_commands_earlier_and_in_this_order() -> None:
    install = {
        "exact": "apt-get install caddy",
        "after": [{"exact": "add repo"}, {"exact": "apt-get update"}],
    }

    assert find_answer([install], "apt-get install caddy", ["add repo", "x", "apt-get update"])
    assert not find_answer([install], "apt-get install caddy", ["apt-get update", "add repo"])
    assert not find_answer([install], "apt-get install caddy", ["add repo"])
    assert ran_in_order([], [])


def test_first_answer_that_takes_the_command_wins() -> None:
    answers = [
        {"exact": "id -nG ollama", "stdout": ["ollama render"]},
        {"regex": r"id -nG \S+", "stdout": []},
    ]

    found = find_answer(answers, "id -nG ollama", [])
    assert found is not None and found[0]["stdout"] == ["ollama render"]


def test_sh_n_refuses_a_command_that_does_not_parse() -> None:
    assert shell_error("for f in a b; do echo $f; done") is None
    assert shell_error("if [ -f x ]; then echo y") is not None
    assert shell_error("echo 'unclosed") is not None


def test_modes_read_as_stat_prints_them() -> None:
    assert octal("rwxrwxrwt") == "1777"
    assert octal("rw-r-----") == "640"
    assert symbolic("750", "d") == "drwxr-x---"


# -- the harness: a deploy with a command nobody answered --------------------------------------


def without(entry: dict[str, Any], command: str) -> dict[str, Any]:
    """`entry` (from host()) with no answer for `command`."""
    answers = [a for a in entry["x_fake_answers"] if a.get("exact") != command]
    return {**entry, "x_fake_answers": answers}


@pytest.mark.integration
def test_a_fact_without_an_answer_fails_the_test_naming_the_command(tmp_path: Path) -> None:
    sshd = fact_command(SshdPorts)
    hosts = {"no-sshd": without(host(), sshd)}

    with pytest.raises(pytest.fail.Exception) as failed:
        deploy_fakes(tmp_path, hosts, roles=["firewall"])

    message = str(failed.value)
    assert "1 command(s) had no answer from the strict fake hosts" in message
    assert f"[@strictfake/no-sshd] strict fake: no answer for: {sshd}" in message


@pytest.mark.integration
def test_the_unanswered_command_fails_on_the_host_too(tmp_path: Path) -> None:
    sshd = fact_command(SshdPorts)
    inventory = load_inventory(write_inventory(tmp_path, {"no-sshd": without(host(), sshd)}))
    plan = make_plan(
        inventory,
        DeployOptions(dry=True, roles=("firewall",), cache_dir=tmp_path),
        decrypt=lambda text, path: text,
    )
    log, report = io.StringIO(), tmp_path / "report.jsonl"

    with warnings.catch_warnings(), strict_fakes(report):
        warnings.simplefilter("ignore", ResourceWarning)
        result = run_runner(plan.spec, on_event=lambda event: None, log=log)
        gc.collect()

    assert [h.name for h in result.failed] == ["@strictfake/no-sshd"]
    assert f"strict fake: no answer for: {sshd}" in log.getvalue()
    assert unanswered(report) == [f"[@strictfake/no-sshd] strict fake: no answer for: {sshd}"]


@pytest.mark.integration
def test_an_operation_run_out_of_order_has_no_answer(tmp_path: Path) -> None:
    """The driver's install is answered only after a command the role never runs."""
    driver = apt_install(*headers("ubuntu2404"), "nvidia-driver-pinning-580", "nvidia-open")
    hosts = {
        "out-of-order": gpu_host(
            "ubuntu2404",
            {driver: answer(after=["apt-get install cuda-keyring"])},
            {regex(r"(chown|chmod|mv|mkdir|curl|update-initramfs|touch) .*"): answer()},
            {regex(r"dpkg --force-confdef .*|apt-get update|.* install -f"): answer()},
        )
    }

    with pytest.raises(pytest.fail.Exception) as failed:
        deploy_fakes(tmp_path, hosts, roles=["gpu"], dry=False)

    assert f"[@strictfake/out-of-order] strict fake: no answer for: {driver}" in str(failed.value)


@pytest.mark.integration
def test_an_inventory_alone_cannot_reach_the_strict_connector(tmp_path: Path) -> None:
    inventory = load_inventory(write_inventory(tmp_path, {"x": host()}))
    plan = make_plan(
        inventory,
        DeployOptions(dry=True, roles=("firewall",), cache_dir=tmp_path),
        decrypt=lambda text, path: text,
    )
    log = io.StringIO()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(FleetError, match="stopped unexpectedly"):
            run_runner(plan.spec, on_event=lambda event: None, log=log)
        gc.collect()
    assert "Invalid connector: strictfake" in log.getvalue()


@pytest.mark.integration
def test_a_host_with_every_answer_passes(tmp_path: Path) -> None:
    inventory = load_inventory(write_inventory(tmp_path, {"bare": host()}))
    plan = make_plan(
        inventory,
        DeployOptions(dry=True, roles=("firewall",), cache_dir=tmp_path),
        decrypt=lambda text, path: text,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        result = run_strict(
            plan.spec, tmp_path / "report.jsonl", on_event=lambda event: None, log=io.StringIO()
        )
        gc.collect()
    assert result.failed == ()
