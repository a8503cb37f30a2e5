"""Exceptions, HTTP statuses and stream errors become findings with the right failure class."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from pathlib import Path

import httpx
import pytest

from ollama_fleet.checks.classify import (
    HOST_HEADER_HINT,
    NO_API_HINT,
    classify_exception,
    classify_status,
    classify_stream_error,
    classify_tls_verify_error,
    error_text,
    judge_rate,
    judge_time,
    timeout_class,
)
from ollama_fleet.checks.http import TIMINGS_EXTENSION, Phase, PhaseTimeout, Timings
from ollama_fleet.checks.model import HINTS, FailureClass, Finding, Status, Threshold
from ollama_fleet.testbed.certs import CertFiles, CertificateAuthority
from ollama_fleet.testbed.servers import free_port

ACTION = "GET /api/tags"


def raised(outer: BaseException, cause: BaseException) -> BaseException:
    """`outer` as really raised `from cause`, with its traceback and chain."""
    try:
        raise outer from cause
    except BaseException as exc:
        return exc


def assert_fail(finding: Finding, failure_class: FailureClass) -> None:
    assert finding.status is Status.FAIL
    assert finding.failure_class is failure_class
    assert finding.message.startswith(ACTION)
    assert finding.hint


# --- exceptions: connecting ----------------------------------------------------------------


def test_name_that_does_not_resolve() -> None:
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    finding = classify_exception(raised(httpx.ConnectError("boom"), gai), action=ACTION)
    assert_fail(finding, FailureClass.DNS)
    assert "Name or service not known" in finding.message
    assert finding.hint == HINTS[FailureClass.DNS]


def test_refused_sync_connect() -> None:
    with pytest.raises(httpx.ConnectError) as info:
        httpx.get(f"http://127.0.0.1:{free_port()}/api/tags", timeout=5)
    finding = classify_exception(info.value, action=ACTION)
    assert_fail(finding, FailureClass.REFUSED)
    assert "refused" in finding.message


def test_refused_async_connect() -> None:
    # httpx's async transport wraps the refusal in OSError("All connection attempts failed").
    async def get() -> BaseException:
        async with httpx.AsyncClient(timeout=5) as client:
            try:
                await client.get(f"http://127.0.0.1:{free_port()}/api/tags")
            except httpx.ConnectError as exc:
                return exc
        raise AssertionError("the connection was not refused")

    finding = classify_exception(asyncio.run(get()), action=ACTION)
    assert_fail(finding, FailureClass.REFUSED)


def test_connect_timeout() -> None:
    finding = classify_exception(httpx.ConnectTimeout("timed out"), action=ACTION)
    assert_fail(finding, FailureClass.CONNECT_TIMEOUT)


def test_connect_timeout_during_the_tls_handshake_is_a_tls_timeout() -> None:
    # httpx raises ConnectTimeout for both steps; the request's timings say which it was
    request = httpx.Request("GET", "https://gpu-1.example.net/api/tags")
    timings = Timings(label="GET /api/tags", phase=Phase.TLS)
    request.extensions[TIMINGS_EXTENSION] = timings
    finding = classify_exception(httpx.ConnectTimeout("timed out", request=request), action=ACTION)
    assert_fail(finding, FailureClass.TLS_TIMEOUT)
    assert finding.message == "GET /api/tags: TCP connected, but no TLS handshake came back in time"
    assert finding.hint == HINTS[FailureClass.TLS_TIMEOUT]


@pytest.mark.parametrize(
    ("phase", "failure_class"),
    [
        (Phase.QUEUED, FailureClass.READ_TIMEOUT),
        (Phase.CONNECT, FailureClass.CONNECT_TIMEOUT),
        (Phase.TLS, FailureClass.TLS_TIMEOUT),
        (Phase.WAIT, FailureClass.READ_TIMEOUT),
        (Phase.READ, FailureClass.READ_TIMEOUT),
    ],
)
def test_timeout_class_by_phase(phase: Phase, failure_class: FailureClass) -> None:
    assert timeout_class(phase) is failure_class
    finding = classify_exception(PhaseTimeout(phase, "it took too long"), action=ACTION)
    assert finding.failure_class is failure_class
    assert finding.message == "GET /api/tags: it took too long"


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("timed out"), httpx.PoolTimeout("pool"), TimeoutError()],
    ids=["httpx.ReadTimeout", "httpx.PoolTimeout", "TimeoutError"],
)
def test_read_timeouts(exc: BaseException) -> None:
    assert_fail(classify_exception(exc, action=ACTION), FailureClass.READ_TIMEOUT)


def test_connection_cut_mid_answer() -> None:
    exc = httpx.RemoteProtocolError("peer closed connection without sending complete message body")
    finding = classify_exception(exc, action=ACTION)
    assert_fail(finding, FailureClass.BAD_RESPONSE)
    assert "peer closed connection" in finding.message


def test_invalid_json() -> None:
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(b'{"models": [')
    finding = classify_exception(info.value, action=ACTION)
    assert_fail(finding, FailureClass.BAD_RESPONSE)
    assert "JSON" in finding.message


def test_unexpected_exception_is_bad_response_with_its_type() -> None:
    finding = classify_exception(KeyError("models"), action=ACTION)
    assert_fail(finding, FailureClass.BAD_RESPONSE)
    assert "KeyError" in finding.message


# --- exceptions: TLS, from real handshakes -------------------------------------------------


def handshake_error(cert: CertFiles, ca_file: Path, server_hostname: str) -> ssl.SSLError:
    """The error a verifying client raises in a real in-memory TLS handshake with `cert`."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert.cert, cert.key)
    client_ctx = ssl.create_default_context(cafile=str(ca_file))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_out, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(to_client, client_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(to_server, server_out, server_side=True)
    for _ in range(10):
        try:
            client.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            return exc
        to_server.write(client_out.read())
        with contextlib.suppress(ssl.SSLWantReadError):
            server.do_handshake()
        to_client.write(server_out.read())
    raise AssertionError("the client accepted the certificate")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.mark.parametrize(
    ("label", "issue", "server_hostname", "verify_code", "failure_class"),
    [
        ("expired", {"not_before_days": -30, "not_after_days": -1}, "localhost", 10,
         FailureClass.TLS_EXPIRED),
        ("not-yet-valid", {"not_before_days": 2, "not_after_days": 30}, "localhost", 9,
         FailureClass.TLS_EXPIRED),
        ("wrong-name", {"names": ("other.example.net",)}, "localhost", 62,
         FailureClass.TLS_HOSTNAME),
        ("wrong-ip", {"names": ("localhost",)}, "127.0.0.1", 64, FailureClass.TLS_HOSTNAME),
    ],
)  # fmt: skip
def test_real_certificate_errors(
    ca: CertificateAuthority,
    label: str,
    issue: dict[str, object],
    server_hostname: str,
    verify_code: int,
    failure_class: FailureClass,
) -> None:
    err = handshake_error(ca.issue(label, **issue), ca.ca_file, server_hostname)
    assert isinstance(err, ssl.SSLCertVerificationError)
    assert err.verify_code == verify_code

    direct = classify_tls_verify_error(err)
    assert direct.status is Status.FAIL
    assert direct.failure_class is failure_class

    wrapped = classify_exception(raised(httpx.ConnectError(str(err)), err), action=ACTION)
    assert_fail(wrapped, failure_class)
    assert direct.message in wrapped.message


def test_real_untrusted_certificate(ca: CertificateAuthority, tmp_path: Path) -> None:
    stranger = CertificateAuthority(tmp_path / "other", name="someone else's CA")
    err = handshake_error(ca.issue("untrusted"), stranger.ca_file, "localhost")
    assert isinstance(err, ssl.SSLCertVerificationError)
    assert err.verify_code == 20
    finding = classify_exception(raised(httpx.ConnectError(str(err)), err), action=ACTION)
    assert_fail(finding, FailureClass.TLS_UNTRUSTED)
    assert finding.hint == HINTS[FailureClass.TLS_UNTRUSTED]


def test_not_yet_valid_hint_is_about_clocks(ca: CertificateAuthority) -> None:
    cert = ca.issue("future", not_before_days=2, not_after_days=30)
    err = handshake_error(cert, ca.ca_file, "localhost")
    finding = classify_exception(raised(httpx.ConnectError("x"), err), action=ACTION)
    assert finding.hint is not None
    assert "clock" in finding.hint
    assert "not valid yet" in finding.message


@pytest.mark.parametrize(
    ("code", "failure_class"),
    [
        (10, FailureClass.TLS_EXPIRED),
        (9, FailureClass.TLS_EXPIRED),
        (62, FailureClass.TLS_HOSTNAME),
        (64, FailureClass.TLS_HOSTNAME),
        (20, FailureClass.TLS_UNTRUSTED),
        (19, FailureClass.TLS_UNTRUSTED),
    ],
)
def test_verify_codes(code: int, failure_class: FailureClass) -> None:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] verify failed")
    err.verify_code = code
    err.verify_message = f"code {code}"
    finding = classify_exception(raised(httpx.ConnectError("x"), err), action=ACTION)
    assert_fail(finding, failure_class)
    assert f"code {code}" in finding.message


