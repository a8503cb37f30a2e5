"""What of a session goes to Ollama as context: pure, bounded by messages and by tokens.

Every system message is kept (the session's instructions); of the others, the newest are
kept while they fit both `max_messages` and the token budget (about chars/4 each, as the rate
limits count), oldest dropped first; the new user message always goes. An answer that was
cut off is context as far as it got; one that never produced a word is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ollama_fleet.gateway.sessions.records import Message


def tokens_of(text: str) -> int:
    """About how many tokens `text` is (chars/4, +1 a message)."""
    return len(text) // 4 + 1


def context(
    history: Sequence[Message], message: str, *, max_messages: int, max_tokens: int
) -> list[dict[str, Any]]:
    """Ollama's `messages` for the next turn: system messages, the newest history that fits,
    then `message` as the user's."""
    system = [m for m in history if m.role == "system"]
    others = [m for m in history if m.role != "system" and m.content]
    budget = max_tokens - sum(tokens_of(m.content) for m in system) - tokens_of(message)
    kept: list[Message] = []
    for earlier in reversed(others[-max_messages:] if max_messages > 0 else []):
        cost = tokens_of(earlier.content)
        if cost > budget:
            break
        kept.append(earlier)
        budget -= cost
    kept.reverse()
    return [
        *({"role": m.role, "content": m.content} for m in system),
        *({"role": m.role, "content": m.content} for m in kept),
        {"role": "user", "content": message},
    ]
