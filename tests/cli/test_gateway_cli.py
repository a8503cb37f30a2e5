"""`ollama-fleet gateway`: --check-config, the serve wiring, keys, and the admin commands.

The admin commands run against a tiny real Starlette app under uvicorn that answers the admin
API's contract (docs/gateway.md) and refuses every other request with 404, so a command that
calls the wrong path or method fails. The service (run_gateway) is replaced by a double that
records what the command handed it and fails on a second call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import subprocess
import sys
import threading
import types
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ollama_fleet.cli import main
from ollama_fleet.cli.gateway import ROLES
from ollama_fleet.gateway.config import load_config
from ollama_fleet.gateway.keys import hash_key
from ollama_fleet.gateway.settings import Role
from ollama_fleet.inventory_errors import Problems
from ollama_fleet.inventory_yaml import VaultKeys, read_yaml
from ollama_fleet.testbed.servers import serve_in_thread
from ollama_fleet.vault import VaultPassword
from ollama_fleet.vault_edit import apply_edit, edit_view

integration = pytest.mark.integration

ADMIN = "ofk_cli-admin-secret-1a2b"
READER = "ofk_cli-reader-secret-3c4d"
HASH = hashlib.sha256(b"a key").hexdigest()
CONFIG = f"""\
listen: 127.0.0.1:8090
nodes:
  - {{name: gpu-1, url: http://127.0.0.1:11434}}
keys:
  - {{name: ops, sha256: {HASH}, role: admin}}
"""
NO_URL = {"OLLAMA_FLEET_GATEWAY_URL": None, "OLLAMA_FLEET_GATEWAY_KEY": None}


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gateway.yml").write_text(CONFIG)
    return tmp_path


def invoke(args: Sequence[str], env: Mapping[str, str | None] | None = None, **kw: Any) -> Result:
    return CliRunner().invoke(
        main, ["gateway", *args], env={**NO_URL, **(env or {})}, catch_exceptions=False, **kw
    )


def one_error(result: Result, code: int) -> str:
    """Exit `code`, no traceback, stderr exactly one `Error:` line and nothing on stdout."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.stdout == ""
    return lines[0].removeprefix("Error: ")


# -- running it --------------------------------------------------------------------------


def test_check_config_prints_one_line() -> None:
    result = invoke(["--config", "gateway.yml", "--check-config"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "gateway.yml: ok: 1 node(s) (gpu-1), 1 key(s) (1 admin), strategy least-connections; "
        "sessions in SQLite (default file); limits in memory; listen 127.0.0.1:8090"
    ]


def test_check_config_of_a_bad_file_exits_2_with_every_problem(here: Path) -> None:
    (here / "gateway.yml").write_text(
        f"nodes:\n  - {{name: a, url: http://h}}\nkeys:\n  - {{name: k, sha256: {ADMIN}}}\n"
    )
    result = invoke(["-c", "gateway.yml", "--check-config"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and ADMIN not in result.output
    assert result.stderr.splitlines()[:2] == [
        "Error: gateway.yml:2: nodes[0].url: 'http://h' has no port; write it, e.g. "
        "http://HOST:11434",
        "gateway.yml:4: keys[0].sha256: expected 64 hex digits, or sha256: and 64 hex digits "
        "(the value is not shown); a key in plain text does not belong here: hash it with "
        "`ollama-fleet gateway key hash`",
    ]


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Any]]:
    """A stand-in for gateway.service: records its calls, exits 0, and fails on a second one."""
    calls: list[tuple[Path, Any]] = []

    def run_gateway(config_path: Path, *, listen: tuple[str, int] | None = None) -> int:
        assert not calls, "run_gateway was called twice"
        calls.append((config_path, listen))
        return 0

    module = types.ModuleType("ollama_fleet.gateway.service")
    module.run_gateway = run_gateway  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ollama_fleet.gateway.service", module)
    return calls


def test_config_runs_the_gateway(service: list[tuple[Path, Any]]) -> None:
    result = invoke(["--config", "gateway.yml"])
    assert result.exit_code == 0, result.output
    assert service == [(Path("gateway.yml"), None)]


def test_listen_overrides(service: list[tuple[Path, Any]]) -> None:
    result = invoke(["--config", "gateway.yml", "--listen", "[::1]:9001"])
    assert result.exit_code == 0, result.output
    assert service == [(Path("gateway.yml"), ("::1", 9001))]


def test_a_bad_listen_is_a_usage_error(service: list[tuple[Path, Any]]) -> None:
    line = one_error(invoke(["--config", "gateway.yml", "--listen", "here"]), 2)
    assert line == "--listen: 'here' is not HOST:PORT ([IPv6]:PORT) or a port"
    assert service == []


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ([], "give --config FILE to run the gateway, or a command (see -h)"),
        (["--config", "gateway.yml", "nodes"], "takes no --config, --listen or --check-config"),
    ],
)
def test_usage_errors(args: list[str], text: str, service: list[tuple[Path, Any]]) -> None:
    result = invoke(args)
    assert result.exit_code == 2 and text in result.stderr
    assert service == []


def test_the_roles_are_the_configs_roles() -> None:
    assert tuple(role.value for role in Role) == ROLES


# -- keys --------------------------------------------------------------------------------


def blocks(text: str) -> list[list[str]]:
    """The indented YAML entries of `key new`'s stderr, each as its lines."""
    found: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("  - "):
            found.append([line])
        elif line.startswith("    ") and found:
            found[-1].append(line)
    return found


def test_key_new_prints_the_key_once_and_both_entries(here: Path) -> None:
    result = invoke(["key", "new", "alice", "--role", "readonly", "--models", "llama3*"])
    assert result.exit_code == 0, result.output
    (key,) = result.stdout.splitlines()
    assert key.startswith("ofk_") and len(key) > 40
    vault_entry, config_entry = blocks(result.stderr)
    assert vault_entry == [
        '  - name: "alice"',
        f'    key: !vault-plain "{key}"',
        "    role: readonly",
        '    models: ["llama3*"]',
    ]
    assert key not in "\n".join(config_entry)
    assert "ollama-fleet vault edit" in result.stderr
    # the gateway.yml entry, pasted under keys:, loads as that key
    (here / "gateway.yml").write_text(CONFIG + "\n".join(config_entry) + "\n")
    spec = load_config(here / "gateway.yml").keys[1]
    assert (spec.name, spec.sha256, spec.role, spec.models) == (
        "alice",
        hash_key(key),
        Role.READONLY,
        ("llama3*",),
    )


def test_key_new_vault_entry_is_encrypted_by_vault_edit(here: Path) -> None:
    result = invoke(["key", "new", "bob"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    vault_entry, _ = blocks(result.stderr)
    password = VaultPassword("cli-vault-pass")
    view = edit_view("all:\n  vars:\n    region: eu\n", password, where="inv.yml")
    pasted = "".join(f"    {line}\n" for line in vault_entry)
    edited = apply_edit(
        view, view.text + "    gateway_api_keys:\n" + pasted, password, where="inv.yml"
    )
    assert key not in edited.text and edited.added == 1
    (here / "inv.yml").write_text(edited.text)
    problems = Problems()
    document = read_yaml(here / "inv.yml", VaultKeys(password), problems, what="inventory")
    assert document is not None and document.root is not None and not problems.found
    ok, value = document.value(document.root, problems)
    assert value["all"]["vars"]["gateway_api_keys"] == [
        {"name": "bob", "key": key, "role": "user", "models": ["*"]}
    ]


def test_key_new_refuses_a_bad_name() -> None:
    assert one_error(invoke(["key", "new", "a b"]), 2) == (
        "NAME: 'a b' must be one word of printable characters"
    )


def test_key_hash_reads_stdin() -> None:
    result = invoke(["key", "hash"], input=f"{ADMIN}\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"sha256:{hashlib.sha256(ADMIN.encode()).hexdigest()}\n"
    assert ADMIN not in result.stderr


def test_key_hash_of_nothing_is_refused() -> None:
    assert one_error(invoke(["key", "hash"], input="\n"), 2) == "no key on stdin"


# -- the admin API: a double of the gateway's /admin routes --------------------------------


def node(name: str, **state: Any) -> dict[str, Any]:
    base = {"name": name, "url": f"http://10.0.0.1{name[-1]}:11434", "healthy": True}
    base |= {"last_error": None, "version": "0.5.7", "breaker": "closed", "draining": False}
    base |= {"in_flight": 0, "queued": 0, "max_parallel": 4, "queue": 32}
    return base | {"models": [], "loaded": []} | state


class AdminDouble:
    """The admin API as the design states it; anything else is a 404 and is recorded."""

    def __init__(self) -> None:
        self.nodes = {
            "gpu-1": node("gpu-1", in_flight=2, models=["llama3.2:1b", "qwen"], loaded=["qwen"]),
            "gpu-2": node("gpu-2", healthy=False, breaker="open", last_error="connect refused"),
        }
        self.requests: list[tuple[str, str, Any]] = []
        self.unexpected: list[str] = []
        self.release = threading.Event()  # the streaming test lets the pull go on
        self.usage_as_list = False
        admin = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD"]
        self.app = Starlette(
            routes=[
                Route("/admin/nodes", self.list_nodes, methods=["GET"]),
                Route("/admin/nodes/{name}/{verb:str}", self.drain, methods=["POST"]),
                Route("/admin/pull", self.pull, methods=["POST"]),
                Route("/admin/models", self.delete, methods=["DELETE"]),
                Route("/admin/usage", self.usage, methods=["GET"]),
                Route("/{rest:path}", self.refuse, methods=admin),
            ]
        )

    async def _admitted(self, request: Request) -> tuple[Response | None, Any]:
        body = json.loads(await request.body() or b"null")
        self.requests.append((request.method, request.url.path, body))
        auth = request.headers.get("authorization")
        if auth == f"Bearer {READER}":
            return JSONResponse({"error": "this key may not call /admin"}, 403), body
        if auth != f"Bearer {ADMIN}":
            return JSONResponse({"error": "invalid API key"}, 401), body
        return None, body

    async def list_nodes(self, request: Request) -> Response:
        refused, _ = await self._admitted(request)
        return refused or JSONResponse({"nodes": list(self.nodes.values())})

    async def drain(self, request: Request) -> Response:
        refused, _ = await self._admitted(request)
        name, verb = request.path_params["name"], request.path_params["verb"]
        if refused or verb not in ("drain", "undrain"):
            return refused or await self.refuse(request)
        if name not in self.nodes:
            return JSONResponse({"error": f"no node named {name!r}"}, 404)
        self.nodes[name]["draining"] = verb == "drain"
        return JSONResponse({"node": name, "draining": verb == "drain"})

    async def pull(self, request: Request) -> Response:
        refused, body = await self._admitted(request)
        if refused:
            return refused
        names = body.get("nodes") or list(self.nodes)
        model = body["model"]

        async def lines() -> AsyncIterator[bytes]:
            for name in names:
                yield _line(node=name, status="pulling manifest")
                if model == "slow":  # waits until the client has shown the first line
                    shown = await asyncio.to_thread(self.release.wait, 10)
                    if not shown:
                        yield _line(node=name, error="the first line was not shown in time")
                for done in (1, 2, 3):
                    yield _line(node=name, status="pulling 8eeb52df", completed=done, total=3)
                error = None
                if model == "broken" and name == "gpu-2":
                    error = "pull model manifest: file does not exist"
                    yield _line(node=name, error=error)
                else:
                    yield _line(node=name, status="success")
                yield _line(node=name, done=True, ok=error is None, error=error)  # a summary

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def delete(self, request: Request) -> Response:
        refused, body = await self._admitted(request)
        if refused:
            return refused
        results = {  # node: "deleted", or what went wrong
            n: "HTTP 404: model not found"
            if body["model"] == "missing" and n == "gpu-2"
            else "deleted"
            for n in body.get("nodes") or list(self.nodes)
        }
        return JSONResponse({"model": body["model"], "nodes": results})

    async def usage(self, request: Request) -> Response:
        refused, _ = await self._admitted(request)
        fields = ("requests", "tokens_in", "tokens_out", "rate_limited")
        keys = {name: dict(zip(fields, row, strict=True)) for name, *row in USAGE}
        if self.usage_as_list:  # the form the brief gave: [{"name", ...}]
            return refused or JSONResponse({"keys": [{"name": n, **k} for n, k in keys.items()]})
        return refused or JSONResponse({"keys": keys})

    async def refuse(self, request: Request) -> Response:
        self.unexpected.append(f"{request.method} {request.url.path}")
        return JSONResponse({"error": "not found"}, 404)


USAGE = [("alice", 12, 340, 1200, 1), ("ops", 3, 0, 0, 0)]


def _line(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AdminDouble, str]]:
    double = AdminDouble()
    with serve_in_thread(double.app) as port:
        yield double, f"http://127.0.0.1:{port}"


@pytest.fixture
def gateway(served: tuple[AdminDouble, str]) -> Iterator[tuple[AdminDouble, str]]:
    double, _ = served
    double.requests.clear()
    yield served
    assert double.unexpected == [], "the CLI called what the admin API does not have"
    for state in double.nodes.values():
        state["draining"] = False
    double.usage_as_list = False


def admin(url: str, *args: str, key: str = ADMIN, **kw: Any) -> Result:
    return invoke([*args, "--url", url], env={"OLLAMA_FLEET_GATEWAY_KEY": key}, **kw)


@integration
def test_nodes_table(gateway: tuple[AdminDouble, str]) -> None:
    _, url = gateway
    result = admin(url, "nodes")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "NODE   URL                     STATE    BREAKER  BUSY  QUEUED  MODELS  LOADED  ERROR",
        "gpu-1  http://10.0.0.11:11434  healthy  closed   2/4   0/32    2       qwen    -",
        "gpu-2  http://10.0.0.12:11434  down     open     0/4   0/32    0       -       "
        "connect refused",
    ]
    assert ADMIN not in result.output


@integration
def test_nodes_json_is_the_apis(gateway: tuple[AdminDouble, str]) -> None:
    double, url = gateway
    result = admin(url, "nodes", "--json")
    assert json.loads(result.stdout) == {"nodes": list(double.nodes.values())}


@integration
def test_drain_and_undrain(gateway: tuple[AdminDouble, str]) -> None:
    double, url = gateway
    assert admin(url, "drain", "gpu-2").stdout == "gpu-2: draining\n"
    assert double.nodes["gpu-2"]["draining"] is True
    assert "draining" in admin(url, "nodes").stdout.splitlines()[2]
    assert admin(url, "undrain", "gpu-2").stdout == "gpu-2: in service\n"
    assert double.nodes["gpu-2"]["draining"] is False
    assert [r[:2] for r in double.requests] == [
        ("POST", "/admin/nodes/gpu-2/drain"),
        ("GET", "/admin/nodes"),
        ("POST", "/admin/nodes/gpu-2/undrain"),
    ]


@integration
def test_drain_of_an_unknown_node_is_one_line(gateway: tuple[AdminDouble, str]) -> None:
    _, url = gateway
    line = one_error(admin(url, "drain", "gpu-9"), 1)
    assert line == f"POST {url}/admin/nodes/gpu-9/drain: 404: no node named 'gpu-9'"


@integration
def test_pull_prints_a_line_per_status_change(gateway: tuple[AdminDouble, str]) -> None:
    double, url = gateway
    result = admin(url, "pull", "llama3.2:1b", "--node", "gpu-1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "gpu-1: pulling manifest",
        "gpu-1: pulling 8eeb52df",
        "gpu-1: success",
    ]
    assert double.requests[0] == (
        "POST",
        "/admin/pull",
        {"model": "llama3.2:1b", "nodes": ["gpu-1"]},
    )


@integration
def test_pull_that_fails_on_a_node_exits_1(gateway: tuple[AdminDouble, str]) -> None:
    double, url = gateway
    result = admin(url, "pull", "broken")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == (
        "gpu-2: error: pull model manifest: file does not exist"
    )
    assert result.stderr == "Error: pull of broken failed on gpu-2\n"
    assert double.requests[0][2] == {"model": "broken"}


@integration
def test_pull_json_prints_the_apis_lines(gateway: tuple[AdminDouble, str]) -> None:
    _, url = gateway
    result = admin(url, "pull", "m", "--node", "gpu-1", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 6 and lines[-1] == {
        "node": "gpu-1",
        "done": True,
        "ok": True,
        "error": None,
    }
    assert lines[2] == {
        "node": "gpu-1",
        "status": "pulling 8eeb52df",
        "completed": 2,
        "total": 3,
    }


@integration
def test_pull_shows_progress_as_it_comes(gateway: tuple[AdminDouble, str]) -> None:
    """A real process: its first line is read while the server still holds back the rest."""
    double, url = gateway
    double.release.clear()
    env = {"OLLAMA_FLEET_GATEWAY_KEY": ADMIN, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "ollama_fleet", "gateway", "pull", "slow", "--url", url]
    with subprocess.Popen(
        [*command, "--node", "gpu-1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        double.release.set()
        rest, errors = process.communicate(timeout=60)
    assert first == b"gpu-1: pulling manifest\n"
    assert rest.decode().splitlines() == ["gpu-1: pulling 8eeb52df", "gpu-1: success"]
    assert process.returncode == 0, errors


@integration
def test_delete(gateway: tuple[AdminDouble, str]) -> None:
    double, url = gateway
    result = admin(url, "delete", "qwen", "--node", "gpu-1", "--node", "gpu-2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["gpu-1: qwen deleted", "gpu-2: qwen deleted"]
    assert double.requests[0] == (
        "DELETE",
        "/admin/models",
        {"model": "qwen", "nodes": ["gpu-1", "gpu-2"]},
    )


@integration
def test_delete_that_fails_on_a_node_exits_1(gateway: tuple[AdminDouble, str]) -> None:
    _, url = gateway
    result = admin(url, "delete", "missing")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1] == "gpu-2: error: HTTP 404: model not found"
    assert result.stderr == "Error: delete of missing failed on gpu-2\n"


@integration
@pytest.mark.parametrize("as_list", [False, True], ids=["by-name", "list"])
def test_usage_table(gateway: tuple[AdminDouble, str], as_list: bool) -> None:
    double, url = gateway
    double.usage_as_list = as_list
    result = admin(url, "usage")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "KEY    REQUESTS  TOKENS_IN  TOKENS_OUT  RATE_LIMITED",
        "alice  12        340        1200        1",
        "ops    3         0          0           0",
    ]


@integration
def test_the_key_from_a_file_and_the_url_from_the_environment(
    gateway: tuple[AdminDouble, str], here: Path
) -> None:
    _, url = gateway
    (here / "admin.key").write_text(f"{ADMIN}\n")
    result = invoke(
        ["usage", "--json", "--key-file", "admin.key"], env={"OLLAMA_FLEET_GATEWAY_URL": url}
    )
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)["keys"]) == ["alice", "ops"]


@integration
@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("ofk_wrong-key-5e6f", "401: invalid API key"),
        (READER, "403: this key may not call /admin (the key must have role admin)"),
    ],
)
def test_a_refused_key_is_one_line_without_it(
    gateway: tuple[AdminDouble, str], key: str, text: str
) -> None:
    _, url = gateway
    line = one_error(admin(url, "nodes", key=key), 1)
    assert line == f"GET {url}/admin/nodes: {text}"
    assert key not in line


def test_no_admin_key_is_a_usage_error() -> None:
    line = one_error(invoke(["nodes"]), 2)
    assert line == "no admin key: set $OLLAMA_FLEET_GATEWAY_KEY or pass --key-file FILE"


def test_a_gateway_that_is_not_there_is_one_line() -> None:
    with socket.socket() as sock:  # a port nothing listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    line = one_error(admin(url, "usage"), 1)
    assert line.startswith(f"cannot reach the gateway at {url}: ")
    assert ADMIN not in line
