"""The context a turn sends: system kept, newest history that fits, oldest dropped first."""

from __future__ import annotations

from datetime import UTC, datetime

from ollama_fleet.gateway.sessions.history import context, tokens_of
from ollama_fleet.gateway.sessions.records import Message, Role

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def message(role: Role, content: str, n: int = 0) -> Message:
    return Message(
        id=f"{n:032x}",
        session_id="s" * 32,
        role=role,
        content=content,
        created_at=NOW,
        complete=True,
        tokens=None,
        error=None,
    )


HISTORY = [
    message("system", "be brief", 0),
    *(message("user" if n % 2 else "assistant", f"turn {n} " + "x" * 36, n) for n in range(1, 9)),
]


def contents(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"][:7] for m in messages]


def test_everything_fits_in_order_with_the_new_message_last() -> None:
    found = context(HISTORY, "now?", max_messages=40, max_tokens=10_000)
    assert [m["role"] for m in found][:2] == ["system", "user"]
    assert found[-1] == {"role": "user", "content": "now?"}
    assert len(found) == 10


def test_the_message_bound_keeps_the_newest_and_the_system_prompt() -> None:
    found = context(HISTORY, "now?", max_messages=3, max_tokens=10_000)
    assert contents(found) == ["be brie", "turn 6 ", "turn 7 ", "turn 8 ", "now?"]


def test_the_token_bound_drops_the_oldest_first() -> None:
    each = tokens_of(HISTORY[1].content)
    budget = tokens_of("be brief") + tokens_of("now?") + 2 * each
    found = context(HISTORY, "now?", max_messages=40, max_tokens=budget)
    assert contents(found) == ["be brie", "turn 7 ", "turn 8 ", "now?"]
    # one token short of two: only the newest goes
    found = context(HISTORY, "now?", max_messages=40, max_tokens=budget - 1)
    assert contents(found) == ["be brie", "turn 8 ", "now?"]


def test_no_history_at_all_and_empty_answers_left_out() -> None:
    cut = [message("user", "q", 1), message("assistant", "", 2)]
    assert context(cut, "again", max_messages=0, max_tokens=100) == [
        {"role": "user", "content": "again"}
    ]
    assert context(cut, "again", max_messages=10, max_tokens=100) == [
        {"role": "user", "content": "q"},
        {"role": "user", "content": "again"},
    ]


def test_a_message_bigger_than_the_budget_still_goes_alone() -> None:
    found = context(HISTORY, "y" * 10_000, max_messages=40, max_tokens=10)
    assert contents(found) == ["be brie", "y" * 7]
