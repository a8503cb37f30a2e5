"""The gateway's own answers in Ollama's and OpenAI's shapes: errors and merged model lists.

Pure: bytes and dicts in, bytes and dicts out. Error bodies follow docs/gateway.md: /api/* and
/admin/* `{"error": "..."}`, /v1/* `{"error": {"message", "type", "param": null, "code"}}`.
Stream errors are what a stream that already started ends with: one NDJSON line or one SSE event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

Api = Literal["ollama", "openai"]

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def _dump(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def openai_error_type(status: int) -> str:
    """The OpenAI error `type` for an HTTP status (server_error for 5xx and anything unknown)."""
    return _OPENAI_TYPES.get(
        status, "invalid_request_error" if 400 <= status < 500 else "server_error"
    )


def ollama_error(message: str) -> bytes:
    """An Ollama-style error body: {"error": message}."""
    return _dump({"error": message})


def _openai_error_object(
    message: str, *, status: int, type: str | None, code: str | None
) -> dict[str, Any]:
    return {
        "message": message,
        "type": type if type is not None else openai_error_type(status),
        "param": None,
        "code": code,
    }


def openai_error(
    message: str, *, status: int, type: str | None = None, code: str | None = None
) -> bytes:
    """An OpenAI-style error body; `type` defaults to the one that matches `status`."""
    return _dump({"error": _openai_error_object(message, status=status, type=type, code=code)})


def error_body(api: Api, message: str, *, status: int, code: str | None = None) -> bytes:
    """The error body in the shape of the API the client called."""
    if api == "openai":
        return openai_error(message, status=status, code=code)
    return ollama_error(message)


def stream_error(api: Api, message: str, *, after: bytes = b"") -> bytes:
    """The last piece of a broken stream: an NDJSON error line (/api) or an SSE event (/v1).

    `after` is what was sent last (its final bytes are enough): when it stopped mid-line or
    mid-event, the piece starts by ending that line or event, so the error stands alone.
    """
    if api == "openai":
        error = _openai_error_object(message, status=502, type="server_error", code=None)
        return _joint_sse(after) + b"data: " + _dump({"error": error}) + b"\n\n"
    joint = b"\n" if after and not after.endswith(b"\n") else b""
    return joint + ollama_error(message) + b"\n"


def _joint_sse(after: bytes) -> bytes:
    if not after or after.endswith((b"\n\n", b"\r\r", b"\r\n\r\n")):
        return b""
    return b"\n" if after.endswith((b"\n", b"\r")) else b"\n\n"


def error_message(body: bytes) -> str | None:
    """The message of an Ollama (`{"error": "..."}`) or OpenAI (`{"error": {"message"}}`)
    error body; None when the body is neither."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else None


def _modified(entry: Mapping[str, Any]) -> datetime | None:
    value = entry.get("modified_at")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _newer(entry: Mapping[str, Any], than: Mapping[str, Any]) -> bool:
    mine, theirs = _modified(entry), _modified(than)
    return mine is not None and (theirs is None or mine > theirs)


def merge_tags(per_node: Mapping[str, Iterable[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One /api/tags list over all nodes: one entry per (name, digest), the newest modified_at.

    The same name with two digests (a node that pulled a newer build) stays as two entries, so
    a client can see the fleet is not in step. Newest first, as Ollama lists them.
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for node in sorted(per_node):
        for entry in per_node[node]:
            name, digest = entry.get("name"), entry.get("digest")
            if not isinstance(name, str):
                continue
            key = (name, digest if isinstance(digest, str) else "")
            if key not in merged or _newer(entry, merged[key]):
                merged[key] = dict(entry)
    entries = sorted(merged.values(), key=lambda e: str(e.get("name")))
    return sorted(entries, key=_sort_time, reverse=True)


def _sort_time(entry: Mapping[str, Any]) -> float:
    modified = _modified(entry)
    return modified.timestamp() if modified is not None else 0.0


def merge_ps(per_node: Mapping[str, Iterable[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One /api/ps list over all nodes; each entry says where it runs in `"node"`."""
    return [{**entry, "node": node} for node in sorted(per_node) for entry in per_node[node]]


def openai_models(merged_tags: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """GET /v1/models from merged /api/tags entries (one entry per name)."""
    data: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in merged_tags:
        name = entry.get("name")
        if not isinstance(name, str) or name in seen:
            continue
        seen.add(name)
        modified = _modified(entry)
        data.append(
            {
                "id": name,
                "object": "model",
                "created": int(modified.timestamp()) if modified is not None else 0,
                "owned_by": name.split("/", 1)[0] if "/" in name else "library",
            }
        )
    return {"object": "list", "data": data}
