"""Secrets out of text: every decrypted vault value becomes "***" before anything is shown."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "***"
# Shorter values are not looked for: in a whole-file vault every string counts as secret, and
# replacing each "580" or "true" everywhere would make the output unreadable while hiding
# nothing (a secret that short is no secret). docs/vault.md says so.
MIN_SECRET_LENGTH = 8

Redact = Callable[[str], str]


def redactor(secrets: Iterable[str]) -> Redact:
    """A function replacing each secret value, whole, wherever it appears in a text.

    One pass of one alternation, longest value first, so no part of a longer secret is left
    and a fragment of a value is never taken for the value.
    """
    ordered = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    if not ordered:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(secret) for secret in ordered))

    def redact(text: str) -> str:
        return pattern.sub(REDACTED, text)

    return redact


def escaped_forms(secrets: Iterable[str]) -> set[str]:
    """Each secret as a rendered report may spell it: as is, HTML/XML-escaped, JSON-escaped.

    For text that is redacted after rendering (a report file), where `&` became `&amp;` or
    a quote `\\"`, so the plain value alone would no longer be found.
    """
    forms = set()
    for secret in secrets:
        forms |= {
            secret,
            html.escape(secret, quote=True),
            html.escape(secret, quote=False),
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
        }
    return forms


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
