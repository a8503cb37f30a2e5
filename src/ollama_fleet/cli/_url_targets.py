"""The options that describe a --url target, shared by `check` and `diagnose`.

An inventory host has a variable for each of them (required_models, closed_ports, ...); a URL
on the command line gets them as options. Only click and the standard library at import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ollama_fleet.errors import ConfigError
from ollama_fleet.values import split_names

F = TypeVar("F", bound=Callable[..., Any])

# (parameter name, flag) of the options that mean nothing without a --url
URL_ONLY = (
    ("models", "--model"),
    ("closed_ports", "--closed-port"),
    ("open_ports", "--open-port"),
    ("ca_file", "--ca-file"),
    ("api_key_env", "--api-key-env"),
    ("public_access", "--public-access"),
    ("latency", "--latency"),
)


def url_target_options(fn: F) -> F:
    """--model, --closed-port, --open-port, --ca-file, --api-key-env, --public-access."""
    for option in reversed(
        (
            click.option(
                "--model", "models", multiple=True, help="With --url: a model that must be present."
            ),
            click.option(
                "--closed-port",
                "closed_ports",
                multiple=True,
                metavar="PORT",
                help="With --url: a port of the URL's host that must not accept connections "
                "from here (repeatable or comma-separated; e.g. 11434 behind a proxy). None by "
                "default.",
            ),
            click.option(
                "--open-port",
                "open_ports",
                multiple=True,
                metavar="PORT",
                help="With --url: a port of the URL's host that must accept connections "
                "(repeatable).",
            ),
            click.option(
                "--ca-file",
                type=click.Path(exists=True, dir_okay=False),
                help="With --url: trust this CA bundle instead of the system store.",
            ),
            click.option(
                "--api-key-env",
                metavar="VAR",
                help="With --url: read the API key from environment variable VAR (never from "
                "the command line) and expect requests without it to get 401.",
            ),
            click.option(
                "--public-access",
                type=click.Choice(["closed", "open"]),
                default="closed",
                show_default=True,
                help="With --url: closed fails a URL that serves its models without a key "
                "(open_access); open reports that instead, for a host open on purpose.",
            ),
        )
    ):
        fn = option(fn)
    return fn


def url_only_options_given() -> list[str]:
    """The --url-only options on the command line: without a --url they would do nothing."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return [
        flag
        for name, flag in URL_ONLY
        if name in ctx.params and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]


def ports(values: Sequence[str], option: str) -> tuple[int, ...]:
    from ollama_fleet.values import parse_port

    return tuple(dict.fromkeys(parse_port(v, where=f"{option} {v}") for v in split_names(values)))


def api_key_from_env(variable: str | None) -> str | None:
    """The key in environment variable `variable` (never an option: shell history)."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise ConfigError(f"--api-key-env: environment variable {variable} is not set")
    return key
