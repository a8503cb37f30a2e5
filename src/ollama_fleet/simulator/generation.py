"""Deterministic fake text generation for the simulator (test double): tokens and counters."""

from __future__ import annotations

import hashlib
import math
import re
import struct
from dataclasses import dataclass

DEFAULT_TOKENS = 12
MAX_TOKENS = 4096  # cap on num_predict / max_tokens, so no request can exhaust memory
UNPACED_RATE = 1000.0  # tokens/s the counters report when pacing is off (tokens_per_second 0)
PROMPT_SPEEDUP = 10.0  # prompt evaluation is reported this many times faster than generation
MESSAGE_OVERHEAD = 4  # template tokens counted per chat message
LOAD_NS = 250_000_000  # load_duration reported when a model had to be loaded
WARM_LOAD_NS = 100_000  # load_duration when it was already loaded
EMBED_DIM = 8
_FALLBACK_WORDS = ("simulated", "reply", "from", "the", "ollama", "fleet", "test", "double")
_WORD = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A deterministic token count: words and punctuation marks."""
    return len(_WORD.findall(text))


def reply_tokens(prompt: str, count: int) -> list[str]:
    """`count` tokens derived from the prompt's words (a fixed phrase when it has none)."""
    words = re.findall(r"\w+", prompt.lower()) or list(_FALLBACK_WORDS)
    return [(" " if i else "") + words[i % len(words)] for i in range(count)]


def token_budget(requested: int | None) -> tuple[int, str]:
    """How many tokens to produce and the done_reason ("length" when the client limited it)."""
    if requested is None or requested < 0:
        return DEFAULT_TOKENS, "stop"
    return min(requested, MAX_TOKENS), "length"


@dataclass(frozen=True, kw_only=True)
class Counters:
    """The timing counters of a finished generation, in nanoseconds like Ollama."""

    prompt_eval_count: int
    eval_count: int
    load_duration: int
    prompt_eval_duration: int
    eval_duration: int

    @classmethod
    def for_run(
        cls, *, prompt_tokens: int, eval_tokens: int, tokens_per_second: float, loaded: bool
    ) -> Counters:
        """Counters consistent with the configured token rate."""
        rate = tokens_per_second if tokens_per_second > 0 else UNPACED_RATE
        return cls(
            prompt_eval_count=prompt_tokens,
            eval_count=eval_tokens,
            load_duration=LOAD_NS if loaded else WARM_LOAD_NS,
            prompt_eval_duration=round(prompt_tokens * 1e9 / (rate * PROMPT_SPEEDUP)),
            eval_duration=round(eval_tokens * 1e9 / rate),
        )

    def as_dict(self) -> dict[str, int]:
        """The counters as the final chunk of /api/chat and /api/generate carries them."""
        total = self.load_duration + self.prompt_eval_duration + self.eval_duration
        return {
            "total_duration": total,
            "load_duration": self.load_duration,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }


def chat_prompt_tokens(messages: list[tuple[str, str]]) -> int:
    """Prompt tokens of a chat: each message's tokens plus template overhead."""
    return max(1, sum(count_tokens(text) + MESSAGE_OVERHEAD for _, text in messages))


def last_user_text(messages: list[tuple[str, str]]) -> str:
    """The text the reply is derived from: the last user message (else the last message)."""
    for role, text in reversed(messages):
        if role == "user":
            return text
    return messages[-1][1] if messages else ""


def embedding(model: str, text: str) -> list[float]:
    """A deterministic, L2-normalised vector of EMBED_DIM floats for `text`."""
    digest = hashlib.sha256(f"{model}\0{text}".encode()).digest()
    raw = [v / 2**31 - 1.0 for v in struct.unpack(f">{EMBED_DIM}I", digest[: EMBED_DIM * 4])]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 7) for v in raw]
