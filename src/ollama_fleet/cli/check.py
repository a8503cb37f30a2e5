"""`ollama-fleet check`: verify Ollama endpoints from an inventory or --url, as a CI gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ollama_fleet.checks.model import CHECK_NAMES
from ollama_fleet.cli._common import (
    CONTEXT,
    EXIT_FAILED,
    EXIT_OK,
    VaultPassword,
    report_options,
    write_report,
)
from ollama_fleet.errors import ConfigError

_SUFFIX_FORMATS = {".json": "json", ".xml": "junit", ".html": "html", ".htm": "html"}


def _split_only(values: tuple[str, ...]) -> tuple[str, ...] | None:
    names = tuple(n.strip() for v in values for n in v.split(",") if n.strip())
    unknown = sorted(set(names) - set(CHECK_NAMES))
    if unknown:
        raise click.BadParameter(
            f"unknown check {unknown[0]!r}; choose from {', '.join(CHECK_NAMES)}",
            param_hint="--only",
        )
    return names or None


@click.command(context_settings=CONTEXT)
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
    loaded = VaultPassword(vault_password_file).load(inventory) if inventory else None
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
        write_report(output, redact(reports.render(run, fmt)))
        click.echo(redact(reports.render(run, "text", color=color)), nl=False)
        click.echo(f"{fmt} report written to {output}")
    else:
        click.echo(redact(reports.render(run, fmt, color=color and fmt == "text")), nl=False)
    failed = run.status is Status.FAIL or (strict and run.status is Status.WARN)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)