def test_other_tls_error_is_a_protocol_failure() -> None:
    err = ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version")
    finding = classify_exception(raised(httpx.ConnectError("x"), err), action=ACTION)
    assert_fail(finding, FailureClass.TLS_PROTOCOL)


# --- HTTP statuses -------------------------------------------------------------------------


def test_401() -> None:
    finding = classify_status(401, b'{"error": "unauthorized"}', action=ACTION)
    assert_fail(finding, FailureClass.AUTH)
    assert "HTTP 401" in finding.message
    assert "unauthorized" in finding.message


def test_403_with_an_empty_body_points_at_the_host_header() -> None:
    finding = classify_status(403, b"", action=ACTION)
    assert_fail(finding, FailureClass.AUTH)
    assert finding.hint == HOST_HEADER_HINT
    assert "header_up Host" in finding.hint


def test_403_with_a_body_is_plain_forbidden() -> None:
    finding = classify_status(403, b'{"error": "key revoked"}', action=ACTION)
    assert_fail(finding, FailureClass.AUTH)
    assert "key revoked" in finding.message
    assert finding.hint == HINTS[FailureClass.AUTH]


def test_404_for_a_model() -> None:
    body = b'{"error": "model \\"llama3.1:70b\\" not found, try pulling it first"}'
    finding = classify_status(404, body, action="POST /api/chat", model="llama3.1:70b")
    assert finding.status is Status.FAIL
    assert finding.failure_class is FailureClass.MODEL_MISSING
    assert finding.message == (
        'POST /api/chat: HTTP 404: model "llama3.1:70b" not found, try pulling it first'
    )
    assert finding.hint == (
        "list them in required_models and run `ollama-fleet deploy INVENTORY --roles models` "
        "(it pulls required_models), or run `ollama pull llama3.1:70b` on the host"
    )


