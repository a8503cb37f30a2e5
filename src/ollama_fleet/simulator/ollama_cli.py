"""`ollama` with Ollama's command-line shape, backed by the simulator: a TEST DOUBLE, not Ollama.

The lab installs this as /usr/local/bin/ollama (inside the simulator artifact, see artifact.py)
because the real binary cannot be downloaded on the build machines. It understands what the
deploy uses: `serve` (OLLAMA_HOST, OLLAMA_MODELS), `--version`, `pull`, `list` and `rm`.
Only the standard library is used for the client side, so it runs on any Python 3.11 host.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

VERSION = "0.12.0-simulator"
DEFAULT_HOST = "127.0.0.1:11434"
LABEL = "ollama-fleet simulator: a test double of Ollama's API, not Ollama"


def host_and_port(value: str | None) -> tuple[str, int]:
    """OLLAMA_HOST as Ollama reads it: "host", ":port", "host:port" or a URL."""
    text = (value or DEFAULT_HOST).strip()
    for scheme in ("http://", "https://"):
        text = text.removeprefix(scheme)
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "11434"
    return (host.strip("[]") or "127.0.0.1"), int(port or 11434)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_url() -> str:
    host, port = host_and_port(os.environ.get("OLLAMA_HOST"))
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _request(
    method: str, path: str, body: dict[str, object] | None = None
) -> urllib.request.Request:
    data = None if body is None else json.dumps(body).encode()
    return urllib.request.Request(
        _base_url() + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )


def serve() -> int:
    from ollama_fleet.errors import ConfigError
    from ollama_fleet.simulator.config import KNOWN_NAMES, SimulatorConfig
    from ollama_fleet.simulator.server import listen, serve_socket

    host, port = host_and_port(os.environ.get("OLLAMA_HOST"))
    home = Path(os.environ.get("HOME", "/usr/share/ollama"))
    models_dir = Path(os.environ.get("OLLAMA_MODELS") or home / ".ollama" / "models")
    config = SimulatorConfig(
        models=(),
        pullable=KNOWN_NAMES,
        loopback_only_hosts=_is_loopback(host),
        models_dir=models_dir,
    )
    try:
        sock = listen(host, port)
    except ConfigError as exc:  # one line, as Ollama's "Error: listen tcp ...: bind: ..."
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"{LABEL}; models in {models_dir}", file=sys.stderr, flush=True)
    serve_socket(config, sock)
    return 0


def pull(name: str) -> int:
    try:
        with urllib.request.urlopen(_request("POST", "/api/pull", {"model": name})) as answer:
            for raw in answer:
                line = json.loads(raw)
                if "error" in line:
                    print(f"Error: {line['error']}", file=sys.stderr)
                    return 1
                status = line.get("status", "")
                done = f" {line['completed']}/{line['total']}" if "total" in line else ""
                print(f"{status}{done}", flush=True)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def list_models() -> int:
    try:
        with urllib.request.urlopen(_request("GET", "/api/tags")) as answer:
            models = json.load(answer)["models"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"{'NAME':<40}{'ID':<16}{'SIZE':<12}MODIFIED")
    for model in models:
        size = f"{model['size'] / 1e9:.1f} GB"
        print(f"{model['name']:<40}{model['digest'][:12]:<16}{size:<12}{model['modified_at']}")
    return 0


def remove(name: str) -> int:
    try:
        urllib.request.urlopen(_request("DELETE", "/api/delete", {"model": name})).close()
    except urllib.error.HTTPError as exc:
        print(f"Error: {json.loads(exc.read() or b'{}').get('error', exc)}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"deleted '{name}'")
    return 0


USAGE = f"""{LABEL}

Usage: ollama serve | pull MODEL | list | rm MODEL | --version
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-v"], ["version"]):
        print(f"ollama version is {VERSION}")
        return 0
    match args:
        case ["serve"]:
            return serve()
        case ["pull", name]:
            return pull(name)
        case ["list"] | ["ls"]:
            return list_models()
        case ["rm", name]:
            return remove(name)
    print(USAGE, file=sys.stderr)
    return 2
