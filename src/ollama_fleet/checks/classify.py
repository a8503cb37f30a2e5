"""Turn exceptions and HTTP answers into findings with a failure class and a hint (pure)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterable, Iterator

import httpx

from ollama_fleet.checks.http import AnswerTooLarge, Phase, PhaseTimeout, timeout_phase
from ollama_fleet.checks.model import FailureClass, Finding, Threshold, fail, warn

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


NO_API_HINT = (
    "nothing at this URL speaks Ollama's API: check the URL's path (public_url is the base "
    "URL, without /api) and what the proxy routes there"
)


# OpenSSL's words when an https:// URL reaches a server that answers in plain HTTP
_PLAIN_HTTP_REASONS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"})
PLAIN_HTTP_HINT = (
    "the URL says https:// but this port speaks plain HTTP (Ollama itself, or a proxy's "
    "HTTP port): use http:// for it, or the proxy's TLS port (443)"
)


def model_missing_hint(names: Iterable[str]) -> str:
    """How to get the named models onto the host, with this tool and by hand."""
    models = " ".join(names)
    return (
        f"list them in required_models and run `ollama-fleet deploy INVENTORY --roles models` "
        f"(it pulls required_models), or run `ollama pull {models}` on the host"
    )


def timeout_class(phase: Phase) -> FailureClass:
    """The class of a timeout in `phase`: connect, TLS handshake, or the answer."""
    if phase is Phase.CONNECT:
        return FailureClass.CONNECT_TIMEOUT
    if phase is Phase.TLS:
        return FailureClass.TLS_TIMEOUT
    return FailureClass.READ_TIMEOUT


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
    if isinstance(exc, PhaseTimeout):  # a probe's own step: it says what timed out
        return fail(timeout_class(exc.phase), f"{action}: {exc}")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        phase = timeout_phase(exc)
        if phase is None and isinstance(exc, httpx.ConnectTimeout):
            phase = Phase.CONNECT
        if phase is Phase.TLS:
            return fail(
                FailureClass.TLS_TIMEOUT,
                f"{action}: TCP connected, but no TLS handshake came back in time",
            )
        if phase is Phase.CONNECT:
            return fail(FailureClass.CONNECT_TIMEOUT, f"{action}: TCP connect timed out")
        if phase is Phase.QUEUED:
            return fail(FailureClass.READ_TIMEOUT, f"{action}: no free connection in time")
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
            if getattr(cause, "reason", None) in _PLAIN_HTTP_REASONS:
                return fail(
                    FailureClass.TLS_PROTOCOL,
                    f"{action}: TLS handshake failed: the port answers plain HTTP, not TLS",
                    PLAIN_HTTP_HINT,
                )
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


def ollama_error(body: bytes) -> str | None:
    """The `error` string of Ollama's own JSON error body, `{"error": "..."}`; else None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, str) else None


def classify_status(status: int, body: bytes, *, action: str, model: str | None = None) -> Finding:
    """A failure finding for a non-2xx HTTP answer; `model` is set on model endpoints.

    A 404 is model_missing only when Ollama itself says so (`{"error": "model \"x\" not
    found, ..."}` on a model endpoint); any other 404 means the URL leads to no Ollama API.
    """
    text = error_text(body)
    where = f"{action}: HTTP {status}"
    if status == 401:
        return fail(FailureClass.AUTH, f"{where} unauthorized ({text})")
    if status == 403:
        if not body.strip():
            return fail(FailureClass.AUTH, f"{where} with an empty body", HOST_HEADER_HINT)
        return fail(FailureClass.AUTH, f"{where} forbidden ({text})")
    if status == 404:
        said = ollama_error(body)
        if model is not None and said is not None and "not found" in said.lower():
            return fail(FailureClass.MODEL_MISSING, f"{where}: {text}", model_missing_hint([model]))
        return fail(
            FailureClass.BAD_RESPONSE, f"{where} ({text}): no Ollama API at this URL", NO_API_HINT
        )
    if status in (429, 503):
        return fail(FailureClass.OVERLOAD, f"{where} ({text})")
    if status >= 500:
        return fail(FailureClass.SERVER_ERROR, f"{where} ({text})")
    return fail(FailureClass.BAD_RESPONSE, f"{where} ({text})")


def classify_stream_error(text: str, *, action: str, model: str | None) -> Finding:
    """An `{"error": ...}` line inside a 200 NDJSON stream."""
    if model is not None and "not found" in text.lower():
        return fail(
            FailureClass.MODEL_MISSING,
            f"{action}: error in stream: {text[:200]}",
            model_missing_hint([model]),
        )
    return fail(FailureClass.SERVER_ERROR, f"{action}: error in stream: {text[:200]}")


def judge_time(what: str, ms: float | None, threshold: Threshold) -> Finding | None:
    """A `slow` finding when `ms` reaches the threshold's warn or fail level; else None.

    `what` reads before the value: "first token after" -> "first token after 3012 ms
    (warn at 2000 ms)".
    """
    if ms is None:
        return None
    if ms >= threshold.fail:
        return fail(FailureClass.SLOW, f"{what} {ms:.0f} ms (fail at {threshold.fail:g} ms)")
    if ms >= threshold.warn:
        return warn(FailureClass.SLOW, f"{what} {ms:.0f} ms (warn at {threshold.warn:g} ms)")
    return None


def judge_rate(rate: float | None, threshold: Threshold) -> Finding | None:
    """A `slow` finding when tokens/s falls below the threshold's warn or fail level."""
    if rate is None:
        return None
    if rate < threshold.fail:
        return fail(
            FailureClass.SLOW, f"{rate:g} tokens/s (fail below {threshold.fail:g} tokens/s)"
        )
    if rate < threshold.warn:
        return warn(
            FailureClass.SLOW, f"{rate:g} tokens/s (warn below {threshold.warn:g} tokens/s)"
        )
    return None
