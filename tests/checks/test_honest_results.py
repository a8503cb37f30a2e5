"""Honest classes, hints, timeouts and latency, against real servers on 127.0.0.1.

Each case is one an operator met: HTTPS to a port that never speaks TLS, a connect that
hangs, a 500 on /api/ps, a URL with a wrong path, a model Ollama says is not there, answers
slower than the latency thresholds, and the phase a timeout stopped a check in.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Iterator

import pytest

from ollama_fleet.checks.classify import NO_API_HINT, PLAIN_HTTP_HINT
from ollama_fleet.checks.model import (
    HINTS,
    CheckResult,
    CheckRun,
    FailureClass,
    LatencyPolicy,
    PublicAccess,
    Status,
    Target,
    Threshold,
)
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.settings import ProbeSettings
from ollama_fleet.simulator import Faults, SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread
from raw_servers import raw_servers

pytestmark = pytest.mark.integration

MODEL = "llama3.2:1b"
TIMINGS_KEYS = {"connect_ms", "tls_ms", "first_byte_ms", "total_ms"}


def simulator(faults: Faults | None = None, *, tokens_per_second: float = 0) -> SimulatorConfig:
    return SimulatorConfig(tokens_per_second=tokens_per_second, faults=faults or Faults())


def target(url: str, **overrides: object) -> Target:
    """A target that is the simulator itself: declared open, write endpoints not probed."""
    fields: dict[str, object] = {
        "name": "gpu-1",
        "url": url,
        "chat_model": MODEL,
        "public_access": PublicAccess.OPEN,
        "check_write_endpoints": False,
    }
    fields.update(overrides)
    return Target(**fields)  # type: ignore[arg-type]


def run(targets: list[Target], settings: ProbeSettings | None = None) -> CheckRun:
    return asyncio.run(run_checks(targets, settings=settings or ProbeSettings(deadline_s=60)))


def checks(run: CheckRun, name: str = "gpu-1") -> dict[str, CheckResult]:
    return {r.check: r for r in run.results if r.target == name}


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts TCP and then never sends a byte (not TLS, not anything)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up and closes
        writer.close()

    with raw_servers({"silent": silent}) as ports:
        yield ports["silent"]


@pytest.fixture()
def hanging_connect_port() -> Iterator[int]:
    """A port whose TCP connects hang: it listens, never accepts, and its queue is full.

    Linux drops a SYN for a listener whose accept queue is full, so the client's connect
    neither succeeds nor is refused: what a firewall that drops packets looks like.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in (*fillers, listener):
        sock.close()


# --- the phase a timeout happened in ---------------------------------------------------------


def test_https_to_a_port_that_never_speaks_tls_is_a_tls_timeout(silent_port: int) -> None:
    found = checks(
        run(
            [target(f"https://127.0.0.1:{silent_port}")],
            ProbeSettings(connect_timeout_s=0.5, deadline_s=60),
        )
    )
    for check in ("connectivity", "tls", "models", "chat", "auth"):
        assert found[check].failure_class is FailureClass.TLS_TIMEOUT, found[check].findings
        assert found[check].hint == HINTS[FailureClass.TLS_TIMEOUT]
    assert found["connectivity"].summary == (
        "GET /api/version: TCP connected, but no TLS handshake came back in time"
    )
    assert found["tls"].summary == (
        "TLS handshake: TCP connected, but no TLS handshake within 0.5 s"
    )
    assert "check the URL's scheme and port" in (found["tls"].hint or "")


def test_run_deadline_during_the_tls_handshake_says_so(silent_port: int) -> None:
    settings = ProbeSettings(connect_timeout_s=30, check_timeout_s=30, deadline_s=1)
    found = checks(run([target(f"https://127.0.0.1:{silent_port}")], settings))

    connectivity = found["connectivity"]
    assert connectivity.failure_class is FailureClass.TLS_TIMEOUT
    assert connectivity.summary == (
        "run deadline of 1 s reached during the TLS handshake (GET /api/version)"
    )
    assert connectivity.elapsed_ms > 0
    for check in ("tls", "models", "chat", "auth"):  # they wait for connectivity to finish
        assert found[check].summary == "run deadline of 1 s reached before the check started"


