"""The two chat APIs a load test speaks: request bodies and answer parsing (pure).

Ollama's /api/chat streams NDJSON, one object per line, the last with `"done": true` and
`eval_count`. The OpenAI-compatible /v1/chat/completions streams server-sent events
(`data: {...}` lines, then `data: [DONE]`); with `stream_options.include_usage` the
last event before [DONE] carries `usage.completion_tokens`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ollama_fleet.checks.classify import classify_status, error_text, model_missing_hint
from ollama_fleet.checks.model import FailureClass, Finding, fail
from ollama_fleet.loadtest.model import Api, LoadSettings

__all__ = [
    "DONE",
    "BadAnswer",
    "Piece",
    "chat_path",
    "classify_answer",
    "parse_native",
    "parse_openai",
    "request_body",
]

_PATHS = {Api.OLLAMA: "/api/chat", Api.OPENAI: "/v1/chat/completions"}


class BadAnswer(Exception):
    """The answer is not what the API sends (a bad_response)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Piece:
    """One parsed answer object: a stream chunk, or a whole non-streamed answer."""

    content: str = ""  # generated text in it
    done: bool = False  # the answer's last piece
    tokens: int | None = None  # the server's count of generated tokens, where it says
    error: str | None = None  # an error the server sent inside a 200 answer


def chat_path(api: Api) -> str:
    return _PATHS[api]


def request_body(settings: LoadSettings) -> dict[str, Any]:
    """The JSON body of every request of the run."""
    messages = [{"role": "user", "content": settings.prompt}]
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": messages,
        "stream": settings.stream,
    }
    if settings.api is Api.OLLAMA:
        body["options"] = {"num_predict": settings.max_tokens}
    else:
        body["max_tokens"] = settings.max_tokens
        if settings.stream:
            body["stream_options"] = {"include_usage": True}
    return body


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _error(data: dict[str, Any]) -> str | None:
    """The error in `{"error": "..."}` (Ollama) or `{"error": {"message": ...}}` (OpenAI)."""
    err = data.get("error")
    if isinstance(err, dict):
        err = err.get("message") or json.dumps(err)[:200]
    if err is None:
        return None
    return str(err)[:200] or "(empty error)"


def _object(text: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise BadAnswer("answer is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadAnswer("answer is not a JSON object")
    return data


def parse_native(text: str | bytes) -> Piece:
    """One NDJSON line of Ollama's stream, or its whole non-streamed answer."""
    data = _object(text)
    error = _error(data)
    if error is not None:
        return Piece(error=error)
    message = data.get("message")
    if not isinstance(message, dict):
        raise BadAnswer("no message in the answer")
    content = message.get("content")
    done = data.get("done") is True
    return Piece(
        content=content if isinstance(content, str) else "",
        done=done,
        tokens=_count(data.get("eval_count")) if done else None,
    )


DONE = Piece(done=True)


def parse_openai(text: str | bytes, *, stream: bool) -> Piece | None:
    """One server-sent-event line of the OpenAI stream, or the whole non-streamed answer.

    Returns None for a line that carries no event (blank lines, comments, `event:`); the
    `[DONE]` event is DONE. Usage may come in a piece of its own, before [DONE].
    """
    if stream:
        line = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        if not line.startswith("data:"):
            return None
        payload = line[5:].strip()
        if payload == "[DONE]":
            return DONE
        text = payload
    data = _object(text)
    error = _error(data)
    if error is not None:
        return Piece(error=error)
    usage = data.get("usage")
    tokens = _count(usage.get("completion_tokens")) if isinstance(usage, dict) else None
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise BadAnswer("no choices in the answer")
    content = ""
    for choice in choices:
        part = choice.get("delta" if stream else "message") if isinstance(choice, dict) else None
        if not isinstance(part, dict):
            raise BadAnswer("a choice without its " + ("delta" if stream else "message"))
        text_part = part.get("content")
        content += text_part if isinstance(text_part, str) else ""
    if not stream and not choices:
        raise BadAnswer("no choices in the answer")
    return Piece(content=content, done=not stream, tokens=tokens)


def _says_not_found(body: bytes) -> bool:
    """Whether an error body, in either API's shape, says the model was not found."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    error = _error(data) if isinstance(data, dict) else None
    return error is not None and "not found" in error.lower()


def classify_answer(status: int, body: bytes, *, action: str, model: str) -> Finding:
    """The failure of a non-200 chat answer, as the checks classify it.

    The checks read Ollama's 404 `{"error": "model ... not found"}`; the OpenAI endpoint
    words the same refusal as `{"error": {"message": ...}}`, which counts as model_missing too.
    """
    finding = classify_status(status, body, action=action, model=model)
    missing = finding.failure_class is FailureClass.MODEL_MISSING
    if status == 404 and not missing and _says_not_found(body):
        return fail(
            FailureClass.MODEL_MISSING,
            f"{action}: HTTP 404: {error_text(body)}",
            model_missing_hint([model]),
        )
    return finding
