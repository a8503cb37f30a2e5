"""The gateway's route table: every path it answers, what it does, the permission it needs.

A route with `kind` None needs no key (/, /health, /ready, /metrics); every other route
authenticates first. The table is data so that tests can walk it: a new route cannot skip
authentication unnoticed. Paths are exact, or end in `{name}` / `{rest}` (one segment, or the
rest of the path with its slashes, as model names have).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from ollama_fleet.gateway.keys import RouteKind

Api = Literal["ollama", "openai", "sessions"]  # sessions: problem+json errors


class Action(enum.Enum):
    """What the gateway does with a request on a route."""

    ROOT = "root"
    HEALTH = "health"
    READY = "ready"
    METRICS = "metrics"
    RELAY = "relay"  # to a node that has the model (balanced, limited)
    VERSION = "version"
    TAGS = "tags"
    PS = "ps"
    MODELS = "models"
    MODEL = "model"
    WRITE_REFUSED = "write_refused"
    ADMIN_NODES = "admin_nodes"
    ADMIN_DRAIN = "admin_drain"
    ADMIN_UNDRAIN = "admin_undrain"
    ADMIN_PULL = "admin_pull"
    ADMIN_DELETE = "admin_delete"
    ADMIN_USAGE = "admin_usage"
    SESSIONS_CHAT = "sessions_chat"
    SESSIONS_LIST = "sessions_list"
    SESSIONS_MESSAGES = "sessions_messages"
    SESSIONS_RENAME = "sessions_rename"
    SESSIONS_DELETE = "sessions_delete"
    CHAT_PAGE = "chat_page"


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One entry of the table; `example` is a concrete path that matches it (for tests)."""

    methods: frozenset[str]
    path: str
    action: Action
    kind: RouteKind | None
    api: Api = "ollama"
    limited: bool = False  # rate limits and per-key concurrency apply

    @property
    def example(self) -> str:
        return self.path.replace("{name}", "gpu-1").replace("{rest}", "llama3.2:1b")


def _route(
    methods: str,
    path: str,
    action: Action,
    kind: RouteKind | None,
    *,
    api: Api = "ollama",
    limited: bool = False,
) -> Route:
    return Route(
        methods=frozenset(methods.split()),
        path=path,
        action=action,
        kind=kind,
        api=api,
        limited=limited,
    )


_GEN = RouteKind.GENERATE
_ADMIN = RouteKind.ADMIN
ROUTES: tuple[Route, ...] = (
    _route("GET HEAD", "/", Action.ROOT, None),
    _route("GET HEAD", "/health", Action.HEALTH, None),
    _route("GET HEAD", "/ready", Action.READY, None),
    _route("GET", "/metrics", Action.METRICS, None),
    *(
        _route("POST", f"/api/{name}", Action.RELAY, _GEN, limited=True)
        for name in ("chat", "generate", "embed", "embeddings")
    ),
    _route("POST", "/api/show", Action.RELAY, RouteKind.SHOW),
    _route("GET HEAD", "/api/version", Action.VERSION, RouteKind.LIST),
    _route("GET HEAD", "/api/tags", Action.TAGS, RouteKind.LIST),
    _route("GET HEAD", "/api/ps", Action.PS, RouteKind.LIST),
    *(
        _route("POST", f"/v1/{name}", Action.RELAY, _GEN, api="openai", limited=True)
        for name in ("chat/completions", "completions", "embeddings")
    ),
    _route("GET", "/v1/models", Action.MODELS, RouteKind.LIST, api="openai"),
    _route("GET", "/v1/models/{rest}", Action.MODEL, RouteKind.SHOW, api="openai"),
    *(
        _route("POST", f"/api/{name}", Action.WRITE_REFUSED, _ADMIN)
        for name in ("pull", "push", "create", "copy")
    ),
    _route("DELETE", "/api/delete", Action.WRITE_REFUSED, _ADMIN),
    _route("POST HEAD", "/api/blobs/{rest}", Action.WRITE_REFUSED, _ADMIN),
    _route("GET", "/admin/nodes", Action.ADMIN_NODES, _ADMIN),
    _route("POST", "/admin/nodes/{name}/drain", Action.ADMIN_DRAIN, _ADMIN),
    _route("POST", "/admin/nodes/{name}/undrain", Action.ADMIN_UNDRAIN, _ADMIN),
    _route("POST", "/admin/pull", Action.ADMIN_PULL, _ADMIN),
    _route("DELETE", "/admin/models", Action.ADMIN_DELETE, _ADMIN),
    _route("GET", "/admin/usage", Action.ADMIN_USAGE, _ADMIN),
    _route("POST", "/v1/chat", Action.SESSIONS_CHAT, _GEN, api="sessions", limited=True),
    _route("GET", "/v1/sessions", Action.SESSIONS_LIST, _GEN, api="sessions"),
    _route("GET", "/v1/sessions/{name}/messages", Action.SESSIONS_MESSAGES, _GEN, api="sessions"),
    _route("PATCH", "/v1/sessions/{name}", Action.SESSIONS_RENAME, _GEN, api="sessions"),
    _route("DELETE", "/v1/sessions/{name}", Action.SESSIONS_DELETE, _GEN, api="sessions"),
    _route("GET HEAD", "/chat", Action.CHAT_PAGE, None),
    _route("GET HEAD", "/chat/{name}", Action.CHAT_PAGE, None),
)
SESSION_ACTIONS = frozenset(
    {
        Action.SESSIONS_CHAT,
        Action.SESSIONS_LIST,
        Action.SESSIONS_MESSAGES,
        Action.SESSIONS_RENAME,
        Action.SESSIONS_DELETE,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """The route a request found, and the path parameter it carried (or None)."""

    route: Route
    param: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WrongMethod:
    """The path is known but not for this method: 405 with these methods allowed."""

    allowed: frozenset[str]


def api_of(path: str) -> Api:
    """Which API's error shape a path's answers use (/v1/chat and /v1/sessions problem+json,
    the rest of /v1 OpenAI's, everything else Ollama's)."""
    if path == "/v1/chat" or path == "/v1/sessions" or path.startswith("/v1/sessions/"):
        return "sessions"
    return "openai" if path == "/v1" or path.startswith("/v1/") else "ollama"


def find(method: str, path: str) -> Match | WrongMethod | None:
    """The route for method and path; WrongMethod when only the method is wrong; else None."""
    allowed: set[str] = set()
    for route in ROUTES:
        param = _match_path(route.path, path)
        if param is False:
            continue
        if method in route.methods:
            return Match(route=route, param=param if isinstance(param, str) else None)
        allowed |= route.methods
    return WrongMethod(allowed=frozenset(allowed)) if allowed else None


def _match_path(pattern: str, path: str) -> str | bool:
    """False: no match; True: an exact match; a string: the value of its parameter."""
    if "{" not in pattern:
        return pattern == path
    head, _, tail = pattern.partition("{")
    name, _, suffix = tail.partition("}")
    if not path.startswith(head) or not path.endswith(suffix):
        return False
    value = path[len(head) : len(path) - len(suffix)]
    if not value or (name == "name" and "/" in value):
        return False
    return value
