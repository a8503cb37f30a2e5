"""`ollama-fleet gateway nodes|drain|undrain|pull|delete|usage`: the admin API from a shell.

The key comes from $OLLAMA_FLEET_GATEWAY_KEY or --key-file, never from an option (it would land
in the shell's history); every failure is one line and exit 1.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import click

from ollama_fleet.cli._common import CONTEXT, FleetCommandError, FleetConfigError

if TYPE_CHECKING:
    import httpx

F = TypeVar("F", bound=Callable[..., Any])

URL_ENV = "OLLAMA_FLEET_GATEWAY_URL"
KEY_ENV = "OLLAMA_FLEET_GATEWAY_KEY"
DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_S = 30.0  # an admin request; a pull streams without a read timeout
_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # what a key in an Authorization header may hold


def admin_options(fn: F) -> F:
    """--url, --key-file and --json, shared by every admin command."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON as it is.")(fn)
    fn = click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"Read the admin key from FILE (default: ${KEY_ENV}). There is no option for "
        "the key itself: shell history would keep it.",
    )(fn)
    return click.option(
        "--url",
        envvar=URL_ENV,
        default=DEFAULT_URL,
        show_default=True,
        help=f"The gateway's base URL (or ${URL_ENV}).",
    )(fn)


@contextmanager
def _admin(url: str, key_file: Path | None, *, read_timeout: bool = True) -> Iterator[httpx.Client]:
    """An httpx client for the admin API at `url`; connection errors become one line."""
    import httpx

    if key_file is not None:
        try:
            secret = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise FleetConfigError(f"--key-file: cannot read {key_file}: {exc}") from None
    else:
        secret = os.environ.get(KEY_ENV, "").strip()
    if not secret:
        raise FleetConfigError(f"no admin key: set ${KEY_ENV} or pass --key-file FILE")
    if not _PRINTABLE.fullmatch(secret):
        raise FleetConfigError("the admin key holds a blank or a character that is not ASCII")
    if not re.match(r"https?://[^/\s]", url):
        raise FleetConfigError(f"--url: {url!r} is not an http(s) URL")
    timeout = httpx.Timeout(TIMEOUT_S, read=TIMEOUT_S if read_timeout else None)
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout) as client:
            yield client
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise FleetCommandError(f"cannot reach the gateway at {url}: {reason}") from None


def _check(response: httpx.Response) -> None:
    """A 4xx or 5xx as one line: the request, the status and the gateway's message."""
    if response.is_success:
        return
    try:
        message = response.json().get("error")
    except (ValueError, AttributeError):
        message = None
    message = " ".join(str(message or response.text[:200] or response.reason_phrase).split())
    hint = " (the key must have role admin)" if response.status_code == 403 else ""
    request = f"{response.request.method} {response.request.url}"
    raise FleetCommandError(f"{request}: {response.status_code}: {message}{hint}")


