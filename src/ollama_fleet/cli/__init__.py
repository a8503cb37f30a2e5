"""The `ollama-fleet` command line: a thin click layer over the library.

One module per command or command group; they are imported only when run (or when
--help lists them), and each imports its heavy parts inside the command.

Exit codes: 0 all ok; 1 a check or a host failed (or warned, with --strict); 2 usage or
config error, or nothing was checked; 4 a host could not be reached.
"""

from __future__ import annotations

import click

from ollama_fleet import __version__
from ollama_fleet.cli._common import CONTEXT, LazyGroup

COMMANDS = {
    "check": "ollama_fleet.cli.check:check",
    "diagnose": "ollama_fleet.cli.diagnose:diagnose",
    "deploy": "ollama_fleet.cli.deploy:deploy",
    "vault": "ollama_fleet.cli.vault:vault",
    "lab": "ollama_fleet.cli.lab:lab",
    "simulator": "ollama_fleet.cli.simulator:simulator",
    "demo": "ollama_fleet.cli.demo:demo",
    "monitor": "ollama_fleet.cli.monitor:monitor",
    "gateway": "ollama_fleet.cli.gateway:gateway",
    "loadtest": "ollama_fleet.cli.loadtest:loadtest",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="ollama-fleet")
def main() -> None:
    """Provision, verify and diagnose fleets of Ollama servers.

    \b
    Converge hosts:     ollama-fleet deploy inventories/production.yml
    What would change:  ollama-fleet deploy inventories/production.yml --check --diff
    Some hosts:         ollama-fleet deploy INVENTORY --limit 'gpu-*' --list-hosts
    A local VM:         ollama-fleet lab up && ollama-fleet deploy inventories/lab.yml -y
    Secrets:            ollama-fleet vault encrypt-string NAME
    Verify endpoints:   ollama-fleet check inventories/production.yml
    CI gate:            ollama-fleet check INVENTORY -o checks.xml
    What is wrong:      ollama-fleet diagnose INVENTORY -o report.html
    One URL:            ollama-fleet check --url https://gpu-1.example.com --model llama3.2:1b
    Watch them:         ollama-fleet monitor --config monitor.yml
    Front them:         ollama-fleet gateway --config gateway.yml
    Under load:         ollama-fleet loadtest https://gpu-1.example.com --model llama3.2:1b
    Try it locally:     ollama-fleet demo

    Exit status: 0 ok; 1 a check or host failed; 2 usage or config error, or nothing was
    checked; 4 a host could not be reached.
    """


__all__ = ["main"]
