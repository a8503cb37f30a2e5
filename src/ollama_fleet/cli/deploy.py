"""`ollama-fleet deploy`: converge the hosts of an inventory, then check what changed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ollama_fleet.cli._common import CONTEXT, VaultPassword


@click.command(context_settings=CONTEXT)
@click.argument("inventory", type=click.Path(path_type=Path))
@click.option(
    "--limit",
    multiple=True,
    metavar="HOST|GROUP",
    help="Deploy only these hosts or groups (repeatable or comma-separated).",
)
@click.option("--dry", is_flag=True, help="Show what would change; change nothing.")
@click.option("--diff", is_flag=True, help="Show a diff of every file that changes.")
@click.option(
    "--roles",
    multiple=True,
    metavar="ROLES",
    help="Run only these roles, in the site's order (repeatable or comma-separated): "
    "gpu, ollama, models, caddy, firewall, services.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask before changing hosts.")
@click.option(
    "--vault-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the vault password from FILE (else $OLLAMA_FLEET_VAULT_PASSWORD, else a prompt).",
)
@click.option(
    "--checks",
    "checks_mode",
    type=click.Choice(["changed", "all", "none"]),
    default="changed",
    show_default=True,
    help="After the deploy, check the hosts that changed, all deployed hosts, or none.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("out/deploy/checks.html"),
    show_default=True,
    help="Where the checks' HTML report goes.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show pyinfra's log.")
@click.option(
    "--full",
    is_flag=True,
    help="Run every role's operations even where one look at the host shows it converged "
    "(slower: one command per fact; the result is the same).",
)
def deploy(
    inventory: Path,
    limit: tuple[str, ...],
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

    Exit status: 0 converged and checked, 1 a host or a check failed, 2 usage or config error.
    """
    from ollama_fleet import controller as fleet_deploy
    from ollama_fleet.redact import redactor
    from ollama_fleet.vault import decrypt_text, is_encrypted

    password = VaultPassword(vault_password_file)
    inventory_data = password.load(inventory)

    def decrypt(text: str, path: Path) -> str:
        if not is_encrypted(text):
            return text
        return decrypt_text(text, password.get(), where=str(path), what="vault file")

    options = fleet_deploy.DeployOptions(
        limit=limit, roles=roles, dry=dry, diff=diff, checks=checks_mode, report=report,
        verbose=verbose, snapshot=not full,
    )  # fmt: skip
    plan = fleet_deploy.make_plan(inventory_data, options, decrypt=decrypt)
    redact = redactor(plan.secrets)
    for note in plan.notes:
        click.secho(f"NOTE {note}", fg="yellow", err=True)
    names = ", ".join(h.name for h in plan.hosts)
    click.echo(f"deploying {len(plan.hosts)} host(s) [{names}], roles: {', '.join(plan.roles)}")
    if not dry and not yes and not click.confirm("Change these hosts?", default=False):
        raise click.Abort()
    result = fleet_deploy.run_runner(plan.spec, on_event=_show_event, secrets=plan.secrets)
    click.echo(_summary(result))
    if result.failed:
        raise fleet_deploy.DeployFailed(
            redact(
                f"{len(result.failed)} host(s) failed: "
                + "; ".join(
                    f"{h.name}: {(h.error or '').splitlines()[0] if h.error else ''}"
                    for h in result.failed
                )
            )
        )
    to_check = fleet_deploy.hosts_to_check(result, plan, checks_mode)
    if not to_check:
        click.echo("checks: nothing changed, nothing to check" if not dry else "dry run: no checks")
        return
    click.echo(f"checking {', '.join(to_check)} ...")
    run = fleet_deploy.check_hosts(plan, to_check, report)
    from ollama_fleet.checks.model import Status
    from ollama_fleet.checks.reports import render_text

    click.echo(redact(render_text(run, color=sys.stdout.isatty())), nl=False)
    if run.status is Status.FAIL:
        raise fleet_deploy.DeployFailed(f"the checks after the deploy failed; report: {report}")
    click.echo(f"checks passed; report: {report}")


def _show_event(event: dict[str, Any]) -> None:
    kind, host = event.get("event"), event.get("host")
    if kind == "connect":
        if event.get("ok"):
            click.echo(f"[{host}] connected")
        else:
            click.secho(f"[{host}] cannot connect: {event.get('error')}", fg="red")
    elif kind == "op":
        if not event.get("ok"):
            click.secho(f"[{host}] FAILED {event['op']}", fg="red")
            for line in str(event.get("error") or "").splitlines()[-8:]:
                click.secho(f"[{host}]     {line}", fg="red")
        elif event.get("changed"):
            click.secho(f"[{host}] changed {event['op']}", fg="yellow")
        else:
            click.echo(f"[{host}] ok      {event['op']}")
    elif kind == "plan":
        word = "would change" if event.get("change") else "no change   "
        click.echo(f"[{host}] {word} {event['op']}")
    elif kind == "prepare_error":
        click.secho(f"[{host}] refused: {event.get('error')}", fg="red")
    elif kind == "run_error":
        click.secho(f"deploy stopped: {event.get('error')}", fg="red")


def _summary(result: Any) -> str:
    lines = ["", "summary:"]
    for host in result.hosts:
        if host.failed:
            lines.append(f"  {host.name}: FAILED after {host.ops} operation(s)")
        elif result.dry:
            lines.append(f"  {host.name}: {len(host.planned)} operation(s) would change")
        elif host.changed:
            lines.append(f"  {host.name}: {len(host.changed)} of {host.ops} operation(s) changed")
        else:
            lines.append(f"  {host.name}: no changes ({host.ops} operation(s))")
    return "\n".join(lines)
