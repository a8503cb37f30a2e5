"""The gateway's chat page: one HTML page, its script and style, under a strict CSP.

The page talks only to the gateway's own API (/v1/models, /v1/sessions, /v1/chat) with the key
the user types in; the key stays in the tab's sessionStorage. `asset(path)` is everything the
gateway needs: it answers with the body, its content type and the headers to send with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import jinja2

__all__ = ["CONTENT_SECURITY_POLICY", "PATHS", "Asset", "asset"]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
)
_PAGE = "/chat"
_SCRIPT = "/chat/app.js"
_STYLE = "/chat/app.css"
PATHS = (_PAGE, _SCRIPT, _STYLE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """One file of the page. `headers` are the security and caching headers; the content type is
    `content_type`, not repeated in `headers`."""

    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]


def asset(path: str) -> Asset | None:
    """The asset served at `path` ("/chat", "/chat/app.js", "/chat/app.css"); None for any other."""
    return _assets().get(path)


@functools.cache
def _assets() -> dict[str, Asset]:
    files = resources.files(__package__)
    template = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    ).from_string(files.joinpath("chat.html.j2").read_text(encoding="utf-8"))
    page = template.render(title="ollama-fleet chat", script=_SCRIPT, style=_STYLE)
    return {
        _PAGE: Asset(body=page.encode(), content_type="text/html; charset=utf-8", headers=_HEADERS),
        _SCRIPT: Asset(
            body=files.joinpath("app.js").read_bytes(),
            content_type="text/javascript; charset=utf-8",
            headers=_HEADERS,
        ),
        _STYLE: Asset(
            body=files.joinpath("app.css").read_bytes(),
            content_type="text/css; charset=utf-8",
            headers=_HEADERS,
        ),
    }