@pytest.mark.parametrize(
    "body",
    [b"404 page not found", b"<html>Not Found</html>", b"", b'{"detail": "Not Found"}'],
    ids=["ollama-router", "html", "empty", "other-json"],
)
def test_404_for_a_model_that_ollama_did_not_send_is_no_api(body: bytes) -> None:
    # a wrong path (https://host/wrong/api/chat) is not a missing model
    finding = classify_status(404, body, action="POST /api/chat", model="llama3.2:1b")
    assert finding.failure_class is FailureClass.BAD_RESPONSE
    assert finding.message.endswith(": no Ollama API at this URL")
    assert finding.hint == NO_API_HINT


def test_404_without_a_model_is_a_bad_response() -> None:
    finding = classify_status(404, b"404 page not found", action=ACTION)
    assert_fail(finding, FailureClass.BAD_RESPONSE)
    assert (
        finding.message == "GET /api/tags: HTTP 404 (404 page not found): no Ollama API at this URL"
    )


@pytest.mark.parametrize(
    ("status", "failure_class"),
    [
        (429, FailureClass.OVERLOAD),
        (503, FailureClass.OVERLOAD),
        (500, FailureClass.SERVER_ERROR),
        (502, FailureClass.SERVER_ERROR),
        (418, FailureClass.BAD_RESPONSE),
        (400, FailureClass.BAD_RESPONSE),
    ],
)
def test_other_statuses(status: int, failure_class: FailureClass) -> None:
    finding = classify_status(status, b'{"error": "something"}', action=ACTION)
    assert_fail(finding, failure_class)
    assert f"HTTP {status}" in finding.message
    assert "something" in finding.message


# --- error bodies --------------------------------------------------------------------------


