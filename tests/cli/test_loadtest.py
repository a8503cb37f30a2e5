"""`ollama-fleet loadtest` through click's CliRunner against a real simulator on 127.0.0.1.

Exit codes (0 all ok, 1 some failed, 2 usage, 4 nothing connected), the report formats and
-o, the API key kept out of every output, and a --help that does not import httpx.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ollama_fleet.cli import loadtest as cli_loadtest
from ollama_fleet.cli import main
from ollama_fleet.loadtest import FORMATS, model
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import free_port, serve_in_thread

pytestmark = pytest.mark.integration

MODEL = "llama3.2:1b"
SECRET = "sk-loadtest-secret-0123456789"


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield f"http://127.0.0.1:{port}"


def loadtest(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, ["loadtest", *args], catch_exceptions=False)


def test_the_cli_copies_of_the_defaults_are_the_librarys() -> None:
    # the CLI module imports only click, so it keeps copies for --help: they must not drift
    assert cli_loadtest.FORMATS == FORMATS
    assert cli_loadtest.DEFAULT_REQUESTS == model.DEFAULT_REQUESTS
    assert cli_loadtest.DEFAULT_CONCURRENCY == model.DEFAULT_CONCURRENCY
    assert cli_loadtest.DEFAULT_MAX_TOKENS == model.DEFAULT_MAX_TOKENS
    assert cli_loadtest.DEFAULT_TIMEOUT_S == model.DEFAULT_TIMEOUT_S
    assert cli_loadtest.DEFAULT_PROMPT == model.DEFAULT_PROMPT


def test_all_ok_exits_0_with_the_text_report(sim: str) -> None:
    result = loadtest(sim, "--model", MODEL, "-n", "20", "-c", "4")

    assert result.exit_code == 0, result.output
    assert "20 sent: 20 ok, 0 failed  (concurrency 4" in result.stdout
    assert "SIMULATOR" in result.stdout
    assert "latency      p50 " in result.stdout and "first token  p50 " in result.stdout
    assert "loadtest: 20 request(s)" in result.stderr  # the progress goes to stderr


@pytest.mark.parametrize("api", ["ollama", "openai"])
@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_json_written_by_the_suffix(sim: str, tmp_path: Path, api: str, stream: str) -> None:
    out = tmp_path / "load.json"
    result = loadtest(sim, "--model", MODEL, "-n", "10", "--api", api, stream, "-o", str(out))

    assert result.exit_code == 0, result.output
    assert "json report written to" in result.stdout
    assert "10 sent: 10 ok" in result.stdout  # the terminal still gets the text
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["status"] == "ok"
    assert doc["target"]["api"] == api and doc["target"]["simulator"] is True
    assert doc["target"]["stream"] is (stream == "--stream")
    assert doc["requests"] == {"total": 10, "ok": 10, "failed": 0}
    assert doc["tokens"]["total"] == 10 * model.DEFAULT_MAX_TOKENS
    assert doc["latency_ms"]["count"] == 10
    assert (doc["first_token_ms"]["count"] == 10) is (stream == "--stream")
    assert doc["throughput_rps"] > 0 and doc["tokens_per_s"]["total"] > 0
    assert doc["errors"] == []


def test_a_concurrency_above_n_is_clamped(sim: str) -> None:
    result = loadtest(sim, "--model", MODEL, "-n", "3", "-c", "50", "--format", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["settings"]["concurrency"] == 3


def test_html_to_a_file(sim: str, tmp_path: Path) -> None:
    out = tmp_path / "load.html"
    result = loadtest(sim, "--model", MODEL, "-n", "5", "-o", str(out))

    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "5 sent, 5 ok, 0 failed" in page


@pytest.fixture
def overloaded(sim: str) -> Iterator[None]:
    httpx.put(f"{sim}/_simulator/faults", json={"status": 503}).raise_for_status()
    yield
    httpx.delete(f"{sim}/_simulator/faults").raise_for_status()


@pytest.mark.usefixtures("overloaded")
def test_failed_requests_exit_1_and_are_grouped(sim: str) -> None:
    result = loadtest(sim, "--model", MODEL, "-n", "8", "--format", "json")

    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "fail"
    assert [(e["class"], e["count"]) for e in doc["errors"]] == [("overload", 8)]


def test_an_unknown_model_exits_1_as_model_missing(sim: str) -> None:
    result = loadtest(sim, "--model", "no-such:1b", "-n", "4", "--api", "openai")

    assert result.exit_code == 1, result.output
    assert "model_missing x4" in result.stdout


def test_a_refused_port_exits_4() -> None:
    result = loadtest(f"http://127.0.0.1:{free_port()}", "--model", MODEL, "-n", "3")

    assert result.exit_code == 4, result.output
    assert "refused x3" in result.stdout
    assert "unreachable: no request could connect" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://example.com", "--model", MODEL], "URL: invalid URL"),
        (["http://127.0.0.1:1", "--model", MODEL, "-n", "0"], "-n"),
        (["http://127.0.0.1:1", "--model", MODEL, "-c", "0"], "-c"),
        (["http://127.0.0.1:1"], "--model"),
        (["http://127.0.0.1:1", "--model", MODEL, "--api-key-env", "NO_VAR_X"], "NO_VAR_X"),
        (["http://127.0.0.1:1", "--model", MODEL, "--format", "junit"], "--format"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = loadtest(*args)

    assert result.exit_code == 2, result.output
    assert message in result.stderr


# --- the API key ---------------------------------------------------------------------------


def _echoing_app(seen: list[str]) -> Starlette:
    """A server that puts the Authorization header it got into its error: the worst case."""

    async def chat(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        seen.append(auth)
        return JSONResponse({"error": f"bad token {auth}"}, status_code=500)

    async def version(request: Request) -> Response:
        return JSONResponse({"version": f"0.6.5 {request.headers.get('authorization')}"})

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/version", version, methods=["GET"]),
        ]
    )


@pytest.mark.parametrize("how", ["default-variable", "--api-key-env"])
@pytest.mark.parametrize("fmt", ["text", "json", "html"])
def test_the_api_key_is_sent_but_never_printed(tmp_path: Path, how: str, fmt: str) -> None:
    seen: list[str] = []
    variable = "OLLAMA_FLEET_API_KEY" if how == "default-variable" else "MY_KEY"
    extra = ["--api-key-env", "MY_KEY"] if how == "--api-key-env" else []
    out = tmp_path / f"report.{fmt}"
    with serve_in_thread(_echoing_app(seen)) as port:
        result = loadtest(
            f"http://127.0.0.1:{port}",
            "--model",
            MODEL,
            "-n",
            "2",
            "--format",
            fmt,
            "-o",
            str(out),
            *extra,
            env={variable: SECRET},
        )

    assert seen == [f"Bearer {SECRET}"] * 2  # it was sent
    assert result.exit_code == 1, result.output
    assert "server_error" in result.stdout
    assert SECRET not in result.output
    assert SECRET not in out.read_text(encoding="utf-8")
    assert "***" in out.read_text(encoding="utf-8")  # the echo, redacted


def test_help_does_not_import_the_load_test() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from ollama_fleet.cli import main\n"
        "result = CliRunner().invoke(main, ['loadtest', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert '--concurrency' in result.output, result.output\n"
        "heavy = sorted(m for m in ('httpx', 'ollama_fleet.loadtest') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
