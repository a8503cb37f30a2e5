"""The gateway's own catalogue answers: /api/version, /api/tags, /api/ps and /v1/models.

They are merged from the healthy nodes' catalogues (health.py keeps them) and show only the
models the key may use; /api/version is the lowest version among the healthy nodes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ollama_fleet.gateway import shapes
from ollama_fleet.gateway.asgi import Refused
from ollama_fleet.gateway.keys import AuthError, RouteKind, authorize, normalise_model
from ollama_fleet.gateway.nodes import NodeState
from ollama_fleet.gateway.proxy import NO_NODE_RETRY_AFTER_S
from ollama_fleet.gateway.routes import Action, Api
from ollama_fleet.gateway.settings import KeySpec

CATALOG = frozenset({Action.TAGS, Action.PS, Action.MODELS, Action.MODEL, Action.VERSION})

Entries = Sequence[Mapping[str, Any]]


def catalog(
    action: Action,
    param: str | None,
    key: KeySpec,
    *,
    nodes: Sequence[NodeState],
    tags: Mapping[str, Entries],
    ps: Mapping[str, Entries],
) -> dict[str, Any]:
    """/api/version, /api/tags, /api/ps, /v1/models and /v1/models/{name} from the
    healthy nodes' catalogues (only the models the key may use)."""
    healthy = [s for s in nodes if s.healthy]
    if action is Action.VERSION:
        versions = sorted((s.version for s in healthy if s.version), key=_version_key)
        if not versions:
            retry = (("Retry-After", str(NO_NODE_RETRY_AFTER_S)),)
            raise Refused(503, "no healthy node", outcome="no_node", headers=retry)
        return {"version": versions[0]}
    names = [s.name for s in healthy]
    if action is Action.PS:
        running = shapes.merge_ps({n: ps.get(n, []) for n in names})
        return {"models": _allowed(running, key)}
    merged = _allowed(shapes.merge_tags({n: tags.get(n, []) for n in names}), key)
    if action is Action.TAGS:
        return {"models": merged}
    listing = shapes.openai_models(merged)
    if action is Action.MODELS:
        return listing
    assert param is not None
    authorize(key, route=RouteKind.SHOW, model=param)
    wanted = normalise_model(param)
    entry = next((m for m in listing["data"] if normalise_model(m["id"]) == wanted), None)
    if entry is None:
        message = not_found(api="openai", model=param)
        raise Refused(404, message, outcome="no_model", code="model_not_found")
    return dict(entry)


def not_found(*, api: Api, model: str) -> str:
    """The message Ollama (or OpenAI) gives for a model it does not have."""
    if api == "openai":
        return f"The model '{model}' does not exist"
    return f'model "{model}" not found, try pulling it first'


def _allowed(entries: list[dict[str, Any]], key: KeySpec) -> list[dict[str, Any]]:
    """The entries whose model the key may use."""
    kept = []
    for entry in entries:
        name = entry.get("name") or entry.get("model")
        try:
            authorize(key, route=RouteKind.SHOW, model=str(name))
        except AuthError:
            continue
        kept.append(entry)
    return kept


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-", 1)[0]))
