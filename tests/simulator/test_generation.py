"""Tests of the simulator's deterministic token generation and counters."""

from __future__ import annotations

import math

from ollama_fleet.simulator import generation as gen


def test_reply_tokens_are_derived_from_the_prompt() -> None:
    assert gen.reply_tokens("Why is the sky blue?", 6) == [
        "why",
        " is",
        " the",
        " sky",
        " blue",
        " why",
    ]
    assert gen.reply_tokens("", 2) == ["simulated", " reply"]
    assert gen.reply_tokens("x", 0) == []


def test_token_budget() -> None:
    assert gen.token_budget(None) == (gen.DEFAULT_TOKENS, "stop")
    assert gen.token_budget(-1) == (gen.DEFAULT_TOKENS, "stop")
    assert gen.token_budget(5) == (5, "length")
    assert gen.token_budget(10**9) == (gen.MAX_TOKENS, "length")


def test_counters_match_the_token_rate() -> None:
    counters = gen.Counters.for_run(
        prompt_tokens=20, eval_tokens=50, tokens_per_second=100.0, loaded=True
    )
    data = counters.as_dict()
    assert data["eval_count"] == 50
    assert data["eval_duration"] == 500_000_000  # 50 tokens at 100/s
    assert data["prompt_eval_duration"] == 20_000_000  # prompt runs 10x faster
    assert data["load_duration"] == gen.LOAD_NS
    assert data["total_duration"] == sum(
        data[k] for k in ("load_duration", "prompt_eval_duration", "eval_duration")
    )
    unpaced = gen.Counters.for_run(
        prompt_tokens=1, eval_tokens=10, tokens_per_second=0, loaded=False
    )
    assert unpaced.eval_duration == round(10 * 1e9 / gen.UNPACED_RATE)
    assert unpaced.load_duration == gen.WARM_LOAD_NS


def test_embedding_is_deterministic_and_normalised() -> None:
    first = gen.embedding("m", "hello")
    assert first == gen.embedding("m", "hello")
    assert first != gen.embedding("m", "hello!")
    assert len(first) == gen.EMBED_DIM
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0, rel_tol=1e-5)
