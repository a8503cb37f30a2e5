"""`ollama-fleet loadtest`: n chat requests against one URL, c in flight, and their numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ollama_fleet.cli._common import (
    CONTEXT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    write_report,
)

# == loadtest.reports.FORMATS and loadtest.model's defaults (tests/cli/test_loadtest.py keeps
# them equal): the load test's package (httpx) is not imported just to build --help
FORMATS = ("text", "json", "html")
DEFAULT_REQUESTS = 200
DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_TOKENS = 64
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_PROMPT = "Write one sentence about the sea."
API_KEY_VARIABLE = "OLLAMA_FLEET_API_KEY"
_SUFFIX_FORMATS = {".json": "json", ".html": "html", ".htm": "html"}


@click.command(context_settings=CONTEXT)
@click.argument("url")
@click.option("--model", required=True, help="The model to chat with (e.g. llama3.2:1b).")
@click.option(
    "-n",
    "--requests",
    type=click.IntRange(1),
    default=DEFAULT_REQUESTS,
    show_default=True,
    help="How many chat requests to send.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="How many requests are in flight at once (at most -n).",
)
@click.option(
    "--stream/--no-stream",
    default=True,
    show_default=True,
    help="Stream the answers (needed for the time to first token) or take them whole.",
)
@click.option(
    "--api",
    type=click.Choice(["ollama", "openai"]),
    default="ollama",
    show_default=True,
    help="ollama: POST /api/chat (NDJSON); openai: POST /v1/chat/completions (SSE).",
)
@click.option("--prompt", default=DEFAULT_PROMPT, show_default=True, help="The user message.")
@click.option(
    "--max-tokens",
    type=click.IntRange(1),
    default=DEFAULT_MAX_TOKENS,
    show_default=True,
    help="Tokens each answer may generate (num_predict / max_tokens).",
)
@click.option(
    "--api-key-env",
    metavar="VAR",
    help=f"Read the API key (sent as a Bearer token) from environment variable VAR, never "
    f"from the command line. Without it: ${API_KEY_VARIABLE}, if set.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds one request may take, to the last byte of its answer.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Report format: text (default), json or html.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE (atomically); the terminal still gets the text. Without "
    "--format, the format follows the suffix (.json .html).",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Trust this CA bundle instead of the system store (https:// URLs).",
)
def loadtest(
    url: str,
    model: str,
    requests: int,
    concurrency: int,
    stream: bool,
    api: str,
    prompt: str,
    max_tokens: int,
    api_key_env: str | None,
    timeout: float,
    fmt: str | None,
    output: Path | None,
    ca_file: str | None,
) -> None:
    """Load an Ollama endpoint with chat requests and report latency and tokens/s.

    URL is the base URL, as for `check --url` (http://127.0.0.1:11434, or the proxy's
    https:// URL). The report gives latency p50/p95/p99/max, time to first token (streamed),
    tokens/s per request and in total, throughput, and the failures by the checks' failure
    classes (overload, model_missing, server_error, ...). See docs/loadtest.md.

    Exit status: 0 every request succeeded; 1 some failed; 2 usage error; 4 no request
    could connect at all (dns, refused, connect_timeout).
    """
    import asyncio
    import os

    from ollama_fleet.checks.reports import use_color
    from ollama_fleet.checks.targets import validate_url
    from ollama_fleet.errors import ConfigError
    from ollama_fleet.loadtest import Api, LoadSettings, render, run_loadtest, summarize
    from ollama_fleet.loadtest.progress import ProgressPrinter
    from ollama_fleet.redact import escaped_forms, redactor

    clean_url = validate_url(url, where="URL")
    if api == "openai" and clean_url.endswith("/v1"):  # the OpenAI SDKs' base URL, taken as is
        clean_url = clean_url.removesuffix("/v1")
    variable = api_key_env or API_KEY_VARIABLE
    api_key = os.environ.get(variable) or None
    if api_key_env is not None and api_key is None:
        raise ConfigError(f"--api-key-env: environment variable {api_key_env} is not set")
    settings = LoadSettings(
        url=clean_url,
        model=model,
        requests=requests,
        concurrency=concurrency,
        stream=stream,
        api=Api(api),
        prompt=prompt,
        max_tokens=max_tokens,
        timeout_s=timeout,
        ca_file=ca_file,
        api_key=api_key,
    )
    if output is not None and fmt is None:
        fmt = _SUFFIX_FORMATS.get(output.suffix.lower(), "text")
    fmt = fmt or "text"
    # whatever a server echoes, the key never reaches a report
    redact = redactor(escaped_forms([api_key] if api_key else []))

    progress = ProgressPrinter(
        sys.stderr,
        total=requests,
        terminal=sys.stderr.isatty(),
        color=use_color(sys.stderr),
    )
    click.echo(
        f"loadtest: {requests} request(s) to {clean_url}, {settings.concurrency} in flight...",
        err=True,
    )
    try:
        run = asyncio.run(run_loadtest(settings, progress=progress))
    except KeyboardInterrupt:
        raise click.Abort() from None
    finally:
        progress.finish()
    color = use_color(sys.stdout)
    if output is not None:
        write_report(output, redact(render(run, fmt)))
        click.echo(redact(render(run, "text", color=color)), nl=False)
        click.echo(f"{fmt} report written to {output}")
    else:
        click.echo(redact(render(run, fmt, color=color and fmt == "text")), nl=False)
    summary = summarize(run)
    if summary.unreachable:
        click.echo(f"unreachable: no request could connect to {clean_url}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    sys.exit(EXIT_FAILED if summary.failed else EXIT_OK)
