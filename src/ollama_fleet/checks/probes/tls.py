"""tls: handshake facts, chain and name, expiry, legacy protocols, HTTP redirect and HSTS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import ssl
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ollama_fleet.checks.classify import classify_exception, classify_tls_verify_error
from ollama_fleet.checks.http import (
    ALPN_PROTOCOLS,
    Phase,
    PhaseTimeout,
    network_step,
    plain_http_status,
    probe_context,
)
from ollama_fleet.checks.model import CheckResult, FailureClass, Finding, fail, ok, warn
from ollama_fleet.checks.probe import ProbeContext, Stopwatch

REDIRECT_CODES = (301, 302, 307, 308)


@dataclass(frozen=True, slots=True)
class Handshake:
    version: str
    cipher: str
    alpn: str | None
    leaf_der: bytes


@functools.cache
def _inspect_context() -> ssl.SSLContext:
    """Accepts any certificate: used only to read what the server presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
    return ctx


@functools.cache
def _legacy_context() -> ssl.SSLContext:
    """Offers only TLS 1.0 and 1.1, so a completed handshake proves the server accepts them."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # offering them is the point
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


async def handshake(host: str, port: int, ctx: ssl.SSLContext, *, timeout_s: float) -> Handshake:
    """A TLS handshake: the TCP connect, then TLS, each within `timeout_s`.

    Two steps, so a port that accepts TCP but never answers TLS (plain HTTP, Ollama
    itself) reads as a TLS timeout, not as a connect that timed out.
    """
    with network_step(Phase.CONNECT, f"TLS handshake with {host}:{port}") as step:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except TimeoutError:
            raise PhaseTimeout(Phase.CONNECT, f"no TCP connect within {timeout_s:g} s") from None
        step.phase = Phase.TLS
        try:
            await asyncio.wait_for(writer.start_tls(ctx, server_hostname=host), timeout_s)
        except BaseException as exc:
            # abort, not close: a close would wait (30 s) for a TLS goodbye that never comes
            writer.transport.abort()
            if isinstance(exc, TimeoutError):
                raise PhaseTimeout(
                    Phase.TLS, f"TCP connected, but no TLS handshake within {timeout_s:g} s"
                ) from None
            raise
        try:
            return _facts(writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


def _facts(writer: asyncio.StreamWriter) -> Handshake:
    sslobj: ssl.SSLObject = writer.get_extra_info("ssl_object")
    cipher = sslobj.cipher()
    return Handshake(
        version=sslobj.version() or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        alpn=sslobj.selected_alpn_protocol(),
        leaf_der=sslobj.getpeercert(binary_form=True) or b"",
    )


def _handshake_failure(exc: Exception) -> Finding:
    # asyncio reports a peer hanging up on the ClientHello as a bare reset: that is a TLS
    # problem (often a server that speaks only old protocols), not a refused connection.
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError):
        return fail(
            FailureClass.TLS_PROTOCOL,
            "TLS handshake: the server closed the connection during the handshake",
        )
    return classify_exception(exc, action="TLS handshake")


async def _legacy_findings(host: str, port: int, timeout_s: float) -> tuple[Finding, str | None]:
    try:
        legacy = await handshake(host, port, _legacy_context(), timeout_s=timeout_s)
    except (OSError, ssl.SSLError, TimeoutError):
        return ok("TLS 1.0 and 1.1 refused"), None
    return (
        fail(
            FailureClass.TLS_PROTOCOL,
            f"accepts {legacy.version.replace('v', ' ')}, a deprecated protocol",
            "allow only TLS 1.2 and 1.3 (Caddy does by default; check the `protocols` option)",
        ),
        legacy.version,
    )


async def _redirect_finding(ctx: ProbeContext, http_url: str) -> Finding:
    try:
        status, location = await plain_http_status(
            http_url, timeout_s=ctx.settings.connect_timeout_s
        )
    except Exception as exc:
        found = classify_exception(exc, action=f"GET {http_url}")
        return warn(FailureClass.TLS_PROTOCOL, f"no HTTP->HTTPS redirect: {found.message}")
    if status in REDIRECT_CODES and location.startswith("https://"):
        return ok(f"HTTP redirects to HTTPS ({status})")
    return warn(
        FailureClass.TLS_PROTOCOL,
        f"{http_url} answers {status} without a redirect to HTTPS",
        "serve plain HTTP only as a redirect to HTTPS (Caddy does this by default)",
    )


async def _hsts_finding(ctx: ProbeContext) -> Finding:
    try:
        response = await ctx.get("/api/version")  # usually already fetched by connectivity
    except Exception as exc:
        return classify_exception(exc, action="GET /api/version")
    hsts = response.headers.get("strict-transport-security", "")
    if "max-age=" in hsts and not hsts.replace(" ", "").startswith("max-age=0"):
        return ok(f"HSTS: {hsts}")
    return warn(
        FailureClass.TLS_PROTOCOL,
        "no Strict-Transport-Security header",
        'add `header Strict-Transport-Security "max-age=31536000"` to the Caddy site',
    )


async def probe_tls(ctx: ProbeContext) -> CheckResult:
    watch = Stopwatch(ctx, "tls")
    parts = urlsplit(ctx.target.url)
    host, port = parts.hostname or "", parts.port or 443
    policy = ctx.target.tls
    timeout = ctx.settings.connect_timeout_s
    details: dict[str, Any] = {}
    findings: list[Finding] = []
    verified = True
    try:
        shake = await handshake(host, port, probe_context(policy.ca_file), timeout_s=timeout)
    except ssl.SSLCertVerificationError as err:
        verified = False
        findings.append(classify_tls_verify_error(err))
        try:
            shake = await handshake(host, port, _inspect_context(), timeout_s=timeout)
        except Exception as exc:
            findings.append(_handshake_failure(exc))
            return watch.result(findings, details)
    except Exception as exc:
        return watch.result([_handshake_failure(exc)], details)

    details.update(protocol=shake.version, cipher=shake.cipher, alpn=shake.alpn)
    negotiated = f"{shake.version} {shake.cipher}, ALPN {shake.alpn or 'none'}"
    if shake.version not in ("TLSv1.2", "TLSv1.3"):
        findings.append(fail(FailureClass.TLS_PROTOCOL, f"negotiated {negotiated}"))
    elif verified:
        # first, so an all-ok check is summed up by what matters most
        findings.insert(0, ok(f"{negotiated}; chain trusted for {host}"))
    else:
        findings.append(ok(negotiated))
    # here, not at the top: cryptography costs 8 MB, and a monitor of plain-http targets
    # (Ollama on loopback) never needs it
    from ollama_fleet.checks.certinfo import cert_facts, cert_findings

    now = dt.datetime.now(dt.UTC)
    try:
        facts = cert_facts(shake.leaf_der)
    except ValueError:
        findings.append(fail(FailureClass.TLS_PROTOCOL, "the certificate cannot be parsed"))
    else:
        details["certificate"] = facts.as_details(now=now)
        verify_class = None if verified else findings[0].failure_class
        for finding in cert_findings(facts, policy=policy, now=now):
            if verify_class is FailureClass.TLS_EXPIRED and finding.failure_class is verify_class:
                continue  # the failed verification already reported the validity window
            findings.append(finding)
    legacy, legacy_version = await _legacy_findings(host, port, timeout)
    details["legacy_protocol_accepted"] = legacy_version
    findings.append(legacy)
    http_url = policy.http_url or (f"http://{host}/" if port == 443 else None)
    if http_url is not None:
        findings.append(await _redirect_finding(ctx, http_url))
    if verified and policy.require_hsts:
        findings.append(await _hsts_finding(ctx))
    return watch.result(findings, details)
