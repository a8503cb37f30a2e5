"""What every command shares (cli/_common.py): the confirmation, errors to exit codes.

Colour (NO_COLOR) is checks.reports.use_color, tested with the text report."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from ollama_fleet.checks.model import CHECK_NAMES, LATENCY_NAMES
from ollama_fleet.checks.reports import FORMATS
from ollama_fleet.cli import _common, check
from ollama_fleet.cli._common import EXIT_UNREACHABLE, FleetGroup, confirm
from ollama_fleet.controller import DeployFailed
from ollama_fleet.errors import ConfigError, FleetError


def test_the_cli_copies_of_the_checks_names_are_the_checks_own() -> None:
    # the CLI does not import the checks package to build --help: its copies must not drift
    assert check.CHECK_NAMES == CHECK_NAMES
    assert check.LATENCY_NAMES == LATENCY_NAMES
    assert _common.REPORT_FORMATS == FORMATS


def _group_running(error: Exception) -> click.Group:
    @click.group(cls=FleetGroup)
    def group() -> None:
        pass

    @group.command()
    def sub() -> None:
        raise error

    return group


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("inv.yml:3: x: bad"), 2),
        (FleetError("a host failed"), 1),
        (DeployFailed("1 host(s) unreachable: a", unreachable=True), EXIT_UNREACHABLE),
    ],
)
def test_one_wrapper_turns_every_library_error_into_one_line_and_its_code(
    error: Exception, code: int
) -> None:
    result = CliRunner().invoke(_group_running(error), ["sub"])

    assert result.exit_code == code
    assert result.output == f"Error: {error}\n"


def test_a_bug_is_not_swallowed() -> None:
    result = CliRunner().invoke(_group_running(KeyError("bug")), ["sub"])

    assert isinstance(result.exception, KeyError)


def test_confirm_refuses_a_stdin_that_is_not_a_terminal() -> None:
    @click.command()
    def cmd() -> None:
        confirm("Change these hosts?")

    result = CliRunner().invoke(cmd, [], input="y\n")  # CliRunner's stdin is no terminal

    assert result.exit_code == 2
    assert "stdin is not a terminal" in result.output
    assert "pass -y" in result.output and "--dry" in result.output


def test_confirm_no_exits_one_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command()
    def cmd() -> None:
        confirm("Change these hosts?")
        click.echo("changed")

    def tty_stdin(*args: Any, **kwargs: Any) -> bool:
        return True

    monkeypatch.setattr(_common, "_stdin_is_terminal", tty_stdin)
    result = CliRunner().invoke(cmd, [], input="n\n")

    assert result.exit_code == 1
    assert "nothing changed: not confirmed" in result.output
    assert "changed\n" not in result.output.replace("nothing changed", "")
