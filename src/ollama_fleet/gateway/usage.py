"""Token usage and first-token time read from an answer's bytes as they stream by (pure).

One scanner serves NDJSON (native streams), SSE (/v1 streams) and plain JSON bodies: it looks
for the keys Ollama and OpenAI report usage in, `prompt_eval_count` + `eval_count` and
`usage.prompt_tokens` + `usage.completion_tokens`, and for the first non-empty `content`,
`response` or `thinking` string. It never parses or keeps the text: it holds the last
`_TAIL` bytes of the previous chunk so a key split between chunks is still found, whatever
the split. A key can only be a real key when it follows `{` or `,`: inside a JSON string its
quotes are escaped (`\\"`), so prompt or answer text cannot fake a count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COUNT = re.compile(
    rb'[{,]\s*"(prompt_eval_count|eval_count|prompt_tokens|completion_tokens)"\s*:\s*(\d+)'
)
_CONTENT = re.compile(rb'[{,]\s*"(?:content|response|thinking)"\s*:\s*"[^"]')
_TAIL = 96  # longer than any match above with the whitespace a JSON encoder writes

_IN = {b"prompt_eval_count": True, b"prompt_tokens": True}


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What an answer reported: tokens in and out (None when it said nothing) and timings."""

    tokens_in: int | None
    tokens_out: int | None
    first_byte_at: float | None  # when the first body byte came
    first_token_at: float | None  # when the first non-empty content came
    bytes: int


class UsageScanner:
    """Feed it each chunk of a body with the time it came; `usage()` at any point."""

    def __init__(self) -> None:
        self._tail = b""
        self._tokens_in: int | None = None
        self._tokens_out: int | None = None
        self._first_byte_at: float | None = None
        self._first_token_at: float | None = None
        self._bytes = 0

    def feed(self, chunk: bytes, *, now: float) -> None:
        """Scan one chunk (split anywhere) that arrived at `now`."""
        if not chunk:
            return
        self._bytes += len(chunk)
        if self._first_byte_at is None:
            self._first_byte_at = now
        window = self._tail + chunk
        # the tail was scanned already: a match ending inside it is seen again with the same
        # value, and a number cut at the window's end is read whole on the next feed
        for found in _COUNT.finditer(window):
            value = int(found.group(2))
            if _IN.get(found.group(1), False):
                self._tokens_in = value
            else:
                self._tokens_out = value
        if self._first_token_at is None and _CONTENT.search(window):
            self._first_token_at = now
        self._tail = window[-_TAIL:]

    def usage(self) -> Usage:
        """The counts and times seen so far (the last count of each kind wins)."""
        return Usage(
            tokens_in=self._tokens_in,
            tokens_out=self._tokens_out,
            first_byte_at=self._first_byte_at,
            first_token_at=self._first_token_at,
            bytes=self._bytes,
        )
