"""Time bounds and knobs of a check run, with defaults as module constants."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CONNECT_TIMEOUT_S = 3.0
DEFAULT_READ_TIMEOUT_S = 15.0
DEFAULT_CHECK_TIMEOUT_S = 30.0
DEFAULT_DEADLINE_S = 120.0
DEFAULT_CONCURRENCY = 32
DEFAULT_PORT_TIMEOUT_S = 1.5


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeSettings:
    """How long each step may take and how many targets run at once.

    `check_timeout_s` bounds one check on one target; `deadline_s` bounds the whole run:
    whatever has not finished by then fails as read_timeout and the others are kept.
    """

    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    deadline_s: float = DEFAULT_DEADLINE_S
    concurrency: int = DEFAULT_CONCURRENCY
    port_timeout_s: float = DEFAULT_PORT_TIMEOUT_S
    chat_prompt: str = "Reply with the single word OK."
    chat_max_tokens: int = 4
    max_answer_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "check_timeout_s", "deadline_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
