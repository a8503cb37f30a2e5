"""What every command shares: exit codes, the one error wrapper, common options.

Only click and the standard library are imported at module level: `ollama-fleet --help`
loads every command module, and each imports its heavy parts inside the command.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ollama_fleet.errors import ConfigError, FleetError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1  # a check or a host failed
EXIT_USAGE = 2  # bad options, inventory or vault data; or nothing was checked
EXIT_UNREACHABLE = 4  # a host could not be reached (as Ansible)

CONTEXT = {"help_option_names": ["-h", "--help"]}


class FleetCommandError(click.ClickException):
    """A FleetError shown as one line, exit status 1."""

    exit_code = EXIT_FAILED


class FleetConfigError(FleetCommandError):
    """A ConfigError shown as one line, exit status 2 like a usage error."""

    exit_code = EXIT_USAGE


class UnreachableError(FleetCommandError):
    """A host could not be reached: exit status 4."""

    exit_code = EXIT_UNREACHABLE


def as_click_error(error: FleetError) -> click.ClickException:
    """The one mapping from the library's errors to a message and an exit status."""
    if isinstance(error, ConfigError):
        return FleetConfigError(str(error))
    if getattr(error, "unreachable", False):
        return UnreachableError(str(error))
    return FleetCommandError(str(error))


class FleetGroup(click.Group):
    """A group whose commands (and subgroups) show the library's errors as one line.

    The wrapper sits here, once: no command needs a decorator, and a traceback is only
    ever a bug.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            ctx.meta["ollama_fleet.argv"] = list(args)  # for reports: the command line
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FleetError as error:
            raise as_click_error(error) from None


class LazyGroup(FleetGroup):
    """A FleetGroup whose commands are imported only when asked for, by name."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy  # {command name: "module:attribute"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


# == checks.reports.FORMATS (a test says so)
REPORT_FORMATS = ("text", "json", "junit", "html", "csv")


def report_options(fn: F) -> F:
    """--format and --output, shared by every command that writes a report."""
    fn = click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the report to FILE (atomically). The terminal still gets the text "
        "summary. Without --format, the format follows the suffix (.json .xml .html .csv).",
    )(fn)
    fn = click.option(
        "--format",
        "fmt",
        type=click.Choice(REPORT_FORMATS),
        default=None,
        help="Report format: text (default), json, junit (JUnit XML), html or csv (one row "
        "per result; -o FILE.csv picks it too).",
    )(fn)
    return fn


def write_report(path: Path, text: str) -> None:
    """Write a report atomically: a CI job never picks up half of one."""
    from ollama_fleet.fsutil import atomic_write

    atomic_write(path, text, what="report")


class VaultPassword:
    """The vault password, asked for (or read) at most once per command, and only if needed."""

    def __init__(self, file: Path | None) -> None:
        from ollama_fleet.vault import PasswordSource

        self.source = PasswordSource(file=file)
        self.password: Any = None

    def get(self) -> Any:
        from ollama_fleet.vault import read_password

        if self.password is None:
            self.password = read_password(self.source, warn=lambda line: click.echo(line, err=True))
        return self.password

    def load(self, path: Path, *, extra_vars: tuple[str, ...] = ()) -> Any:
        """The inventory at `path` (a file or a directory, with group_vars/ and host_vars/),
        its vault data opened with the password, read only if some file needs it; `-e`
        values on top."""
        from ollama_fleet.inventory import load_inventory, needs_vault_password, parse_extra_vars

        extra = parse_extra_vars(extra_vars) if extra_vars else None
        vault = self.get() if needs_vault_password(path) else None
        return load_inventory(path, vault=vault, extra_vars=extra)

    def decrypt(self, text: str, path: Path) -> str:
        """A controller file (a TLS key) that may be a vault file; plain text passes."""
        from ollama_fleet.vault import decrypt_text, is_encrypted

        if not is_encrypted(text):
            return text
        return decrypt_text(text, self.get(), where=str(path), what="vault file")


def limit_option(fn: F) -> F:
    """--limit with Ansible's host patterns, the same on deploy, check and diagnose."""
    return click.option(
        "-l",
        "--limit",
        multiple=True,
        metavar="PATTERN",
        help="Only these hosts: names, groups, globs (gpu-*), exclusions (gpu:!gpu-3), "
        "intersections (gpu:&eu) or @FILE with one pattern per line (a retry file). "
        "Repeatable; parts separated by commas or colons.",
    )(fn)


def list_hosts_option(fn: F) -> F:
    return click.option(
        "--list-hosts",
        is_flag=True,
        help="Print the hosts the inventory and --limit select, then exit; contacts nothing.",
    )(fn)


def extra_vars_option(fn: F) -> F:
    return click.option(
        "-e",
        "--extra-vars",
        multiple=True,
        metavar="KEY=VALUE|@FILE",
        help="Set a variable on every host, over everything in the inventory (repeatable): "
        "KEY=VALUE (the value read as YAML: 8080 is a number) or @FILE, a YAML mapping.",
    )(fn)


def vault_password_option(fn: F) -> F:
    """--vault-password-file, for every command that reads vault data."""
    return click.option(
        "--vault-password-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the vault password from FILE (one trailing newline is ignored); an "
        "executable FILE is run and its output is the password, as in Ansible. Without it: "
        "$OLLAMA_FLEET_VAULT_PASSWORD, else a prompt when stdin is a terminal.",
    )(fn)


def command_line() -> str:
    """The command line this command was run with, for reports (the caller redacts secrets)."""
    context = click.get_current_context(silent=True)
    argv = context.find_root().meta.get("ollama_fleet.argv") if context else None
    return shlex.join(["ollama-fleet", *(sys.argv[1:] if argv is None else argv)])


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def refuse_without_terminal() -> None:
    """A question nobody can answer is refused up front, before any work, with the way out."""
    if not _stdin_is_terminal():
        raise FleetConfigError(
            "stdin is not a terminal, so nobody can answer the confirmation: pass -y to "
            "change the hosts without asking, or --dry to see what would change"
        )


def confirm(question: str) -> None:
    """Ask before changing hosts; a non-terminal stdin is refused, never read as an answer."""
    refuse_without_terminal()
    if not click.confirm(question, default=False):
        click.echo("nothing changed: not confirmed", err=True)
        sys.exit(EXIT_FAILED)
