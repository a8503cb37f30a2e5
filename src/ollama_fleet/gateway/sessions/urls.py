"""Database and Redis URLs for messages: the password (and a user name) never shown."""

from __future__ import annotations

ENCODE = (
    "percent-encode / ? # @ : in the user name and password (%2F %3F %23 %40 %3A); "
    "the value is not shown"
)


def safe_url(url: str) -> str:
    """`url` with any userinfo masked ("postgresql://***@db:5432/fleet"); query dropped too
    (libpq and redis-py take passwords there as well). Everything between "://" and the
    last "@" is masked, so a password with an unencoded "/" or "?" cannot show either."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<a URL with credentials>" if "@" in url else url
    if scheme.lower() != "sqlite" and "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}://{rest.partition('?')[0].partition('#')[0]}"


def credentials_problem(url: str) -> str | None:
    """Why `url`'s user name or password would be misread (an unencoded / ? # before the
    last @ moves where the host starts), or None."""
    rest = url.partition("://")[2]
    if "@" not in rest:
        return None
    userinfo = rest.rpartition("@")[0]
    return ENCODE if any(c in userinfo for c in "/?#") else None
