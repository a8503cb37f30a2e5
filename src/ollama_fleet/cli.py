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
    concurrency: int,
    timeout: float,
    deadline: float,
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
    from ollama_fleet.checks.model import CheckResult, Status
    from ollama_fleet.checks.runner import plan_checks, run_checks
    from ollama_fleet.checks.settings import ProbeSettings
    from ollama_fleet.checks.targets import target_from_url, targets_from_inventory
    from ollama_fleet.inventory import load_inventory

    if inventory is None and not urls:
        raise click.UsageError("give an INVENTORY, or at least one --url")
    selected = _split_only(only)
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env: environment variable {api_key_env} is not set")
    targets = list(targets_from_inventory(load_inventory(inventory))) if inventory else []
    seen = {t.name for t in targets}
    for url in dict.fromkeys(urls):
        target = target_from_url(url, ca_file=ca_file, required_models=models, api_key=api_key)
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
        write_atomically(output, reports.render(run, fmt))
        click.echo(reports.render(run, "text", color=color), nl=False)
        click.echo(f"{fmt} report written to {output}")
    else:
        click.echo(reports.render(run, fmt, color=color and fmt == "text"), nl=False)
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
