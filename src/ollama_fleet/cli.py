"""The `ollama-fleet` command line: a thin click layer over the library.

Exit codes: 0 all ok, 1 a check failed (or warned, with --strict), 2 usage or config error.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ollama_fleet import __version__
from ollama_fleet.checks.model import CHECK_NAMES
from ollama_fleet.checks.reports import FORMATS
from ollama_fleet.errors import ConfigError, FleetError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_SUFFIX_FORMATS = {".json": "json", ".xml": "junit", ".html": "html", ".htm": "html"}


class FleetCommandError(click.ClickException):
    """A FleetError shown as one line, exit status 1."""

    exit_code = EXIT_FAILED


class FleetConfigError(FleetCommandError):
    """A ConfigError shown as one line, exit status 2 like a usage error."""

    exit_code = EXIT_USAGE


def fleet_errors(fn: F) -> F:
    """Turn the library's errors into one-line messages instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as error:
            raise FleetConfigError(str(error)) from None
        except FleetError as error:
            raise FleetCommandError(str(error)) from None

    return wrapper  # type: ignore[return-value]


def report_options(fn: F) -> F:
    """--format and --output, shared by every command that writes a report."""
    fn = click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the report to FILE (atomically). The terminal still gets the text "
        "summary. Without --format, the format follows the suffix (.json .xml .html).",
    )(fn)
    fn = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Report format: text (default), json, junit (JUnit XML) or html.",
    )(fn)
    return fn


