"""API keys: making them, checking a request's key against the stored digests, and permissions.

Only a key's SHA-256 is ever held; the key a client sends is hashed, looked up and confirmed with
a constant-time comparison. Messages never contain the key.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType

from ollama_fleet.errors import FleetError
from ollama_fleet.gateway.settings import KeySpec, Role

KEY_PREFIX = "ofk_"
MISSING_KEY = "missing API key: send Authorization: Bearer <key>"
INVALID_KEY = "invalid API key"
EXPIRED_KEY = "API key expired"


class AuthError(FleetError):
    """A request's key is missing, wrong or expired (401), or may not do this (403)."""

    def __init__(self, *, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RouteKind(enum.Enum):
    """What a request does, as far as permissions go."""

    LIST = "list"  # /api/tags, /api/ps, /v1/models, /api/version
    SHOW = "show"  # /api/show, /v1/models/{model}
    GENERATE = "generate"  # chat, generate, embeddings, completions
    ADMIN = "admin"  # /admin/*


ROLE_ROUTES: Mapping[Role, frozenset[RouteKind]] = MappingProxyType(
    {
        Role.READONLY: frozenset({RouteKind.LIST, RouteKind.SHOW}),
        Role.USER: frozenset({RouteKind.LIST, RouteKind.SHOW, RouteKind.GENERATE}),
        Role.ADMIN: frozenset(RouteKind),
    }
)


def hash_key(key: str) -> str:
    """The SHA-256 of a key, as 64 lowercase hex digits (what gateway.yml stores)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key: "ofk_" and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def normalise_model(name: str) -> str:
    """A model name as Ollama treats it: lowercase, ":latest" when it has no tag."""
    lowered = name.strip().lower()
    if ":" not in lowered.rsplit("/", 1)[-1]:
        lowered += ":latest"
    return lowered


class Authenticator:
    """Finds the key a request carries among the configured keys."""

    def __init__(self, keys: Sequence[KeySpec]) -> None:
        self._by_digest: dict[str, KeySpec] = {_digest_of(spec): spec for spec in keys}

    def authenticate(self, authorization_header: str | None, *, now: datetime) -> KeySpec:
        """The key behind `Authorization: Bearer <key>`, or AuthError(401)."""
        key = _bearer(authorization_header)
        if key is None:
            raise AuthError(status=401, message=MISSING_KEY)
        digest = hash_key(key)
        spec = self._by_digest.get(digest)
        if spec is None or not hmac.compare_digest(_digest_of(spec), digest):
            raise AuthError(status=401, message=INVALID_KEY)
        if spec.expires is not None and spec.expires <= now:
            raise AuthError(status=401, message=EXPIRED_KEY)
        return spec


def authorize(key: KeySpec, *, route: RouteKind, model: str | None) -> None:
    """Raise AuthError(403) unless the key's role allows the route and a glob allows the model."""
    if route not in ROLE_ROUTES[key.role]:
        raise AuthError(
            status=403,
            message=f"key {key.name!r} (role {key.role.value}) may not use {route.value} routes",
        )
    if model is None:
        return
    names = {model, normalise_model(model)}
    for glob in key.models:
        patterns = {glob, normalise_model(glob)}
        if any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns):
            return
    raise AuthError(status=403, message=f"key {key.name!r} may not use model {model!r}")


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def _digest_of(spec: KeySpec) -> str:
    digest = spec.sha256.strip().lower()
    return digest.removeprefix("sha256:")
