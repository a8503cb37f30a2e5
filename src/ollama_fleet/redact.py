"""Secrets out of text: every decrypted vault value becomes "***" before anything is shown."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "***"

Redact = Callable[[str], str]


def redactor(secrets: Iterable[str]) -> Redact:
    """A function replacing every secret in a text (longest first, so no part of one is left)."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in ordered:
            text = text.replace(secret, REDACTED)
        return text

    return redact


def redact_strings(value: Any, redact: Redact) -> Any:
    """`value` (JSON-like) with every string redacted: before encoding, since JSON escapes
    (\\u00f6, \\") would hide a secret from a scan of the encoded text."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_strings(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_strings(v, redact) for v in value]
    return value