def write_atomically(path: Path, text: str) -> None:
    """Write next to the target, then rename: a reader never sees half a report."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the report: {exc.strerror}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ollama-fleet")
def main() -> None:
    """Provision, verify and diagnose fleets of Ollama servers.

    \b
    Converge hosts:     ollama-fleet deploy inventories/production.yml
    What would change:  ollama-fleet deploy inventories/production.yml --dry --diff
    A local VM:         ollama-fleet lab up && ollama-fleet deploy inventories/lab.yml -y
    Secrets:            ollama-fleet vault encrypt-string NAME
    Verify endpoints:   ollama-fleet check inventories/production.yml
    CI gate:            ollama-fleet check INVENTORY -o checks.xml
    One URL:            ollama-fleet check --url https://gpu-1.example.com --model llama3.2:1b
    Try it locally:     ollama-fleet demo
    """


def _split_only(values: tuple[str, ...]) -> tuple[str, ...] | None:
    names = tuple(n.strip() for v in values for n in v.split(",") if n.strip())
    unknown = sorted(set(names) - set(CHECK_NAMES))
    if unknown:
        raise click.BadParameter(
            f"unknown check {unknown[0]!r}; choose from {', '.join(CHECK_NAMES)}",
            param_hint="--only",
        )
    return names or None


@main.command()
@click.argument("inventory", required=False, type=click.Path(path_type=Path))
@click.option("--url", "urls", multiple=True, help="Check this base URL (repeatable).")
@click.option(
    "--only",
    multiple=True,
    metavar="CHECKS",
    help=f"Run only these checks (repeatable or comma-separated): {', '.join(CHECK_NAMES)}.",
)
@report_options
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too, not only on failures.")
@click.option("--model", "models", multiple=True, help="With --url: a model that must be present.")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="With --url: trust this CA bundle instead of the system store.",
)
@click.option(
    "--api-key-env",
    metavar="VAR",
    help="With --url: read the API key from environment variable VAR (never from the "
    "command line) and expect requests without it to get 401.",
)
@click.option(
    "--public-access",
    type=click.Choice(["closed", "open"]),
    default="closed",
    show_default=True,
    help="With --url: closed fails a URL that serves its models without a key (open_access); "
    "open reports that instead, for a host open on purpose.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=32,
    show_default=True,
    help="Targets checked at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    help="Seconds one check on one target may take.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(0.1),
    default=120.0,
    show_default=True,
    help="Seconds the whole run may take; unfinished checks fail as read_timeout.",
)
@click.option(
    "--vault-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="For an inventory with vault data: read the password from FILE "
    "(else $OLLAMA_FLEET_VAULT_PASSWORD, else a prompt).",
)
@fleet_errors
def check(
    inventory: Path | None,
    urls: tuple[str, ...],
    only: tuple[str, ...],
    fmt: str | None,
    output: Path | None,
    strict: bool,
    models: tuple[str, ...],
    ca_file: str | None,
    api_key_env: str | None,
    public_access: str,
    concurrency: int,
    timeout: float,
    deadline: float,
    vault_password_file: Path | None,
) -> None:
    """Verify connectivity, TLS, models, chat, auth and port exposure of Ollama endpoints.

    Targets come from INVENTORY (hosts with a public_url; see docs/inventory.md), from
    --url options, or both. Every check of every target runs concurrently; the report says
    for each failure what class of problem it is and what to look at.

    Exit status: 0 all ok, 1 a check failed (or warned, with --strict), 2 usage or
    config error.
    """
    import asyncio
    import os

    from ollama_fleet.checks import reports
    from ollama_fleet.checks.model import CheckResult, PublicAccess, Status
    from ollama_fleet.checks.runner import plan_checks, run_checks
    from ollama_fleet.checks.settings import ProbeSettings
    from ollama_fleet.checks.targets import target_from_url, targets_from_inventory
    from ollama_fleet.redact import escaped_forms, redactor

    if inventory is None and not urls:
        raise click.UsageError("give an INVENTORY, or at least one --url")
    selected = _split_only(only)
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env: environment variable {api_key_env} is not set")
    loaded = _VaultPassword(vault_password_file).load(inventory) if inventory else None
    targets = list(targets_from_inventory(loaded)) if loaded else []
    # a vault value (a key, a webhook URL) never reaches a report, whatever a server echoes
    redact = redactor(escaped_forms(loaded.secrets if loaded else ()))
    seen = {t.name for t in targets}
    for url in dict.fromkeys(urls):
        target = target_from_url(
            url,
            ca_file=ca_file,
            required_models=models,
            api_key=api_key,
            public_access=PublicAccess(public_access),
        )
        if target.name in seen:
            raise ConfigError(f"--url {url}: target {target.name!r} is listed twice")
        seen.add(target.name)
        targets.append(target)
    settings = ProbeSettings(concurrency=concurrency, check_timeout_s=timeout, deadline_s=deadline)
    if output is not None and fmt is None:
        fmt = _SUFFIX_FORMATS.get(output.suffix.lower(), "text")
    fmt = fmt or "text"

    progress_out = sys.stderr
    show_progress = progress_out.isatty()
    total = sum(len(plan_checks(target, selected)) for target in targets)
    finished = 0

    def progress(result: CheckResult) -> None:
        nonlocal finished
        finished += 1
        if show_progress:
            line = f"\r[{finished}/{total}] {result.target}/{result.check}: {result.status}"
            progress_out.write(line[:79].ljust(79))
            progress_out.flush()

    click.echo(f"checking {len(targets)} target(s), {total} checks...", err=True)
    try:
        run = asyncio.run(run_checks(targets, settings=settings, only=selected, progress=progress))
    except KeyboardInterrupt:
        raise click.Abort() from None
    if show_progress:
        progress_out.write("\r" + " " * 79 + "\r")
    color = sys.stdout.isatty()
    if output is not None:
        write_atomically(output, redact(reports.render(run, fmt)))
        click.echo(redact(reports.render(run, "text", color=color)), nl=False)
        click.echo(f"{fmt} report written to {output}")
    else:
        click.echo(redact(reports.render(run, fmt, color=color and fmt == "text")), nl=False)
    failed = run.status is Status.FAIL or (strict and run.status is Status.WARN)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=11434,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A model the simulator has (repeatable); default: a small built-in set.",
)
@click.option(
    "--tokens-per-second",
    type=click.FloatRange(0),
    default=200.0,
    show_default=True,
    help="Pace of streamed tokens; 0 streams as fast as possible.",
)
@fleet_errors
def simulator(host: str, port: int, models: tuple[str, ...], tokens_per_second: float) -> None:
    """Serve the Ollama API simulator: a TEST DOUBLE of Ollama's HTTP API, not Ollama.

    It answers /api/tags, /api/chat, /api/pull, /v1/chat/completions and the rest with
    made-up but well-formed data, for tests of clients, proxies and these checks. Faults
    (latency, error codes, broken streams) are set at runtime with PUT /_simulator/faults;
    see docs/simulator.md.
    """
    from ollama_fleet.simulator import SimulatorConfig, serve
    from ollama_fleet.simulator.config import model_from_name

    config = SimulatorConfig(tokens_per_second=tokens_per_second)
    if models:
        config = SimulatorConfig(
            tokens_per_second=tokens_per_second,
            models=tuple(model_from_name(name) for name in models),
        )
    serve(config, host=host, port=port)


@main.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/demo"),
    show_default=True,
    help="Where the certificates, Caddyfile, logs and the report go.",
)
@fleet_errors
def demo(workdir: Path) -> None:
    """Run the checks against a local testbed and write an HTML report.

    Starts the Ollama API simulator (a test double: the real Ollama binary is not used)
    behind a real Caddy with TLS from a private CA, all on 127.0.0.1, then checks it like
    a production host and writes WORKDIR/report.html.
    """
    from ollama_fleet.demo import run_demo

    report = run_demo(workdir=workdir.resolve(), echo=click.echo)
    click.echo(f"HTML report: {report}")


@main.command()
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
@fleet_errors
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
    from ollama_fleet import deploy as fleet_deploy
    from ollama_fleet.redact import redactor
    from ollama_fleet.vault import decrypt_text, is_encrypted

    password = _VaultPassword(vault_password_file)
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


class _VaultPassword:
    """The vault password, asked for (or read) at most once per command, and only if needed."""

    def __init__(self, file: Path | None) -> None:
        from ollama_fleet.vault import PasswordSource

        self.source = PasswordSource(file=file)
        self.password: Any = None

    def get(self) -> Any:
        from ollama_fleet.vault import read_password

        if self.password is None:
            self.password = read_password(self.source)
        return self.password

    def load(self, path: Path) -> Any:
        """The inventory at `path`, its vault data opened with the password."""
        from ollama_fleet.inventory import load_inventory
        from ollama_fleet.vault import holds_vault_data, is_encrypted

        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return load_inventory(path)  # it says what is wrong with the file
        if is_encrypted(text) or holds_vault_data(text, where=str(path)):
            return load_inventory(path, vault=self.get())
        return load_inventory(path)


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


def _register() -> None:
    from ollama_fleet.lab_cli import lab
    from ollama_fleet.vault_cli import vault

    main.add_command(vault)
    main.add_command(lab)


_register()
