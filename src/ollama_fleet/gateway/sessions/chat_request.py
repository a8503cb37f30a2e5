"""POST /v1/chat's body read into a ChatRequest, or a Problem naming the field at fault.

Pure. `options` are checked one by one and mapped onto Ollama's (`max_tokens` is its
`num_predict`); an unknown option is an error, not ignored, since a typo would silently change
nothing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ollama_fleet.gateway.sessions.problems import Problem

FIELDS = frozenset({"message", "session_id", "model", "stream", "system", "options"})
SESSION_ID = re.compile(r"[0-9a-f]{32}")
MAX_TITLE_CHARS = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """One turn: the user's message, where it goes and how the answer is made."""

    message: str
    session_id: str | None
    model: str | None  # None: the session's model (a new session needs one)
    stream: bool
    system: str | None
    options: dict[str, Any]  # Ollama's names


def _number(low: float, high: float | None = None) -> Any:
    def check(value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            return None
        return value

    return check


def _whole(low: int) -> Any:
    def check(value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return None
        return value

    return check


def _stop(value: Any) -> str | list[str] | None:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    return None


# name in the request -> (Ollama's name, check, what is expected)
OPTIONS: dict[str, tuple[str, Any, str]] = {
    "temperature": ("temperature", _number(0.0, 2.0), "a number from 0 to 2"),
    "top_p": ("top_p", _number(0.0, 1.0), "a number from 0 to 1"),
    "top_k": ("top_k", _whole(1), "a whole number of at least 1"),
    "seed": ("seed", _whole(0), "a whole number of at least 0"),
    "stop": ("stop", _stop, "a non-empty string or list of strings"),
    "max_tokens": ("num_predict", _whole(1), "a whole number of at least 1"),
    "num_ctx": ("num_ctx", _whole(1), "a whole number of at least 1"),
}


def parse_chat(body: bytes, *, max_message_chars: int) -> ChatRequest:
    """The request in `body`; Problem 400 (not JSON) or 422 (a field, named) otherwise."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Problem(400, "bad-json", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Problem(400, "bad-json", "the body must be a JSON object")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        expected = ", ".join(sorted(FIELDS))
        raise Problem(
            422, "invalid-field", f"unknown field (expected {expected})", field=unknown[0]
        )
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        raise Problem(422, "invalid-field", "message must be a non-empty string", field="message")
    storable(message, "message")
    if len(message) > max_message_chars:
        detail = f"message is {len(message)} characters; at most {max_message_chars}"
        raise Problem(422, "invalid-field", detail, field="message")
    return ChatRequest(
        message=message,
        session_id=_session_id(data.get("session_id")),
        model=_text(data, "model"),
        stream=_flag(data, "stream", default=True),
        system=_text(data, "system"),
        options=_options(data.get("options")),
    )


def storable(text: str, name: str) -> str:
    """`text` if a database can keep it as it is: no NUL character, no lone surrogate (JSON's
    \\ud800 escapes decode to one); else Problem 422 naming the field."""
    if "\x00" in text:
        raise Problem(422, "invalid-field", f"{name} must not contain NUL (\\u0000)", field=name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        detail = f"{name} is not valid Unicode (a lone surrogate such as \\ud800)"
        raise Problem(422, "invalid-field", detail, field=name) from None
    return text


def title_of(message: str) -> str:
    """A session's title from its first message: the first line, at most 60 characters."""
    line = " ".join(message.strip().split("\n", 1)[0].split())
    return line if len(line) <= MAX_TITLE_CHARS else line[: MAX_TITLE_CHARS - 1].rstrip() + "…"


def _session_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SESSION_ID.fullmatch(value):
        detail = "session_id must be a session's id (32 hex digits) as /v1/sessions lists it"
        raise Problem(422, "invalid-field", detail, field="session_id")
    return value


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Problem(422, "invalid-field", f"{name} must be a non-empty string", field=name)
    storable(value, name)
    return value.strip() if name == "model" else value


def _flag(data: dict[str, Any], name: str, *, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise Problem(422, "invalid-field", f"{name} must be true or false", field=name)
    return value


def _options(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Problem(422, "invalid-field", "options must be an object", field="options")
    found: dict[str, Any] = {}
    for name, given in value.items():
        if name not in OPTIONS:
            known = ", ".join(OPTIONS)
            detail = f"unknown option {name!r} (known: {known})"
            raise Problem(422, "invalid-field", detail, field=f"options.{name}")
        ollama_name, check, expected = OPTIONS[name]
        checked = check(given)
        if checked is None:
            detail = f"options.{name} must be {expected}"
            raise Problem(422, "invalid-field", detail, field=f"options.{name}")
        found[ollama_name] = checked
    return found