def _call(client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = client.request(method, path, json=body)
    _check(response)
    return _json(response.text, f"{method} {response.request.url}")


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise FleetCommandError(f"{where}: the answer is not JSON: is this the gateway?") from None


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    lines = ("  ".join(map(str.ljust, row, widths)).rstrip() for row in (headers, *rows))
    return "\n".join(lines)


def _echo(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text(data))


def _node_row(node: Mapping[str, Any]) -> list[str]:
    state = "draining" if node["draining"] else "healthy" if node["healthy"] else "down"
    return [
        *(node["name"], node["url"], state, node["breaker"]),
        *(f"{node['in_flight']}/{node['max_parallel']}", f"{node['queued']}/{node['queue']}"),
        *(str(len(node["models"])), ", ".join(node["loaded"]) or "-", node["last_error"] or "-"),
    ]


@click.command(context_settings=CONTEXT)
@admin_options
def nodes(url: str, key_file: Path | None, as_json: bool) -> None:
    """Show each node: health, breaker, drain, busy slots, queue, models and loaded ones."""
    with _admin(url, key_file) as client:
        data = _call(client, "GET", "/admin/nodes")
    headers = ("NODE", "URL", "STATE", "BREAKER", "BUSY", "QUEUED", "MODELS", "LOADED", "ERROR")
    _echo(data, as_json, lambda d: _table(headers, [_node_row(n) for n in d["nodes"]]))


def _drain_command(name: str, help_text: str, done: str) -> click.Command:
    """`drain` and `undrain`: one POST to /admin/nodes/NODE/<name>."""

    @click.command(name, context_settings=CONTEXT, help=help_text)
    @click.argument("node")
    @admin_options
    def command(node: str, url: str, key_file: Path | None, as_json: bool) -> None:
        with _admin(url, key_file) as client:
            data = _call(client, "POST", f"/admin/nodes/{quote(node, safe='')}/{name}")
        _echo(data, as_json, lambda _: f"{node}: {done}")

    return command


drain = _drain_command("drain", "Send NODE no new requests; those in flight finish.", "draining")
undrain = _drain_command("undrain", "Send NODE requests again after a `drain`.", "in service")


def node_option(fn: F) -> F:
    return click.option(
        "--node",
        "node_names",
        multiple=True,
        metavar="NODE",
        help="Only on this node (repeatable). Default: every node.",
    )(fn)


def _target(model: str, node_names: tuple[str, ...]) -> dict[str, Any]:
    return {"model": model, **({"nodes": list(node_names)} if node_names else {})}


@click.command(context_settings=CONTEXT)
@click.argument("model")
@node_option
@admin_options
def pull(
    model: str, node_names: tuple[str, ...], url: str, key_file: Path | None, as_json: bool
) -> None:
    """Pull MODEL onto the nodes, printing each node's progress as it changes.

    One line per node each time its status changes (`gpu-1: pulling manifest`); exit 1
    if any node reports an error. --json prints the API's progress lines as they come.
    """
    with _admin(url, key_file, read_timeout=False) as client:
        request = client.build_request("POST", "/admin/pull", json=_target(model, node_names))
        response = client.send(request, stream=True)
        try:
            failed = _progress(response, as_json=as_json)
        finally:
            response.close()
    if failed:
        raise FleetCommandError(f"pull of {model} failed on {', '.join(failed)}")


def _progress(response: httpx.Response, *, as_json: bool) -> list[str]:
    """Print the pull's progress, a line per node when its status changes; the failed nodes."""
    if not response.is_success:
        response.read()
        _check(response)
    last: dict[str, str] = {}
    failed: list[str] = []
    for line in filter(str.strip, response.iter_lines()):
        item = _json(line, f"POST {response.request.url}")
        node, error = str(item.get("node", "?")), item.get("error")
        if error or (item.get("done") and not item.get("ok")):
            failed.extend([] if node in failed else [node])
        if as_json:
            click.echo(line)
            continue
        status = f"error: {error}" if error else item.get("status")
        if status is not None and last.get(node) != status:  # a summary line has none
            click.echo(f"{node}: {status}")
            last[node] = status
    return failed


@click.command(context_settings=CONTEXT)
@click.argument("model")
@node_option
@admin_options
def delete(
    model: str, node_names: tuple[str, ...], url: str, key_file: Path | None, as_json: bool
) -> None:
    """Delete MODEL from the nodes; exit 1 if a node could not delete it."""
    with _admin(url, key_file) as client:
        data = _call(client, "DELETE", "/admin/models", _target(model, node_names))
    results = _by_node(data.get("nodes", []) if isinstance(data, Mapping) else [])
    _echo(data, as_json, lambda _: "\n".join(_deleted(model, r) for r in results) or model)
    failed = [str(r.get("node")) for r in results if r.get("error")]
    if failed:
        raise FleetCommandError(f"delete of {model} failed on {', '.join(failed)}")


def _by_node(results: Any) -> list[Mapping[str, Any]]:
    """Per-node results as a list of {"node", "error"?}: also from {node: "deleted" | error}."""
    if not isinstance(results, Mapping):
        return list(results)
    return [
        {"node": n, **({} if text == "deleted" else {"error": text})} for n, text in results.items()
    ]


def _deleted(model: str, result: Mapping[str, Any]) -> str:
    error = result.get("error")
    return f"{result.get('node')}: {f'error: {error}' if error else f'{model} deleted'}"


@click.command(context_settings=CONTEXT)
@admin_options
def usage(url: str, key_file: Path | None, as_json: bool) -> None:
    """Show per key: requests, tokens in and out, and requests refused by its rate limits."""
    with _admin(url, key_file) as client:
        data = _call(client, "GET", "/admin/usage")
    fields = ("requests", "tokens_in", "tokens_out", "rate_limited")
    headers = ("KEY", "REQUESTS", "TOKENS_IN", "TOKENS_OUT", "RATE_LIMITED")
    keys = data["keys"]  # a list of {"name", ...}, or {name: {...}}
    named = keys.items() if isinstance(keys, Mapping) else ((k["name"], k) for k in keys)
    rows = [[name, *(str(k[f]) for f in fields)] for name, k in named]
    _echo(data, as_json, lambda _: _table(headers, rows))


COMMANDS = (nodes, drain, undrain, pull, delete, usage)
