"""`ollama-fleet deploy`: converge the hosts of an inventory, then check what changed."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import click

from ollama_fleet.cli._common import (
    CONTEXT,
    VaultPassword,
    command_line,
    confirm,
    extra_vars_option,
    limit_option,
    list_hosts_option,
    refuse_without_terminal,
    vault_password_option,
)


@click.command(context_settings=CONTEXT)
@click.argument("inventory", type=click.Path(path_type=Path))
@limit_option
@list_hosts_option
@extra_vars_option
@click.option(
    "--dry",
    "--check",
    "dry",
    is_flag=True,
    help="Show what would change; change nothing. --check is the same (Ansible's name). "
    "Needs no internet: a checksum still to be fetched is planned for the apply.",
)
@click.option("--diff", is_flag=True, help="Show a diff of every file that changes.")
@click.option(
    "--roles",
    multiple=True,
    metavar="ROLES",
    help="Run only these roles, in the site's order (repeatable or comma-separated): "
    "gpu, ollama, models, caddy, firewall, services.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask before changing hosts.")
@vault_password_option
@click.option(
    "--checks",
    "checks_mode",
    type=click.Choice(["changed", "all", "none"]),
    default="changed",
    show_default=True,
    help="After the deploy, verify (ollama-fleet check) the hosts that changed, all deployed "
    "hosts, or none. Not the dry run: that is --check/--dry.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("out/deploy/checks.html"),
    show_default=True,
    help="Where the checks' HTML report goes.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show pyinfra's log and connection tracebacks.")
@click.option(
    "--full",
    is_flag=True,
    help="Run every role's operations even where one look at the host shows it converged "
    "(slower: one command per fact; the result is the same).",
)
def deploy(
    inventory: Path,
    limit: tuple[str, ...],
    list_hosts: bool,
    extra_vars: tuple[str, ...],
    dry: bool,
    diff: bool,
    roles: tuple[str, ...],
    yes: bool,
    vault_password_file: Path | None,
    checks_mode: str,
    report: Path,
    verbose: bool,
    full: bool,
) -> None:
    """Converge the hosts of INVENTORY, then check the ones that changed.

    Runs the roles gpu, ollama, models, caddy, firewall and services (see docs/deploy.md)
    through pyinfra over SSH, in a separate process, showing each operation as it finishes
    and a summary of what changed per host. Everything is validated on this machine first:
    a bad inventory, an unknown variable or a wrong vault password stops the deploy before
    any host is touched. A failed check after the deploy fails it, with the report's path.

    \b
    What would change:  ollama-fleet deploy INVENTORY --check --diff
    Some hosts:         ollama-fleet deploy INVENTORY --limit 'gpu:!gpu-3' --list-hosts
    Retry the failed:   ollama-fleet deploy INVENTORY --limit @out/deploy/failed.txt
    Override a value:   ollama-fleet deploy INVENTORY -e ollama_version=0.5.7

    Exit status: 0 converged and checked; 1 a host or a check failed, or not confirmed;
    2 usage or config error; 4 a host could not be reached.
    """
    from ollama_fleet import controller
    from ollama_fleet.redact import redactor

    if not dry and not yes and not list_hosts:
        refuse_without_terminal()  # before the plan: nothing is built or read for nothing
    password = VaultPassword(vault_password_file)
    from ollama_fleet.deploys.gateway_fleet import resolve_gateways

    # the gateways' nodes by name, across the whole inventory (before --limit chooses hosts)
    inventory_data = resolve_gateways(password.load(inventory, extra_vars=extra_vars))
    if list_hosts:
        from ollama_fleet.hostpatterns import host_list, select_hosts

        click.echo(host_list(select_hosts(inventory_data, limit)))
        return

    options = controller.DeployOptions(
        limit=limit,
        roles=roles,
        dry=dry,
        diff=diff,
        checks=checks_mode,
        report=report,
        verbose=verbose,
        snapshot=not full,
    )
    plan = controller.make_plan(inventory_data, options, decrypt=password.decrypt)
    redact = redactor(plan.secrets)
    if dry:
        say("DRY RUN: nothing on the hosts is changed", fg="cyan", bold=True, err=True)
    for note in plan.notes:
        say(f"NOTE {note}", fg="yellow", err=True)
    names = ", ".join(h.name for h in plan.hosts)
    verb = "planning" if dry else "deploying"
    click.echo(f"{verb} {len(plan.hosts)} host(s) [{names}], roles: {', '.join(plan.roles)}")
    if not dry and not yes:
        confirm("Change these hosts?")
    result = controller.run_runner(
        plan.spec, on_event=functools.partial(_show_event, verbose=verbose), secrets=plan.secrets
    )
    click.echo(_summary(result))
    if result.failed:
        retry = controller.write_retry_file(report.parent / "failed.txt", result)
        raise controller.DeployFailed(
            redact(_failure_line(result, retry)), unreachable=bool(result.unreachable)
        )
    to_check = controller.hosts_to_check(result, plan, checks_mode)
    if not to_check:
        click.echo("checks: nothing changed, nothing to check" if not dry else "dry run: no checks")
        return
    click.echo(f"checking {', '.join(to_check)} ...")
    run = controller.check_hosts(plan, to_check, report, command=redact(command_line()))
    from ollama_fleet.checks.model import Status
    from ollama_fleet.checks.reports import render_text, use_color

    click.echo(redact(render_text(run, color=use_color(sys.stdout))), nl=False)
    if run.status is Status.FAIL:
        raise controller.DeployFailed(f"the checks after the deploy failed; report: {report}")
    click.echo(f"checks passed; report: {report}")


def _failure_line(result: Any, retry: Path | None) -> str:
    parts = []
    if result.unreachable:
        parts.append(
            f"{len(result.unreachable)} host(s) unreachable: "
            + ", ".join(h.name for h in result.unreachable)
        )
    failed = [h for h in result.failed if not h.unreachable]
    if failed:
        parts.append(
            f"{len(failed)} host(s) failed: "
            + "; ".join(f"{h.name}: {(h.error or '').splitlines()[0]}" for h in failed)
        )
    line = "; ".join(parts)
    return f"{line} (retry them: --limit @{retry})" if retry else line


def _show_event(event: dict[str, Any], *, verbose: bool = False) -> None:
    kind, host = event.get("event"), event.get("host")
    if kind == "connect":
        if event.get("ok"):
            click.echo(f"[{host}] connected")
        else:
            say(f"[{host}] UNREACHABLE {event.get('error')}", fg="red")
            if verbose and event.get("detail"):
                say(f"[{host}]     {event['detail']}", fg="red")
    elif kind == "op":
        if not event.get("ok"):
            say(f"[{host}] FAILED {event['op']}", fg="red")
            for line in str(event.get("error") or "").splitlines()[-8:]:
                say(f"[{host}]     {line}", fg="red")
        elif event.get("changed"):
            say(f"[{host}] changed {event['op']}", fg="yellow")
        else:
            click.echo(f"[{host}] ok      {event['op']}")
    elif kind == "plan":
        word = "would change" if event.get("change") else "no change   "
        click.echo(f"[{host}] {word} {event['op']}")
    elif kind == "prepare_error":
        say(f"[{host}] refused: {event.get('error')}", fg="red")
    elif kind == "run_error":
        say(f"deploy stopped: {event.get('error')}", fg="red")


def _summary(result: Any) -> str:
    lines = ["", "summary:"]
    for host in result.hosts:
        if host.unreachable:
            lines.append(f"  {host.name}: UNREACHABLE, nothing ran")
        elif host.failed:
            lines.append(f"  {host.name}: FAILED after {host.ops} operation(s)")
        elif result.dry:
            lines.append(f"  {host.name}: {len(host.planned)} operation(s) would change")
        elif host.changed:
            lines.append(f"  {host.name}: {len(host.changed)} of {host.ops} operation(s) changed")
        else:
            lines.append(f"  {host.name}: no changes ({host.ops} operation(s))")
    return "\n".join(lines)


def say(text: str, *, fg: str | None = None, bold: bool = False, err: bool = False) -> None:
    """One line, coloured only where checks.reports.use_color allows (a terminal, no NO_COLOR)."""
    from ollama_fleet.checks.reports import use_color

    stream = sys.stderr if err else sys.stdout
    click.secho(text, fg=fg, bold=bold, err=err, color=use_color(stream))
