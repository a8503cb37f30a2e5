"""`ollama-fleet gateway`: run the gateway and make API keys for it (admin: gateway_admin.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from ollama_fleet.cli._common import (
    CONTEXT,
    EXIT_OK,
    FleetConfigError,
    FleetGroup,
)

ROLES = ("admin", "user", "readonly")  # == gateway.settings.Role's values (a test says so)
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # what a key in an Authorization header may hold


@click.group(cls=FleetGroup, invoke_without_command=True, context_settings=CONTEXT)
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run the gateway on FILE (gateway.yml; see docs/gateway.md).",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Listen here instead of the config's listen ([IPv6]:PORT, or just a port).",
)
@click.option(
    "--check-config",
    is_flag=True,
    help="Only read and check the config, print a one-line summary and exit 0 (2 when it "
    "is invalid): for operators, and for ExecStartPre in the unit.",
)
@click.pass_context
def gateway(
    ctx: click.Context, config_file: Path | None, listen: str | None, check_config: bool
) -> None:
    """Run the gateway: API keys, rate limits and model-aware balancing over Ollama nodes.

    \b
    ollama-fleet gateway --config gateway.yml                 the service
    ollama-fleet gateway --config gateway.yml --check-config
    ollama-fleet gateway key new alice                        a new API key
    ollama-fleet gateway nodes                                the admin API (role admin)

    The admin commands reach the gateway at --url (or $OLLAMA_FLEET_GATEWAY_URL) with the
    key from $OLLAMA_FLEET_GATEWAY_KEY or --key-file. SIGHUP re-reads the config (a bad one
    is refused and the old one keeps running); SIGTERM stops it gracefully.

    Exit status: 0 stopped cleanly (or the config is valid); 1 an admin request failed;
    2 usage or config error.
    """
    if ctx.invoked_subcommand is not None:
        if config_file is not None or listen is not None or check_config:
            raise click.UsageError(
                f"`gateway {ctx.invoked_subcommand}` takes no --config, --listen or --check-config"
            )
        return
    if config_file is None:
        raise click.UsageError("give --config FILE to run the gateway, or a command (see -h)")
    from ollama_fleet.errors import ConfigError
    from ollama_fleet.gateway.config import describe, load_config, parse_listen

    address = None if listen is None else parse_listen(listen)
    if listen is not None and address is None:
        raise ConfigError(f"--listen: {listen!r} is not HOST:PORT ([IPv6]:PORT) or a port")
    if check_config:
        click.echo(describe(load_config(config_file)))
        sys.exit(EXIT_OK)
    from ollama_fleet.gateway.service import run_gateway

    sys.exit(run_gateway(config_file, listen=address))


# -- keys --------------------------------------------------------------------------------


@gateway.group(cls=FleetGroup, context_settings=CONTEXT)
def key() -> None:
    """Make a new API key, or hash one for gateway.yml (which holds only hashes)."""


@key.command("new", context_settings=CONTEXT)
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="user",
    show_default=True,
    help="admin: everything; user: list, show and generate; readonly: list and show.",
)
@click.option(
    "--models",
    multiple=True,
    metavar="GLOB",
    help="Models the key may use, as globs (llama3*); repeatable. Default: every model.",
)
def key_new(name: str, role: str, models: tuple[str, ...]) -> None:
    """Make a new API key NAME and print it once, with the entries to store it.

    stdout gets the key alone, on one line (pipe it where it goes). stderr gets the entry
    for the inventory's gateway_api_keys (with the key: keep it in the vault) and the
    entry for a hand-written gateway.yml's keys: (its sha256 only).
    """
    from ollama_fleet.gateway.keys import hash_key, new_key

    if not _PRINTABLE.fullmatch(name):
        raise FleetConfigError(f"NAME: {name!r} must be one word of printable characters")
    if any(not glob.strip() for glob in models):
        raise FleetConfigError("--models: a glob must not be empty")
    secret = new_key()
    click.echo(secret)
    shown = json.dumps(list(models or ("*",)))
    common = f"    role: {role}\n    models: {shown}"
    click.echo(
        "The key is shown once, above. Add this entry to gateway_api_keys in your inventory "
        "with `ollama-fleet vault edit INVENTORY` (the !vault-plain tag has it encrypted "
        f"on save):\n  - name: {json.dumps(name)}\n    key: !vault-plain {json.dumps(secret)}\n"
        f"{common}\nOr, for a gateway.yml written by hand, this entry under keys: (the hash "
        f"only):\n  - name: {json.dumps(name)}\n    sha256: {hash_key(secret)}\n{common}",
        err=True,
    )


@key.command("hash", context_settings=CONTEXT)
def key_hash() -> None:
    """Print sha256:<hex> of a key read from stdin (a hidden prompt at a terminal).

    For gateway.yml's keys[].sha256. The key is never taken from the command line, where
    shell history would keep it; one trailing newline is dropped.
    """
    from ollama_fleet.gateway.keys import hash_key

    if sys.stdin.isatty():
        secret = click.prompt("Key", hide_input=True, err=True)
    else:
        secret = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not secret.strip():
        raise FleetConfigError("no key on stdin")
    click.echo(f"sha256:{hash_key(secret)}")


def _add_admin_commands() -> None:
    from ollama_fleet.cli.gateway_admin import COMMANDS

    for command in COMMANDS:
        gateway.add_command(command)


_add_admin_commands()
