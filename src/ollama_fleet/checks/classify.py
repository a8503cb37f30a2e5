"""Turn exceptions and HTTP answers into findings with a failure class and a hint (pure)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator

import httpx

from ollama_fleet.checks.http import AnswerTooLarge
from ollama_fleet.checks.model import FailureClass, Finding, fail

# OpenSSL's X509_V_ERR_* codes that ssl.SSLCertVerificationError carries in verify_code.
_CERT_HAS_EXPIRED = 10
_CERT_NOT_YET_VALID = 9
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64

HOST_HEADER_HINT = (
    "Ollama bound to 127.0.0.1 answers 403 to a Host header that is not local: the proxy in "
    "front must rewrite it (Caddy: `header_up Host localhost:11434`)"
)

WRITE_ENDPOINT_HINT = (
    "Ollama has no auth: its write endpoints (pull, push, delete, create, copy, blobs) must not "
    "pass the proxy. Refuse them with 403 in front of Ollama (the caddy role does, unless "
    "caddy_open_admin_endpoints is set), and keep Ollama itself bound to 127.0.0.1"
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify_tls_verify_error(err: ssl.SSLCertVerificationError) -> Finding:
    """A failed certificate verification: expired, not yet valid, wrong name or untrusted."""
    message = err.verify_message or str(err)
    code = err.verify_code
    if code == _CERT_HAS_EXPIRED:
        return fail(FailureClass.TLS_EXPIRED, f"certificate has expired ({message})")
    if code == _CERT_NOT_YET_VALID:
        return fail(
            FailureClass.TLS_EXPIRED,
            f"certificate is not valid yet ({message})",
            "the certificate's start date is in the future: check the clocks of the host "
            "and of the CA that issued it",
        )
    if code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH) or "mismatch" in message.lower():
        return fail(FailureClass.TLS_HOSTNAME, f"certificate does not match the name ({message})")
    return fail(FailureClass.TLS_UNTRUSTED, f"certificate is not trusted ({message})")


def classify_exception(exc: BaseException, *, action: str) -> Finding:
    """A failure finding for an exception raised while doing `action` (e.g. "GET /api/tags")."""
    if isinstance(exc, httpx.ConnectTimeout):
        return fail(FailureClass.CONNECT_TIMEOUT, f"{action}: TCP/TLS connect timed out")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return fail(FailureClass.READ_TIMEOUT, f"{action}: no complete answer in time")
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            return fail(FailureClass.DNS, f"{action}: name does not resolve ({cause.strerror})")
        if isinstance(cause, ConnectionRefusedError):
            return fail(FailureClass.REFUSED, f"{action}: connection refused")
        if isinstance(cause, ssl.SSLCertVerificationError):
            finding = classify_tls_verify_error(cause)
            return fail(
                finding.failure_class or FailureClass.TLS_UNTRUSTED,
                f"{action}: {finding.message}",
                finding.hint,
            )
        if isinstance(cause, ssl.SSLError):
            return fail(FailureClass.TLS_PROTOCOL, f"{action}: TLS handshake failed ({cause})")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return fail(FailureClass.BAD_RESPONSE, f"{action}: connection broken mid-answer ({exc})")
    if isinstance(exc, AnswerTooLarge):
        return fail(FailureClass.BAD_RESPONSE, f"{action}: {exc}")
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return fail(FailureClass.BAD_RESPONSE, f"{action}: answer is not valid JSON")
    if isinstance(exc, httpx.ConnectError | OSError):
        return fail(FailureClass.REFUSED, f"{action}: cannot connect ({exc or type(exc).__name__})")
    return fail(FailureClass.BAD_RESPONSE, f"{action}: {type(exc).__name__}: {exc}")


def error_text(body: bytes) -> str:
    """The `error` field of an Ollama JSON error body, or the start of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):  # OpenAI-style {"error": {"message": ...}}
            err = err.get("message")
        if isinstance(err, str):
            return err[:200]
    return body[:200].decode("utf-8", "replace").strip() or "(empty body)"


def classify_status(status: int, body: bytes, *, action: str, model: str | None = None) -> Finding:
    """A failure finding for a non-2xx HTTP answer; `model` is set on model endpoints."""
    text = error_text(body)
    where = f"{action}: HTTP {status}"
    if status == 401:
        return fail(FailureClass.AUTH, f"{where} unauthorized ({text})")
    if status == 403:
        if not body.strip():
            return fail(FailureClass.AUTH, f"{where} with an empty body", HOST_HEADER_HINT)
        return fail(FailureClass.AUTH, f"{where} forbidden ({text})")
    if status == 404 and model is not None:
        return fail(FailureClass.MODEL_MISSING, f"{where}: {text}")
    if status in (429, 503):
        return fail(FailureClass.OVERLOAD, f"{where} ({text})")
    if status >= 500:
        return fail(FailureClass.SERVER_ERROR, f"{where} ({text})")
    return fail(FailureClass.BAD_RESPONSE, f"{where} ({text})")


def classify_stream_error(text: str, *, action: str, model: str | None) -> Finding:
    """An `{"error": ...}` line inside a 200 NDJSON stream."""
    if model is not None and "not found" in text.lower():
        return fail(FailureClass.MODEL_MISSING, f"{action}: error in stream: {text[:200]}")
    return fail(FailureClass.SERVER_ERROR, f"{action}: error in stream: {text[:200]}")
