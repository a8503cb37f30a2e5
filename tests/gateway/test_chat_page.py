"""The chat page's assets: what is served, its security headers, nothing from elsewhere."""

from __future__ import annotations

import re

import pytest

from ollama_fleet.gateway.chat_page import CONTENT_SECURITY_POLICY, PATHS, Asset, asset

TYPES = {
    "/chat": "text/html; charset=utf-8",
    "/chat/app.js": "text/javascript; charset=utf-8",
    "/chat/app.css": "text/css; charset=utf-8",
}
# a scheme-qualified or protocol-relative URL anywhere: the page loads and talks to nothing else
EXTERNAL = re.compile(
    rb"(?i)\b(?:https?|wss?|ftp):|(?:src|href|action)\s*=\s*[\"']?//|url\(\s*[\"']?//"
)


def served(path: str) -> Asset:
    found = asset(path)
    assert found is not None, path
    return found


def test_the_three_paths_are_served_with_their_types() -> None:
    assert set(PATHS) == set(TYPES)
    for path, content_type in TYPES.items():
        assert served(path).content_type == content_type
        assert served(path).body


@pytest.mark.parametrize(
    "path", ["/chat/", "/chat/chat.html.j2", "/chat/__init__.py", "/chat/../app.js", "/", ""]
)
def test_any_other_path_is_none(path: str) -> None:
    assert asset(path) is None


@pytest.mark.parametrize("path", sorted(TYPES))
def test_security_and_cache_headers(path: str) -> None:
    headers = dict(served(path).headers)
    assert len(headers) == len(served(path).headers), "a header appears twice"
    assert headers == {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }


def test_the_policy_allows_only_this_origin() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "connect-src": "'self'",
        "img-src": "'self' data:",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }


@pytest.mark.parametrize("path", sorted(TYPES))
def test_no_asset_names_another_origin(path: str) -> None:
    assert EXTERNAL.search(served(path).body) is None


def test_the_external_url_check_catches_urls() -> None:
    for sample in (b'<script src="https://cdn.example/x.js">', b"src=//cdn.example/a", b"wss://x"):
        assert EXTERNAL.search(sample), sample


def test_the_page_loads_its_own_script_and_style_and_nothing_inline() -> None:
    page = served("/chat").body.decode()
    assert '<script src="/chat/app.js" defer></script>' in page
    assert '<link rel="stylesheet" href="/chat/app.css">' in page
    # the policy blocks inline code and style: the page must not need them
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert "<style" not in page
    assert re.search(r"\sstyle=|\son[a-z]+=", page) is None
    assert "{{" not in page and "{%" not in page


def test_the_script_puts_data_in_as_text_and_keeps_the_key_in_the_tab() -> None:
    script = served("/chat/app.js").body.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    for store in ("localStorage", "document.cookie", "indexedDB"):
        assert store not in script, store
    assert "sessionStorage" in script
    assert "EventSource" not in script  # it cannot send the Authorization header
