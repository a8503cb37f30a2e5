"""`ollama-fleet check`: verify Ollama endpoints from an inventory or --url, as a CI gate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ollama_fleet.cli._common import (
    CONTEXT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    VaultPassword,
    command_line,
    extra_vars_option,
    limit_option,
    list_hosts_option,
    report_options,
    vault_password_option,
    write_report,
)
from ollama_fleet.cli._url_targets import (
    api_key_from_env,
    ports,
    url_only_options_given,
    url_target_options,
)
from ollama_fleet.errors import ConfigError
from ollama_fleet.values import split_names

# == checks.model.CHECK_NAMES and LATENCY_NAMES (tests/cli/test_common.py keeps them equal): the
# checks package is not imported just to build --help
CHECK_NAMES = ("connectivity", "tls", "models", "chat", "auth", "exposure")
LATENCY_NAMES = ("connect_ms", "first_byte_ms", "first_token_ms", "tokens_per_s")
_SUFFIX_FORMATS = {
    ".json": "json",
    ".xml": "junit",
    ".html": "html",
    ".htm": "html",
    ".csv": "csv",
}


# what makes a check apply, for the "nothing was checked" message
_APPLIES_WITH = {
    "tls": "an https:// URL",
    "chat": "a model (--model, or required_models / chat_model)",
    "exposure": "ports (--closed-port/--open-port, or closed_ports / open_ports)",
}


def _what_applies(selected: tuple[str, ...] | None) -> str:
    needs = [
        f"{name} needs {_APPLIES_WITH[name]}" for name in selected or () if name in _APPLIES_WITH
    ]
    return f"; {'; '.join(needs)}" if needs else ""


def _split_only(values: tuple[str, ...]) -> tuple[str, ...] | None:
    names = tuple(split_names(values))
    unknown = sorted(set(names) - set(CHECK_NAMES))
    if unknown:
        raise click.BadParameter(
            f"unknown check {unknown[0]!r}; choose from {', '.join(CHECK_NAMES)}",
            param_hint="--only",
        )
    return names or None


def _latency(values: tuple[str, ...]) -> Any:
    """--latency NAME=WARN,FAIL (repeatable) over the defaults."""
    from dataclasses import replace

    from ollama_fleet.checks.model import LatencyPolicy, Threshold

    policy = LatencyPolicy()
    for value in values:
        name, _, levels = value.partition("=")
        name = name.strip()
        if name not in LATENCY_NAMES:
            raise ConfigError(
                f"--latency {value}: unknown threshold {name!r}; one of {', '.join(LATENCY_NAMES)}"
            )
        try:
            warn, fail = (float(x) for x in levels.split(","))
        except ValueError:
            raise ConfigError(
                f"--latency {value}: expected {name}=WARN,FAIL (two numbers)"
            ) from None
        rate = name == "tokens_per_s"
        if warn <= 0 or fail <= 0 or (warn < fail if rate else warn > fail):
            order = "WARN >= FAIL" if rate else "WARN <= FAIL"
            raise ConfigError(f"--latency {value}: expected two positive numbers, {order}")
        policy = replace(policy, **{name: Threshold(warn=warn, fail=fail)})
    return policy


@click.command(context_settings=CONTEXT)
@click.argument("inventory", required=False, type=click.Path(path_type=Path))
@limit_option
@list_hosts_option
@extra_vars_option
@click.option("--url", "urls", multiple=True, help="Check this base URL (repeatable).")
@click.option(
    "--only",
    multiple=True,
    metavar="CHECKS",
    help=f"Run only these checks (repeatable or comma-separated): {', '.join(CHECK_NAMES)}.",
)
@report_options
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too, not only on failures.")
@url_target_options
@click.option(
    "--latency",
    multiple=True,
    metavar="NAME=WARN,FAIL",
    help="With --url: a latency threshold over the defaults (repeatable): connect_ms, "
    "first_byte_ms, first_token_ms (ms; WARN <= FAIL) or tokens_per_s (a minimum; "
    "WARN >= FAIL). Inventory hosts set latency_thresholds.",
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
    help="Seconds the whole run may take. Finished checks keep their results; the ones "
    "still running fail by what they were doing (connect_timeout, tls_timeout, read_timeout).",
)
@vault_password_option
def check(
    inventory: Path | None,
    limit: tuple[str, ...],
    list_hosts: bool,
    extra_vars: tuple[str, ...],
    urls: tuple[str, ...],
    only: tuple[str, ...],
    fmt: str | None,
    output: Path | None,
    strict: bool,
    models: tuple[str, ...],
    closed_ports: tuple[str, ...],
    open_ports: tuple[str, ...],
    ca_file: str | None,
    api_key_env: str | None,
    public_access: str,
    latency: tuple[str, ...],
    concurrency: int,
    timeout: float,
    deadline: float,
    vault_password_file: Path | None,
) -> None:
    """Verify connectivity, TLS, models, chat, auth and port exposure of Ollama endpoints.

    Targets come from INVENTORY (hosts with a public_url; see docs/inventory.md), from
    --url options, or both. Every check of every target runs concurrently; the report says
    for each failure what class of problem it is and what to look at. A --url target is
    checked only for what it is told: no port is probed without --closed-port/--open-port.

    Exit status: 0 all ok; 1 a check failed (or warned, with --strict); 2 usage or config
    error, or nothing was checked; 4 a target could not be reached at all (dns, refused,
    connect_timeout), as Ansible's unreachable.
    """
    import asyncio
    from dataclasses import replace

    from ollama_fleet.checks import reports
    from ollama_fleet.checks.model import (
        CheckResult,
        PublicAccess,
        RunContext,
        Status,
        unreachable_targets,
    )
    from ollama_fleet.checks.reports import use_color
    from ollama_fleet.checks.runner import plan_checks, run_checks
    from ollama_fleet.checks.settings import ProbeSettings
    from ollama_fleet.checks.targets import target_from_url, targets_from_inventory
    from ollama_fleet.hostpatterns import host_list, select_hosts
    from ollama_fleet.redact import escaped_forms, redactor

    if inventory is None and not urls:
        raise click.UsageError("give an INVENTORY, or at least one --url")
    given = url_only_options_given()
    if given and not urls:
        raise ConfigError(
            f"{', '.join(given)}: only for --url targets; for inventory hosts set the "
            "variable instead (required_models, closed_ports, open_ports, tls_ca_file, "
            "api_key, public_access, latency_thresholds), in the inventory or with -e"
        )
    if inventory is None and (limit or list_hosts or extra_vars):
        raise click.UsageError("--limit, --list-hosts and -e select from an INVENTORY; give one")
    if urls and not inventory and list_hosts:
        raise click.UsageError("--list-hosts lists inventory hosts")
    selected = _split_only(only)
    api_key = api_key_from_env(api_key_env)
    loaded = (
        VaultPassword(vault_password_file).load(inventory, extra_vars=extra_vars)
        if inventory
        else None
    )
    targets = []
    if loaded is not None:
        hosts = select_hosts(loaded, limit)
        chosen = {h.name for h in hosts}
        targets = [t for t in targets_from_inventory(loaded) if t.name in chosen]
        checked = {t.name for t in targets}
        skipped = [h.name for h in hosts if h.name not in checked]
        if list_hosts:
            click.echo(host_list([h for h in hosts if h.name in checked]))
        if skipped:
            click.echo(f"not checked (no public_url): {', '.join(skipped)}", err=True)
        if list_hosts:
            return
    # a vault value (a key, a webhook URL) never reaches a report, whatever a server echoes
    redact = redactor(escaped_forms(loaded.secrets if loaded else ()))
    seen = {t.name for t in targets}
    closed, opened = ports(closed_ports, "--closed-port"), ports(open_ports, "--open-port")
    policy = _latency(latency)
    for url in dict.fromkeys(urls):
        target = target_from_url(
            url,
            ca_file=ca_file,
            required_models=models,
            api_key=api_key,
            public_access=PublicAccess(public_access),
            closed_ports=closed,
            open_ports=opened,
            latency=policy,
        )
        if target.name in seen:
            raise ConfigError(f"--url {url}: target {target.name!r} is listed twice")
        seen.add(target.name)
        targets.append(target)
    settings = ProbeSettings(concurrency=concurrency, check_timeout_s=timeout, deadline_s=deadline)
    if output is not None and fmt is None:
        fmt = _SUFFIX_FORMATS.get(output.suffix.lower(), "text")
    fmt = fmt or "text"

    total = sum(len(plan_checks(target, selected)) for target in targets)
    if total == 0:
        why = (
            "no target: the inventory's selected hosts have no public_url"
            if not targets
            else f"no check applies: {', '.join(selected or ())} "
            f"does not apply to {', '.join(t.url for t in targets)}{_what_applies(selected)}"
        )
        click.echo(f"Error: nothing was checked ({why})", err=True)
        sys.exit(EXIT_USAGE)
    progress_out = sys.stderr
    show_progress = progress_out.isatty()
    finished = 0

    def progress(result: CheckResult) -> None:
        nonlocal finished
        finished += 1
        if show_progress:
            line = f"\r[{finished}/{total}] {result.target}/{result.check}: {result.status}"
            progress_out.write(line[:79].ljust(79))
            progress_out.flush()

    click.echo(f"checking {len(targets)} target(s), {total} check(s)...", err=True)
    try:
        run = asyncio.run(run_checks(targets, settings=settings, only=selected, progress=progress))
    except KeyboardInterrupt:
        raise click.Abort() from None
    if show_progress:
        progress_out.write("\r" + " " * 79 + "\r")
    context = RunContext.here(
        command=redact(command_line()), inventory=str(inventory) if inventory else ""
    )
    run = replace(run, context=context)
    color = use_color(sys.stdout)
    if output is not None:
        write_report(output, redact(reports.render(run, fmt)))
        click.echo(redact(reports.render(run, "text", color=color)), nl=False)
        click.echo(f"{fmt} report written to {output}")
    else:
        click.echo(redact(reports.render(run, fmt, color=color and fmt == "text")), nl=False)
    unreachable = unreachable_targets(run.results)  # exit 4, as Ansible's unreachable
    if unreachable:
        click.echo(f"unreachable: {', '.join(unreachable)}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    failed = run.status is Status.FAIL or (strict and run.status is Status.WARN)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)
