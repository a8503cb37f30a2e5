"""Request bodies and refusals for the simulator (test double): defensive JSON reading, 4xx."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

JsonObject = dict[str, Any]


class ApiError(Exception):
    """A request the simulator refuses: the message becomes an error body with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class BadRequest(ApiError):
    """The client sent something unusable (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 400)


async def read_object(request: Request, *, required: bool = True) -> JsonObject:
    """The request body as a JSON object; BadRequest for empty, invalid or non-object bodies."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise BadRequest("missing request body")
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON in request body: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"cannot unmarshal {type(value).__name__} into a request object")
    return value


def opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    """An optional string field."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadRequest(f"{key} must be a string")


def model_name(obj: Mapping[str, Any], key: str = "model") -> str:
    """The required model name (Ollama also accepts the older "name" field)."""
    name = opt_str(obj, key) or opt_str(obj, "name")
    if not name or not name.strip():
        raise BadRequest("model is required")
    return name.strip()


def opt_bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    """An optional boolean field."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise BadRequest(f"{key} must be a boolean")


def opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    """An optional integer field (floats with an integral value are accepted)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{key} must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise BadRequest(f"{key} must be an integer")
    return int(value)


def opt_object(obj: Mapping[str, Any], key: str) -> JsonObject:
    """An optional nested object (empty when absent)."""
    value = obj.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise BadRequest(f"{key} must be an object")


def message_texts(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of each chat message; text parts of OpenAI content lists are joined."""
    messages = obj.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise BadRequest("messages must be a list")
    result: list[tuple[str, str]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object")
        role = opt_str(message, "role") or "user"
        result.append((role, _content_text(message.get("content"))))
    return result


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        if len(parts) != len(content) or any(not isinstance(p, str | None) for p in parts):
            raise BadRequest("invalid message format")
        return " ".join(p for p in parts if isinstance(p, str))
    raise BadRequest("invalid message content type")


Endpoint = Callable[[Request], Awaitable[Response]]


def ollama_endpoint(handler: Endpoint) -> Endpoint:
    """Wrap a handler so an ApiError becomes Ollama's {"error": message} answer."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)

    return wrapped
