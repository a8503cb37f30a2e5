"""`ollama-fleet diagnose`: what is wrong with each host, from outside and inside, and the fix."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ollama_fleet.cli._common import (
    CONTEXT,
    EXIT_FAILED,
    EXIT_OK,
    VaultPassword,
    command_line,
    extra_vars_option,
    limit_option,
    list_hosts_option,
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

# == diagnose.reports.FORMATS (tests/cli/test_diagnose.py keeps them equal): the report
# modules are not imported just to build --help
FORMATS = ("text", "html", "md", "json")
_SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".json": "json"}


@click.command(context_settings=CONTEXT)
@click.argument("inventory", required=False, type=click.Path(path_type=Path))
@limit_option
@list_hosts_option
@extra_vars_option
@click.option(
    "--url",
    "urls",
    multiple=True,
    help="Diagnose this base URL from outside only (repeatable): the checks, no SSH; the "
    "options marked 'With --url' say what must be true of it.",
)
@url_target_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE (atomically): .html (self-contained, findings first), "
    ".md (pasteable into an issue) or .json (docs/diagnose-report.md). The terminal still "
    "gets the findings.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Report format for -o (default: from its suffix) or for the terminal (text).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    help="Seconds one outside check may take.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show pyinfra's SSH log.")
@vault_password_option
def diagnose(
    inventory: Path | None,
    limit: tuple[str, ...],
    list_hosts: bool,
    extra_vars: tuple[str, ...],
    urls: tuple[str, ...],
    models: tuple[str, ...],
    closed_ports: tuple[str, ...],
    open_ports: tuple[str, ...],
    ca_file: str | None,
    api_key_env: str | None,
    public_access: str,
    output: Path | None,
    fmt: str | None,
    timeout: float,
    verbose: bool,
    vault_password_file: Path | None,
) -> None:
    """Say what is wrong with Ollama hosts and how to fix it. Read-only: changes nothing.

    For each host of INVENTORY (--limit picks some), at once: the checks from outside
    (connectivity, TLS, models, chat, auth, exposure, for hosts with a public_url) and the
    facts from inside over SSH (units and their journals, sockets against the nftables
    ruleset, Ollama's API on loopback, the models directory, the GPU and its driver, Caddy's
    config and certificates, the clock, DNS). Rules join the two into findings, each with its
    evidence, the likely cause and a fix command (docs/diagnose.md lists the rules). A host
    this project never deployed is diagnosed too; a missing tool is a finding.

    --url URL diagnoses an endpoint from outside only.

    Exit status: 0 no finding above info; 1 findings; 2 usage or inventory error.
    """
    from dataclasses import replace

    from ollama_fleet.checks.model import PublicAccess, RunContext
    from ollama_fleet.checks.settings import ProbeSettings
    from ollama_fleet.checks.targets import target_from_url, targets_from_inventory
    from ollama_fleet.controller.probe import probe_hosts
    from ollama_fleet.diagnose import reports
    from ollama_fleet.diagnose.redaction import redact_records
    from ollama_fleet.diagnose.run import diagnose as run_diagnosis
    from ollama_fleet.diagnose.subjects import Subject, inventory_subjects, url_subjects
    from ollama_fleet.hostpatterns import host_list, select_hosts
    from ollama_fleet.redact import escaped_forms, redactor

    if inventory is None and not urls:
        raise click.UsageError("give an INVENTORY, or at least one --url")
    if inventory is None and (limit or list_hosts or extra_vars):
        raise click.UsageError("--limit, --list-hosts and -e select from an INVENTORY; give one")
    given = url_only_options_given()
    if given and not urls:
        raise ConfigError(
            f"{', '.join(given)}: only for --url targets; for inventory hosts set the variable "
            "instead (required_models, closed_ports, open_ports, tls_ca_file, api_key, "
            "public_access), in the inventory or with -e"
        )
    if output is not None and fmt is None:
        fmt = _SUFFIX_FORMATS.get(output.suffix.lower())
        if fmt is None:
            raise click.BadParameter(
                f"{output}: cannot tell the format from the suffix; use .html, .md or .json, "
                "or --format",
                param_hint="-o",
            )
    if output is not None:
        _writable(output)
    subjects: list[Subject] = []
    secrets: frozenset[str] = frozenset()
    hosts: list[Any] = []
    if inventory is not None:
        loaded = VaultPassword(vault_password_file).load(inventory, extra_vars=extra_vars)
        secrets = loaded.secrets
        hosts = list(select_hosts(loaded, limit))
        if list_hosts:
            click.echo(host_list(hosts))
            return
        targets = (
            targets_from_inventory(loaded) if any(h.vars.get("public_url") for h in hosts) else ()
        )
        deploy_args = (
            ("--vault-password-file", str(vault_password_file)) if vault_password_file else ()
        )
        subjects = inventory_subjects(
            loaded, hosts, targets, shown_path=str(inventory), deploy_args=deploy_args
        )
    seen = {s.name for s in subjects}
    api_key = api_key_from_env(api_key_env)
    closed, opened = ports(closed_ports, "--closed-port"), ports(open_ports, "--open-port")
    for url in dict.fromkeys(urls):
        target = target_from_url(
            url,
            ca_file=ca_file,
            required_models=models,
            api_key=api_key,
            public_access=PublicAccess(public_access),
            closed_ports=closed,
            open_ports=opened,
        )
        if target.name in seen:
            raise ConfigError(f"--url {target.url}: {target.name!r} is listed twice")
        seen.add(target.name)
        subjects.extend(url_subjects([target]))
    redact = redactor(escaped_forms({*secrets, *([api_key] if api_key else [])}))

    def read_inside(scripts: Any) -> Any:
        return probe_hosts(hosts, scripts, secrets=secrets, verbose=verbose)

    def progress(line: str) -> None:
        click.echo(line, err=True)

    click.echo(
        f"diagnosing {len(subjects)} host(s): outside checks"
        + (" and inside facts over SSH" if hosts else "")
        + " (read-only)...",
        err=True,
    )
    try:
        result = run_diagnosis(
            subjects,
            read_inside=read_inside if hosts else None,
            settings=ProbeSettings(check_timeout_s=timeout),
            progress=progress,
            redact=redact,
        )
    except KeyboardInterrupt:
        raise click.Abort() from None
    context = RunContext.here(
        command=redact(command_line()), inventory=str(inventory) if inventory else ""
    )
    result = redact_records(replace(result, context=context), redact)
    if output is not None and fmt is not None:
        write_report(output, redact(reports.render(result, fmt)))
        click.echo(redact(reports.render(result, "text")), nl=False)
        click.echo(f"{fmt} report written to {output}")
    else:
        click.echo(redact(reports.render(result, fmt or "text")), nl=False)
    sys.exit(EXIT_FAILED if result.problems else EXIT_OK)


def _writable(output: Path) -> None:
    """Refuse an -o that cannot be written before any host is contacted, not after."""
    import os

    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"-o {output}: no such directory {str(folder)!r}")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"-o {output}: cannot write in {str(folder)!r}")
    if output.is_dir():
        raise ConfigError(f"-o {output}: is a directory")