def test_error_text_of_an_ollama_body() -> None:
    assert error_text(b'{"error": "model \'x\' not found"}') == "model 'x' not found"


def test_error_text_of_an_openai_body() -> None:
    body = b'{"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}'
    assert error_text(body) == "Incorrect API key"


def test_error_text_of_html() -> None:
    assert error_text(b"  <html>502 Bad Gateway</html>\n") == "<html>502 Bad Gateway</html>"


def test_error_text_is_short() -> None:
    assert len(error_text(b"x" * 5000)) == 200
    assert len(error_text(json.dumps({"error": "y" * 5000}).encode())) == 200


@pytest.mark.parametrize("body", [b"", b"   \n", b"\xff\xfe\xfa"])
def test_error_text_of_empty_or_undecodable_bodies(body: bytes) -> None:
    text = error_text(body)
    assert text
    assert "\n" not in text


def test_error_text_of_json_without_an_error_field() -> None:
    assert error_text(b'{"status": "down"}') == '{"status": "down"}'


# --- errors inside a 200 stream ------------------------------------------------------------


def test_stream_error_model_not_found() -> None:
    finding = classify_stream_error(
        "model 'llama3.1:70b' not found, try pulling it first",
        action="POST /api/chat",
        model="llama3.1:70b",
    )
    assert finding.status is Status.FAIL
    assert finding.failure_class is FailureClass.MODEL_MISSING
    assert "`ollama pull llama3.1:70b`" in (finding.hint or "")


def test_stream_error_is_a_server_error() -> None:
    finding = classify_stream_error(
        "CUDA error: out of memory", action="POST /api/chat", model="llama3.2:1b"
    )
    assert finding.status is Status.FAIL
    assert finding.failure_class is FailureClass.SERVER_ERROR
    assert "CUDA error: out of memory" in finding.message


def test_stream_not_found_without_a_model_is_a_server_error() -> None:
    finding = classify_stream_error("file not found", action="POST /api/chat", model=None)
    assert finding.failure_class is FailureClass.SERVER_ERROR


def test_stream_error_text_is_cut() -> None:
    finding = classify_stream_error("e" * 1000, action="POST /api/chat", model=None)
    assert "e" * 200 in finding.message
    assert "e" * 201 not in finding.message


# --- latency thresholds --------------------------------------------------------------------

MS = Threshold(warn=2000, fail=10000)
RATE = Threshold(warn=5, fail=1)


@pytest.mark.parametrize(
    ("ms", "status", "message"),
    [
        (None, None, None),
        (1999.9, None, None),
        (2000, Status.WARN, "first token after 2000 ms (warn at 2000 ms)"),
        (3012.4, Status.WARN, "first token after 3012 ms (warn at 2000 ms)"),
        (10000, Status.FAIL, "first token after 10000 ms (fail at 10000 ms)"),
    ],
)
def test_judge_time(ms: float | None, status: Status | None, message: str | None) -> None:
    finding = judge_time("first token after", ms, MS)
    if status is None:
        assert finding is None
        return
    assert finding is not None
    assert (finding.status, finding.failure_class, finding.message) == (
        status,
        FailureClass.SLOW,
        message,
    )
    assert finding.hint == HINTS[FailureClass.SLOW]


@pytest.mark.parametrize(
    ("rate", "status", "message"),
    [
        (None, None, None),
        (5.0, None, None),
        (4.9, Status.WARN, "4.9 tokens/s (warn below 5 tokens/s)"),
        (0.5, Status.FAIL, "0.5 tokens/s (fail below 1 tokens/s)"),
    ],
)
def test_judge_rate(rate: float | None, status: Status | None, message: str | None) -> None:
    finding = judge_rate(rate, RATE)
    if status is None:
        assert finding is None
        return
    assert finding is not None
    assert (finding.status, finding.message) == (status, message)


# --- hints name this tool's variables ------------------------------------------------------


def test_no_hint_names_ollamas_environment_or_a_placeholder() -> None:
    for failure_class, hint in HINTS.items():
        assert "OLLAMA_" not in hint, failure_class
        assert "NAME" not in hint, failure_class
    assert "ollama_num_parallel" in HINTS[FailureClass.OVERLOAD]
    assert "ollama_max_queue" in HINTS[FailureClass.OVERLOAD]
    assert "--roles models" in HINTS[FailureClass.MODEL_MISSING]
