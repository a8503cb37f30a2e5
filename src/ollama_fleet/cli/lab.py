"""`ollama-fleet lab`: build, start, stop, inspect and enter the local Debian 12 VM."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ollama_fleet import lab as lab_api
from ollama_fleet.cli._common import CONTEXT, FleetGroup
from ollama_fleet.errors import TestbedError
from ollama_fleet.lab.defaults import ACCELS, BOOT_TIMEOUT_S, POWEROFF_TIMEOUT_S, STATE_DIR_ENV
from ollama_fleet.lab.recipe import DEFAULT_MIRROR

F = TypeVar("F", bound=Callable[..., Any])

_progress = functools.partial(click.echo, err=True)


def state_dir_option(fn: F) -> F:
    """--state-dir, shared by every command that acts on one lab."""
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=STATE_DIR_ENV,
        default=None,
        help=f"The lab's directory: overlay, SSH key, ports, inventory, serial log. "
        f"Default: ${STATE_DIR_ENV}, else ~/.cache/ollama-fleet/lab.",
    )(fn)


def mirror_option(fn: F) -> F:
    return click.option(
        "--mirror",
        default=DEFAULT_MIRROR,
        show_default=True,
        envvar="OLLAMA_FLEET_LAB_MIRROR",
        help="Debian mirror the image is built from (only when it is not cached yet).",
    )(fn)


@click.group(cls=FleetGroup, context_settings=CONTEXT)
def lab() -> None:
    """The lab: a local Debian 12 VM with systemd, for deploys and end-to-end tests.

    \b
    Start it:      ollama-fleet lab up        (first time: builds the image, needs root)
    Get in:        ollama-fleet lab ssh [-- COMMAND...]
    Look at it:    ollama-fleet lab status
    Stop it:       ollama-fleet lab down [--destroy]

    The VM is reached only through forwards on 127.0.0.1; `up` writes an inventory for
    it to <state dir>/inventory.yml. See docs/lab.md.
    """


@lab.command()
@mirror_option
def build(mirror: str) -> None:
    """Build the lab's disk image now (2-3 minutes, needs root); no-op if it is cached.

    `up` builds it too when needed; this command lets CI or a root shell do it ahead.
    """
    image = lab_api.build_image(mirror=mirror, progress=_progress)
    click.echo(f"lab image: {image.directory}")


def _port_option(name: str, guest: int) -> Callable[[F], F]:
    return click.option(
        f"--{name}-port",
        type=click.IntRange(1, 65535),
        help=f"Port on 127.0.0.1 forwarded to the VM's {guest}. Default: the lab's port "
        "from last time if still free, else a free one.",
    )


@lab.command()
@state_dir_option
@click.option(
    "--fresh",
    is_flag=True,
    help="Discard the overlay (everything deploys did) and boot the clean image.",
)
@click.option(
    "--accel",
    type=click.Choice(ACCELS),
    envvar="OLLAMA_FLEET_LAB_ACCEL",
    help="qemu accelerator: tcg (the default, works everywhere) or kvm (only where a "
    "KVM guest is known to boot; on some machines it hangs at kernel start).",
)
@click.option("--memory", type=click.IntRange(512), help="MB of RAM (default 2048).")
@click.option("--cpus", type=click.IntRange(1), help="Virtual CPUs (default 2).")
@_port_option("ssh", 22)
@_port_option("http", 80)
@_port_option("https", 443)
@_port_option("ollama", 11434)
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=BOOT_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for SSH after qemu starts.",
)
@mirror_option
def up(
    state_dir: Path | None,
    fresh: bool,
    accel: str | None,
    memory: int | None,
    cpus: int | None,
    ssh_port: int | None,
    http_port: int | None,
    https_port: int | None,
    ollama_port: int | None,
    timeout: float,
    mirror: str,
) -> None:
    """Start the lab and wait until SSH answers; if it runs already, just show it.

    The first start builds the image (needs root; cached in ~/.cache/ollama-fleet/
    lab-images) and an overlay on it; later starts boot the same overlay, so what a
    deploy did survives `down` and `up`. Settings left out are kept from last time.
    """
    options = lab_api.LabOptions(
        accel=accel,
        memory_mb=memory,
        cpus=cpus,
        ssh_port=ssh_port,
        http_port=http_port,
        https_port=https_port,
        ollama_port=ollama_port,
        boot_timeout_s=timeout,
        mirror=mirror,
        fresh=fresh,
    )
    info = lab_api.up(state_dir, options, progress=_progress)
    ready = lab_api.LabStatus(state_dir=info.state_dir, info=info, running=True, ssh_ok=True)
    click.echo(lab_api.render_status(ready), nl=False)


@lab.command()
@state_dir_option
@click.option(
    "--destroy",
    is_flag=True,
    help="Also delete the overlay, SSH key, inventory and state: the next `up` starts clean.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=POWEROFF_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for a clean power-off before stopping qemu with signals.",
)
def down(state_dir: Path | None, destroy: bool, timeout: float) -> None:
    """Power the lab off; its overlay stays for the next `up` unless --destroy."""
    info = lab_api.down(state_dir, destroy=destroy, timeout_s=timeout, progress=_progress)
    if info is None:
        return
    if destroy:
        click.echo(f"lab destroyed: {info.state_dir}")
    else:
        click.echo(f"lab stopped; its overlay stays in {info.state_dir} for `lab up`")


@lab.command()
@state_dir_option
def status(state_dir: Path | None) -> None:
    """Show whether the lab runs and answers SSH, its ports and files.

    Exit status: 0 running and SSH answers, 1 otherwise.
    """
    found = lab_api.status(state_dir)
    click.echo(lab_api.render_status(found), nl=False)
    sys.exit(0 if found.ready else 1)


@lab.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@state_dir_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(state_dir: Path | None, command: tuple[str, ...]) -> None:
    """Open a root shell in the lab, or run COMMAND there (ssh's exit status).

    \b
    ollama-fleet lab ssh
    ollama-fleet lab ssh -- systemctl status caddy
    """
    found = lab_api.status(state_dir, probe_ssh=False)
    if found.info is None:
        raise TestbedError(f"no lab in {found.state_dir}: `ollama-fleet lab up` starts one")
    if not found.running:
        raise TestbedError(f"the lab in {found.state_dir} is stopped: `ollama-fleet lab up`")
    argv = lab_api.ssh_command(found.info, *command)
    os.execv(argv[0], argv)


@lab.command()
@state_dir_option
@click.option("--admin", is_flag=True, help="The admin key (the gateway's admin API) instead.")
def key(state_dir: Path | None, admin: bool) -> None:
    """Print the lab's gateway key (the user key, or --admin's), for `$(...)` in a command.

    \b
    curl -H "Authorization: Bearer $(ollama-fleet lab key)" ...
    """
    from ollama_fleet.lab.vault import lab_key

    click.echo(lab_key((state_dir or lab_api.default_state_dir()).absolute(), admin=admin))


@lab.command()
@state_dir_option
def access(state_dir: Path | None) -> None:
    """How to reach the lab's gateway: its URL, the key, a curl and an openai-python line.

    Each line works as printed once the site is deployed (`make demo`); the key itself is
    never printed here, only the command that prints it.
    """
    from ollama_fleet.lab.access import access_lines

    found = lab_api.status(state_dir, probe_ssh=False)
    if found.info is None:
        raise TestbedError(f"no lab in {found.state_dir}: `ollama-fleet lab up` starts one")
    click.echo(access_lines(found.info, command=_own_command(), python=sys.executable))


def _own_command() -> list[str]:
    """How to run this ollama-fleet again from any directory: its script's absolute path."""
    script = Path(sys.argv[0])
    if script.name == "ollama-fleet":
        return [str(script.absolute())]
    return [sys.executable, "-m", "ollama_fleet"]
