"""The chat probe's rates: Ollama's own counters first, the chunks' arrival times otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from ollama_fleet.checks.probes.chat import chunk_rate, tokens_per_second


@pytest.mark.parametrize(
    ("final", "rate"),
    [
        ({"eval_count": 4, "eval_duration": 20_000_000}, 200.0),
        ({"eval_count": 12, "eval_duration": 3_000_000_000}, 4.0),
        ({"eval_count": 4, "eval_duration": 0}, None),
        ({"eval_count": 0, "eval_duration": 1_000}, None),
        ({"eval_count": True, "eval_duration": 1_000}, None),
        ({"eval_count": "4", "eval_duration": 1_000}, None),
        ({}, None),
    ],
)
def test_tokens_per_second_from_the_final_chunk(final: dict[str, Any], rate: float | None) -> None:
    assert tokens_per_second(final) == rate


@pytest.mark.parametrize(
    ("times", "rate"),
    [
        ([10.0, 10.5, 11.0], 2.0),  # two tokens after the first, in one second
        ([10.0, 10.25, 10.5, 10.75, 11.0], 4.0),
        ([10.0], None),  # one token: no interval to measure
        ([], None),
        ([10.0, 10.0], None),  # same instant: no rate, not a division by zero
    ],
)
def test_chunk_rate_counts_the_tokens_after_the_first(
    times: list[float], rate: float | None
) -> None:
    assert chunk_rate(times) == rate