def test_a_connect_that_hangs_is_a_connect_timeout(hanging_connect_port: int) -> None:
    url = f"http://127.0.0.1:{hanging_connect_port}"
    by_httpx = checks(run([target(url)], ProbeSettings(connect_timeout_s=0.3, deadline_s=60)))
    assert by_httpx["connectivity"].failure_class is FailureClass.CONNECT_TIMEOUT
    assert by_httpx["connectivity"].summary == "GET /api/version: TCP connect timed out"

    settings = ProbeSettings(connect_timeout_s=30, check_timeout_s=0.3, deadline_s=60)
    by_check_timeout = checks(run([target(url)], settings))
    connectivity = by_check_timeout["connectivity"]
    assert connectivity.failure_class is FailureClass.CONNECT_TIMEOUT
    assert connectivity.summary == (
        "not finished within 0.3 s: stopped during the TCP connect (GET /api/version)"
    )


# --- classes and hints -----------------------------------------------------------------------


def test_a_500_on_api_ps_is_a_server_error_warning() -> None:
    with serve_in_thread(create_app(simulator(Faults(status=500, paths=("/api/ps",))))) as port:
        found = checks(run([target(f"http://127.0.0.1:{port}", chat_model=None)]))
    models = found["models"]
    assert models.status is Status.WARN
    assert models.failure_class is FailureClass.SERVER_ERROR
    assert models.summary == "GET /api/ps: HTTP 500 (internal server error)"
    assert models.hint == HINTS[FailureClass.SERVER_ERROR]


def test_a_wrong_path_is_no_ollama_api_not_a_missing_model() -> None:
    with serve_in_thread(create_app(simulator())) as port:
        found = checks(run([target(f"http://127.0.0.1:{port}/wrong")]))
    assert found["connectivity"].failure_class is FailureClass.BAD_RESPONSE
    assert found["connectivity"].summary == (
        "GET /api/version: HTTP 404 (404 page not found): no Ollama API at this URL"
    )
    assert found["connectivity"].hint == NO_API_HINT
    chat = found["chat"]
    assert chat.failure_class is FailureClass.BAD_RESPONSE
    assert chat.summary == (
        "POST /api/chat (stream=false): HTTP 404 (404 page not found): no Ollama API at this URL"
    )
    assert found["models"].failure_class is FailureClass.BAD_RESPONSE


def test_ollamas_own_model_not_found_is_model_missing_with_the_model_named() -> None:
    with serve_in_thread(create_app(simulator())) as port:
        found = checks(run([target(f"http://127.0.0.1:{port}", chat_model="llama3.1:70b")]))
    chat = found["chat"]
    assert chat.failure_class is FailureClass.MODEL_MISSING
    assert 'model "llama3.1:70b" not found' in chat.summary
    assert chat.hint is not None
    assert "`ollama-fleet deploy INVENTORY --roles models`" in chat.hint
    assert "`ollama pull llama3.1:70b`" in chat.hint
    assert "NAME" not in chat.hint


def test_an_overload_hint_names_this_tools_variables() -> None:
    with serve_in_thread(create_app(simulator(Faults(status=503, paths=("/api/chat",))))) as port:
        chat = checks(run([target(f"http://127.0.0.1:{port}")]))["chat"]
    assert chat.failure_class is FailureClass.OVERLOAD
    assert "ollama_num_parallel" in (chat.hint or "")
    assert "OLLAMA_" not in (chat.hint or "")


# --- latency thresholds ----------------------------------------------------------------------

STRICT = LatencyPolicy(
    first_byte_ms=Threshold(warn=500, fail=1000),
    first_token_ms=Threshold(warn=500, fail=1000),
)


