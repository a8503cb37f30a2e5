"""Reads a relayed request's body as Ollama will: a JSON object and the one model it names.

Ollama decodes bodies with Go's encoding/json, which matches a key case-insensitively and
lets the last match win, so `{"model": "a", "Model": "b"}` runs model b. The gateway checks
the key's model globs against the model that will run, so it refuses a body with a key that
Ollama would also read as the model (another spelling, or the same key twice) rather than
guess which one wins. Only the top level matters: that is where Ollama reads the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ollama_fleet.errors import FleetError

SHOW_FIELDS = ("model", "name")  # /api/show: `name` is the older spelling, `model` wins
MODEL_FIELDS = ("model",)


class BadBody(FleetError, ValueError):
    """The body is not one the gateway relays; the message says why (one line)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestBody:
    """A relayed request's JSON object and the model it names."""

    payload: Mapping[str, Any]
    model: str


def read_request(body: bytes, *, fields: Sequence[str] = MODEL_FIELDS) -> RequestBody:
    """The body's object and model (the first of `fields` that is set); BadBody otherwise."""
    top: list[list[tuple[str, Any]]] = []

    def keep_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        top[:] = [pairs]  # objects close inner first: the last one made is the body itself
        return dict(pairs)

    try:
        payload = json.loads(body, object_pairs_hook=keep_pairs)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise BadBody("the body is not a JSON object")
    _check_keys([key for key, _ in top[0]], fields)
    named = next((payload[f] for f in fields if payload.get(f)), None)
    if not isinstance(named, str) or not named.strip():
        raise BadBody("model is required")
    return RequestBody(payload=payload, model=named)


def _check_keys(keys: Sequence[str], fields: Sequence[str]) -> None:
    folded = {_go_fold(field): field for field in fields}
    for field in fields:
        if keys.count(field) > 1:
            raise BadBody(f'the body has "{field}" more than once: send it once')
    for key in keys:
        meant = folded.get(_go_fold(key))
        if meant is not None and key != meant:
            raise BadBody(
                f'the body has "{key}", which Ollama reads as "{meant}": send "{meant}" once'
            )


def _go_fold(name: str) -> str:
    """A key as Go's encoding/json compares it: ASCII letters upper-cased, any other rune as
    unicode.ToUpper(unicode.ToLower(r)) (the Kelvin sign folds to K, the long s to S)."""
    return "".join(c.upper() if c.isascii() else c.lower().upper() for c in name)
