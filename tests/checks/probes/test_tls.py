"""The tls probe against a tiny TLS server written here, so the server's TLS setup is ours.

Caddy never accepts TLS 1.0/1.1, so the legacy-protocol finding needs a server that does:
an asyncio server with an SSLContext that allows TLS 1.0 (at OpenSSL security level 0),
answering every HTTP/1.1 request with 200 and a Strict-Transport-Security header.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ollama_fleet.checks.model import (
    CheckResult,
    CheckRun,
    FailureClass,
    Status,
    Target,
    TlsPolicy,
)
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.checks.settings import ProbeSettings
from ollama_fleet.testbed.certs import CertFiles, CertificateAuthority

pytestmark = pytest.mark.integration

HSTS = "max-age=31536000"
RESPONSE = (
    "HTTP/1.1 200 OK\r\n"
    f"Strict-Transport-Security: {HSTS}\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 2\r\n"
    "Connection: close\r\n"
    "\r\n"
    "ok"
).encode()


def server_context(cert: CertFiles, *, minimum: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    with warnings.catch_warnings():
        # Allowing TLS 1.0/1.1 is deprecated, and exactly what this server is for.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = minimum
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """200 with HSTS to any request; a bare handshake (no request) is just closed."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def check_tls(ca: CertificateAuthority, server_ctx: ssl.SSLContext) -> CheckResult:
    async def scenario() -> CheckResult:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        target = Target(
            name="legacy",
            url=f"https://localhost:{port}",
            tls=TlsPolicy(ca_file=str(ca.ca_file)),
            closed_ports=(),
        )
        async with server:
            run = await run_checks(
                [target], settings=ProbeSettings(check_timeout_s=10), only=["tls"]
            )
        (result,) = run.results
        return result

    return asyncio.run(scenario())


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def cert(ca: CertificateAuthority) -> CertFiles:
    return ca.issue("legacy")


@pytest.fixture(scope="module")
def legacy_result(ca: CertificateAuthority, cert: CertFiles) -> CheckResult:
    return check_tls(ca, server_context(cert, minimum=ssl.TLSVersion.TLSv1))


@pytest.fixture(scope="module")
def modern_result(ca: CertificateAuthority, cert: CertFiles) -> CheckResult:
    return check_tls(ca, server_context(cert, minimum=ssl.TLSVersion.TLSv1_2))


def test_legacy_protocol_accepted_fails(legacy_result: CheckResult) -> None:
    assert legacy_result.check == "tls"
    assert legacy_result.status is Status.FAIL, legacy_result.findings
    assert legacy_result.failure_class is FailureClass.TLS_PROTOCOL
    assert legacy_result.details["legacy_protocol_accepted"] in ("TLSv1", "TLSv1.1")
    assert "deprecated protocol" in legacy_result.summary
    assert legacy_result.hint


def test_legacy_is_the_only_problem(legacy_result: CheckResult) -> None:
    problems = [f for f in legacy_result.findings if f.status is not Status.OK]
    assert len(problems) == 1, legacy_result.findings
    # the verified connection itself still negotiates a modern protocol
    assert legacy_result.details["protocol"] in ("TLSv1.2", "TLSv1.3")


def test_modern_server_refuses_legacy(modern_result: CheckResult) -> None:
    assert modern_result.status is Status.OK, modern_result.findings
    assert modern_result.failure_class is None
    assert modern_result.details["legacy_protocol_accepted"] is None
    assert "TLS 1.0 and 1.1 refused" in [f.message for f in modern_result.findings]


@pytest.mark.parametrize("which", ["legacy_result", "modern_result"])
def test_handshake_and_certificate_details(which: str, request: pytest.FixtureRequest) -> None:
    result: CheckResult = request.getfixturevalue(which)
    details = result.details
    assert details["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert isinstance(details["cipher"], str)
    assert details["cipher"]
    assert details["alpn"] is None  # this server offers no ALPN
    certificate = details["certificate"]
    assert certificate["key_type"] == "EC"
    assert certificate["key_bits"] == 256
    assert certificate["signature_hash"] == "sha256"
    assert "localhost" in certificate["names"]
    assert "127.0.0.1" in certificate["names"]
    assert certificate["subject"] == "CN=localhost"
    assert "ollama-fleet testbed CA" in certificate["issuer"]
    assert 89 < certificate["days_left"] <= 90


@pytest.mark.parametrize("which", ["legacy_result", "modern_result"])
def test_chain_and_hsts_ok(which: str, request: pytest.FixtureRequest) -> None:
    result: CheckResult = request.getfixturevalue(which)
    messages = [f.message for f in result.findings]
    assert any(m.endswith("; chain trusted for localhost") for m in messages)
    assert f"HSTS: {HSTS}" in messages


def test_untrusted_ca_still_reports_legacy(cert: CertFiles, tmp_path: Path) -> None:
    other = CertificateAuthority(tmp_path / "other", name="someone else")
    result = check_tls(other, server_context(cert, minimum=ssl.TLSVersion.TLSv1))
    assert result.status is Status.FAIL
    assert result.failure_class is FailureClass.TLS_UNTRUSTED  # the first of the worst
    classes = {f.failure_class for f in result.findings if f.status is Status.FAIL}
    assert classes == {FailureClass.TLS_UNTRUSTED, FailureClass.TLS_PROTOCOL}
    assert result.details["legacy_protocol_accepted"] in ("TLSv1", "TLSv1.1")
    assert result.details["certificate"]["key_type"] == "EC"


@contextlib.contextmanager
def blocking_tls_server(ctx: ssl.SSLContext) -> Iterator[int]:
    """A thread doing plain `wrap_socket` handshakes: OpenSSL sends its alerts, unlike asyncio."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            with contextlib.suppress(OSError), conn:
                ctx.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def run_tls(ca: CertificateAuthority, port: int, only: Sequence[str] = ("tls",)) -> CheckRun:
    target = Target(
        name="legacy",
        url=f"https://localhost:{port}",
        tls=TlsPolicy(ca_file=str(ca.ca_file)),
        closed_ports=(),
    )
    return asyncio.run(run_checks([target], settings=ProbeSettings(check_timeout_s=10), only=only))


def test_legacy_only_server_fails_tls_protocol(ca: CertificateAuthority, cert: CertFiles) -> None:
    ctx = server_context(cert, minimum=ssl.TLSVersion.TLSv1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with blocking_tls_server(ctx) as port:
        (result,) = run_tls(ca, port).results
    assert result.status is Status.FAIL
    assert result.failure_class is FailureClass.TLS_PROTOCOL, result.findings


def test_connection_closed_during_handshake_is_not_refused(ca: CertificateAuthority) -> None:
    """TCP connects, then the peer hangs up on the ClientHello (as some TLS 1.0-only
    servers and middleboxes do): a TLS problem, not "nothing listens there"."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.read(1024)  # the ClientHello
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def scenario() -> CheckRun:
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await asyncio.to_thread(run_tls, ca, port, ("connectivity", "tls"))

    run = asyncio.run(scenario())
    by_check = {r.check: r for r in run.results}
    tls = by_check["tls"]
    assert tls.status is Status.FAIL
    assert tls.failure_class is not FailureClass.REFUSED, tls.summary
    # the same peer behaviour gets the same class from both probes
    assert (
        tls.failure_class is by_check["connectivity"].failure_class is (FailureClass.TLS_PROTOCOL)
    )
    assert not tls.summary.endswith("()"), tls.summary