def test_slow_answers_warn_and_fail_the_latency_thresholds() -> None:
    faults = Faults(latency_ms=2500, paths=("/api/version", "/api/chat"))
    with serve_in_thread(create_app(simulator(faults))) as port:
        url = f"http://127.0.0.1:{port}"
        result = run([target(url), target(url, name="strict", latency=STRICT)])

    default = checks(result)
    for check, what in (("connectivity", "first byte"), ("chat", "first token")):
        found = default[check]
        assert found.status is not Status.OK, found.findings
        assert found.failure_class is FailureClass.SLOW
        assert re.fullmatch(
            rf"{what} after \d+ ms \((warn at 2000|fail at 10000) ms\)", found.summary
        )
        assert found.hint == HINTS[FailureClass.SLOW]
    strict = checks(result, "strict")
    assert strict["connectivity"].status is Status.FAIL
    assert re.fullmatch(
        r"first byte after \d+ ms \(fail at 1000 ms\)", strict["connectivity"].summary
    )
    assert strict["chat"].status is Status.FAIL
    assert re.fullmatch(r"first token after \d+ ms \(fail at 1000 ms\)", strict["chat"].summary)
    # the other findings stay: the answer itself was fine
    assert "answers a plain chat" in [f.message for f in strict["chat"].findings][1]


def test_a_slow_token_rate_warns_and_fails() -> None:
    rate_policy = LatencyPolicy(tokens_per_s=Threshold(warn=20, fail=10))
    with serve_in_thread(create_app(simulator(tokens_per_second=4))) as port:
        url = f"http://127.0.0.1:{port}"
        result = run([target(url), target(url, name="strict", latency=rate_policy)])

    chat = checks(result)["chat"]
    assert (chat.status, chat.failure_class) == (Status.WARN, FailureClass.SLOW)
    assert chat.summary == "4 tokens/s (warn below 5 tokens/s)"
    assert chat.details["tokens_per_second_source"] == "eval_duration"
    strict = checks(result, "strict")["chat"]
    assert (strict.status, strict.summary) == (Status.FAIL, "4 tokens/s (fail below 10 tokens/s)")


def test_a_fast_host_passes_the_default_thresholds() -> None:
    # the simulator's default pace (200 tokens/s) on loopback: nothing is slow
    with serve_in_thread(create_app(simulator(tokens_per_second=200))) as port:
        found = checks(run([target(f"http://127.0.0.1:{port}", closed_ports=())]))
    for check, result in found.items():
        assert result.status is Status.OK, (check, result.findings)


# --- the timings convention ------------------------------------------------------------------


def test_every_http_check_reports_its_timings() -> None:
    with serve_in_thread(create_app(simulator())) as port:
        found = checks(run([target(f"http://127.0.0.1:{port}")]))

    connectivity = found["connectivity"].details["timings"]
    assert set(connectivity) == TIMINGS_KEYS
    assert connectivity["connect_ms"] is not None  # its own fresh connection
    assert connectivity["tls_ms"] is None  # plain http: no handshake
    models = found["models"].details["timings"]
    assert set(models) == TIMINGS_KEYS
    assert models["connect_ms"] is None  # reused the connection connectivity opened
    chat = found["chat"].details["timings"]
    assert set(chat) == TIMINGS_KEYS | {"first_token_ms"}
    assert chat["first_token_ms"] == found["chat"].details["first_token_ms"]
    assert chat["first_token_ms"] is not None


def test_https_to_a_plain_http_port_says_so_and_how_to_fix_it() -> None:
    # the most common scheme mistake: https:// pointed at Ollama's own plain-HTTP port
    with serve_in_thread(create_app(simulator())) as port:
        found = checks(run([target(f"https://127.0.0.1:{port}")]))

    connectivity = found["connectivity"]
    assert connectivity.failure_class is FailureClass.TLS_PROTOCOL
    assert connectivity.summary == (
        "GET /api/version: TLS handshake failed: the port answers plain HTTP, not TLS"
    )
    assert connectivity.hint == PLAIN_HTTP_HINT
    assert "use http://" in PLAIN_HTTP_HINT
