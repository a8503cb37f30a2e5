"""`ollama-fleet monitor`: run the checks on a schedule with metrics, alerts and a status page."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ollama_fleet.cli._common import (
    CONTEXT,
    EXIT_OK,
    FleetGroup,
    extra_vars_option,
    limit_option,
    vault_password_option,
)

if TYPE_CHECKING:
    from ollama_fleet.monitor.settings import MonitorConfig

INVENTORY = "ollama_fleet.monitor.inventory"  # ctx.meta: the INVENTORY positional, if given


class MonitorGroup(FleetGroup):
    """A group that also takes an INVENTORY: the first positional that names no subcommand.

    click lets a group have arguments or subcommands, not both, since it cannot tell
    `monitor rules` from `monitor inventory.yml`; this group tells them apart by name.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        index = self._inventory_index(ctx, args)
        if index is not None:
            ctx.meta[INVENTORY] = args[index]
            args = [*args[:index], *args[index + 1 :]]
        return super().parse_args(ctx, args)

    def _inventory_index(self, ctx: click.Context, args: list[str]) -> int | None:
        """Where the first positional is, if it is not a subcommand's name."""
        takes_value = {
            opt
            for param in self.get_params(ctx)
            if isinstance(param, click.Option) and not param.is_flag
            for opt in param.opts
        }
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                index += 1
                break
            if arg.startswith("-") and arg != "-":
                # `--opt value` takes the next word; `--opt=value` and `-lVALUE` do not
                index += 2 if arg in takes_value else 1
                continue
            break
        if index >= len(args) or args[index] in self.list_commands(ctx):
            return None
        return index


@click.group(
    cls=MonitorGroup,
    invoke_without_command=True,
    context_settings=CONTEXT,
    subcommand_metavar="[INVENTORY] | rules [-o FILE]",
)
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the monitor's configuration from FILE (monitor.yml; see docs/monitor.md).",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Serve the metrics and the status page here, over the config's listen "
    "(default 127.0.0.1:9464; [IPv6]:PORT, or just a port).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep history and alert state (SQLite) in DIR, over the config's state_dir.",
)
@click.option(
    "--check-config",
    is_flag=True,
    help="Only read and check the configuration, print a one-line summary and exit 0 "
    "(2 when it is invalid): for operators, and for ExecStartPre in the unit.",
)
@limit_option
@extra_vars_option
@vault_password_option
@click.pass_context
def monitor(
    ctx: click.Context,
    config_file: Path | None,
    listen: str | None,
    state_dir: Path | None,
    check_config: bool,
    limit: tuple[str, ...],
    extra_vars: tuple[str, ...],
    vault_password_file: Path | None,
) -> None:
    """Run the checks on a schedule: Prometheus metrics, alerts, history and a status page.

    \b
    ollama-fleet monitor --config monitor.yml        the service (see docs/monitor.md)
    ollama-fleet monitor inventories/production.yml  quick start: every public_url, defaults
    ollama-fleet monitor --config monitor.yml --check-config
    ollama-fleet monitor rules -o ollama-fleet.rules.yml

    Give exactly one of --config FILE or INVENTORY. The INVENTORY form watches every host
    with a public_url (--limit and -e as for `check`) with every setting at its default.
    SIGHUP re-reads the configuration (a bad one is refused and the old one keeps
    running); SIGTERM or SIGINT stops it within shutdown_grace and exits 0.

    Exit status: 0 stopped cleanly (or the config is valid, with --check-config); 2 usage
    or config error.
    """
    inventory = ctx.meta.get(INVENTORY)
    if ctx.invoked_subcommand is not None:
        if inventory is not None or config_file is not None:
            raise click.UsageError(
                f"`monitor {ctx.invoked_subcommand}` takes no --config or INVENTORY"
            )
        return
    if (inventory is None) == (config_file is None):
        raise click.UsageError("give either --config FILE or an INVENTORY (not both)")
    if config_file is not None and (limit or extra_vars):
        raise click.UsageError(
            "--limit and -e select from an INVENTORY; with --config, they do not apply"
        )
    load = _loader(
        config_file=config_file,
        inventory=None if inventory is None else Path(inventory),
        limit=limit,
        extra_vars=extra_vars,
        vault_password_file=vault_password_file,
        listen=listen,
        state_dir=state_dir,
    )
    config = load()
    if check_config:
        from ollama_fleet.monitor.config import describe

        click.echo(describe(config))
        sys.exit(EXIT_OK)
    from ollama_fleet.monitor.service import run_monitor

    sys.exit(run_monitor(config, reload=load))


def _loader(
    *,
    config_file: Path | None,
    inventory: Path | None,
    limit: tuple[str, ...],
    extra_vars: tuple[str, ...],
    vault_password_file: Path | None,
    listen: str | None,
    state_dir: Path | None,
) -> Callable[[], MonitorConfig]:
    """What reads the configuration, now and on each SIGHUP, with the options on top."""
    from dataclasses import replace

    from ollama_fleet.errors import ConfigError
    from ollama_fleet.monitor.config import config_from_inventory, load_config, parse_listen
    from ollama_fleet.vault import PasswordSource

    address = None
    if listen is not None:
        address = parse_listen(listen)
        if address is None:
            raise ConfigError(f"--listen: {listen!r} is not HOST:PORT ([IPv6]:PORT) or a port")
    overrides: dict[str, Any] = {}
    if address is not None:
        overrides["listen_host"], overrides["listen_port"] = address
    if state_dir is not None:
        overrides["state_dir"] = state_dir.resolve()
    # a password file is read again on each reload: a rotated one is picked up
    password = None if vault_password_file is None else PasswordSource(file=vault_password_file)

    def load() -> MonitorConfig:
        if config_file is not None:
            config = load_config(config_file, vault_password=password)
        else:
            from ollama_fleet.inventory import parse_extra_vars

            assert inventory is not None
            config = config_from_inventory(
                inventory,
                vault_password=password or PasswordSource(),
                extra_vars=parse_extra_vars(extra_vars) if extra_vars else None,
                limit=limit,
            )
        return replace(config, **overrides)

    return load


@monitor.command(context_settings=CONTEXT)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rules to FILE (atomically) instead of standard output.",
)
def rules(output: Path | None) -> None:
    """Print Prometheus alerting rules on the monitor's metrics.

    For users who alert from Prometheus (and Alertmanager) instead of the monitor's own
    receivers: name the file in Prometheus's rule_files. `promtool check rules` accepts it.
    """
    from ollama_fleet.fsutil import atomic_write
    from ollama_fleet.monitor.rules import render_rules

    text = render_rules()
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write(output, text, what="rules file")
        click.echo(f"rules written to {output}", err=True)
