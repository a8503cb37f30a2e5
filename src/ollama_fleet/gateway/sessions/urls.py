"""Database and Redis URLs for messages: the password (and a user name) never shown."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def safe_url(url: str) -> str:
    """`url` with any userinfo masked ("postgresql://***@db:5432/fleet"); query dropped too
    (libpq and redis-py take passwords there as well)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if not parts.scheme:
        return url if "@" not in url else "<a URL with credentials>"
    if "@" not in parts.netloc:
        return url.partition("?")[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, "", ""))
