"""`ollama-fleet demo`: the checks against a local testbed, with an HTML report."""

from __future__ import annotations

from pathlib import Path

import click

from ollama_fleet.cli._common import CONTEXT


@click.command(context_settings=CONTEXT)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/demo"),
    show_default=True,
    help="Where the certificates, Caddyfile, logs and the report go.",
)
def demo(workdir: Path) -> None:
    """Run the checks against a local testbed and write an HTML report.

    Starts the Ollama API simulator (a test double: the real Ollama binary is not used)
    behind a real Caddy with TLS from a private CA, all on 127.0.0.1, then checks it like
    a production host and writes WORKDIR/report.html.
    """
    from ollama_fleet.demo import run_demo

    report = run_demo(workdir=workdir.resolve(), echo=click.echo)
    click.echo(f"HTML report: {report}")
