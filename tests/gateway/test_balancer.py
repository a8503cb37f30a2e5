"""The balancer: which nodes may take a request, in which tiers, in which order."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from ollama_fleet.gateway.balancer import NodeView, order
from ollama_fleet.gateway.settings import Strategy


def node(name: str, **fields: object) -> NodeView:
    values: dict[str, object] = {
        "name": name,
        "weight": 1,
        "usable": True,
        "in_flight": 0,
        "max_parallel": 4,
        "queued": 0,
        "queue_size": 8,
        "has_model": True,
        "loaded": False,
    }
    values.update(fields)
    return NodeView(**values)  # type: ignore[arg-type]


def pick(
    nodes: list[NodeView],
    strategy: Strategy = Strategy.LEAST_CONNECTIONS,
    *,
    prefer_loaded: bool = True,
    affinity: str | None = None,
    turn: int = 0,
    seed: int = 0,
) -> tuple[str, ...]:
    return order(
        nodes,
        strategy=strategy,
        prefer_loaded=prefer_loaded,
        affinity=affinity,
        turn=turn,
        rng=random.Random(seed),
    )


@pytest.mark.parametrize("strategy", list(Strategy))
def test_unusable_modelless_and_full_nodes_are_left_out(strategy: Strategy) -> None:
    nodes = [
        node("down", usable=False),
        node("no-model", has_model=False),
        node("full", in_flight=4, queued=8),
        node("no-queue", in_flight=4, queue_size=0),
        node("ok"),
    ]
    assert pick(nodes, strategy, affinity="s") == ("ok",)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_no_eligible_node_gives_an_empty_order(strategy: Strategy) -> None:
    assert pick([], strategy) == ()
    assert pick([node("a", usable=False)], strategy, affinity="s") == ()


@pytest.mark.parametrize(
    "strategy",
    [Strategy.LEAST_CONNECTIONS, Strategy.ROUND_ROBIN, Strategy.RANDOM, Strategy.WEIGHTED],
)
def test_tiers_loaded_free_then_free_then_loaded_queue_then_queue(strategy: Strategy) -> None:
    nodes = [
        node("queue", in_flight=4),
        node("loaded-queue", in_flight=4, loaded=True),
        node("free", in_flight=3),
        node("loaded-free", in_flight=3, loaded=True),
    ]
    expected = ("loaded-free", "free", "loaded-queue", "queue")
    for turn in range(4):
        assert pick(nodes, strategy, turn=turn, seed=turn) == expected


def test_without_prefer_loaded_a_free_slot_is_all_that_counts() -> None:
    nodes = [
        node("loaded-busy", in_flight=2, loaded=True),
        node("cold-idle"),
        node("loaded-queue", in_flight=4, loaded=True),
    ]
    assert pick(nodes, prefer_loaded=False) == ("cold-idle", "loaded-busy", "loaded-queue")
    assert pick(nodes, prefer_loaded=True) == ("loaded-busy", "cold-idle", "loaded-queue")


def test_least_connections_counts_queued_requests_and_divides_by_weight() -> None:
    nodes = [
        node("a", in_flight=3),
        node("b", in_flight=1, queued=0),
        node("c", in_flight=2, weight=4),  # 0.5 a weight
    ]
    assert pick(nodes) == ("c", "b", "a")
    queued = [node("a", in_flight=4, queued=1), node("b", in_flight=4, queued=3)]
    assert pick(queued) == ("a", "b")


def test_least_connections_ties_rotate_with_the_turn() -> None:
    nodes = [node("a"), node("b"), node("c")]
    assert [pick(nodes, turn=t)[0] for t in range(6)] == ["a", "b", "c", "a", "b", "c"]
    assert pick(nodes, turn=1) == ("b", "c", "a")


def test_round_robin_rotates_through_a_tier() -> None:
    nodes = [node("a", in_flight=3), node("b"), node("c", in_flight=1)]
    orders = [pick(nodes, Strategy.ROUND_ROBIN, turn=t) for t in range(4)]
    assert orders == [("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b"), ("a", "b", "c")]


def test_weighted_picks_in_proportion_and_orders_the_rest_by_weight() -> None:
    nodes = [node("light", weight=1), node("heavy", weight=3), node("middle", weight=2)]
    rng = random.Random(7)
    firsts = Counter(
        order(
            nodes, strategy=Strategy.WEIGHTED, prefer_loaded=True, affinity=None, turn=0, rng=rng
        )[0]
        for _ in range(6000)
    )
    assert 0.45 < firsts["heavy"] / 6000 < 0.55
    assert 0.28 < firsts["middle"] / 6000 < 0.38
    assert 0.12 < firsts["light"] / 6000 < 0.22
    for seed in range(20):
        first, *rest = pick(nodes, Strategy.WEIGHTED, seed=seed)
        weights = {"light": 1, "heavy": 3, "middle": 2}
        assert rest == sorted(rest, key=lambda n: -weights[n])
        assert first not in rest


def test_random_is_reproducible_from_the_rng_and_reaches_every_order() -> None:
    nodes = [node("a"), node("b"), node("c")]
    assert pick(nodes, Strategy.RANDOM, seed=3) == pick(nodes, Strategy.RANDOM, seed=3)
    seen = {pick(nodes, Strategy.RANDOM, seed=s) for s in range(100)}
    assert len(seen) == 6


def test_hash_keeps_an_affinity_on_one_node_whatever_the_turn_or_input_order() -> None:
    nodes = [node("gpu-1"), node("gpu-2"), node("gpu-3")]
    first = pick(nodes, Strategy.HASH, affinity="session-42")
    for turn in range(5):
        assert pick(list(reversed(nodes)), Strategy.HASH, affinity="session-42", turn=turn) == first


def test_hash_is_stable_across_processes() -> None:
    # blake2b, never hash(): these orders were computed once and must never change
    nodes = [node("gpu-1"), node("gpu-2"), node("gpu-3")]
    assert pick(nodes, Strategy.HASH, affinity="alice") == PINNED_ALICE
    assert pick(nodes, Strategy.HASH, affinity="session-42") == PINNED_SESSION


def test_hash_moves_only_the_affinities_of_a_node_that_leaves() -> None:
    nodes = [node(f"gpu-{i}") for i in range(4)]
    before = {f"s{i}": pick(nodes, Strategy.HASH, affinity=f"s{i}") for i in range(200)}
    without_gpu_2 = [n for n in nodes if n.name != "gpu-2"]
    for affinity, ranked in before.items():
        after = pick(without_gpu_2, Strategy.HASH, affinity=affinity)
        assert after == tuple(n for n in ranked if n != "gpu-2")
    spread = Counter(ranked[0] for ranked in before.values())
    assert set(spread) == {"gpu-0", "gpu-1", "gpu-2", "gpu-3"}
    assert min(spread.values()) > 25


def test_hash_ignores_tiers_but_not_full_or_unusable_nodes() -> None:
    nodes = [node("gpu-1"), node("gpu-2"), node("gpu-3")]
    favourite = pick(nodes, Strategy.HASH, affinity="alice")[0]
    busy = [node(n.name, in_flight=4) if n.name == favourite else n for n in nodes]
    assert pick(busy, Strategy.HASH, affinity="alice")[0] == favourite
    full = [node(n.name, in_flight=4, queued=8) if n.name == favourite else n for n in nodes]
    assert favourite not in pick(full, Strategy.HASH, affinity="alice")


def test_hash_gives_heavier_nodes_more_affinities() -> None:
    nodes = [node("small"), node("big", weight=3)]
    firsts = Counter(pick(nodes, Strategy.HASH, affinity=f"s{i}")[0] for i in range(2000))
    assert 0.68 < firsts["big"] / 2000 < 0.82


def test_hash_without_an_affinity_falls_back_to_least_connections() -> None:
    nodes = [node("a", in_flight=2), node("b")]
    assert pick(nodes, Strategy.HASH, affinity=None) == ("b", "a")


PINNED_ALICE = ("gpu-1", "gpu-3", "gpu-2")
PINNED_SESSION = ("gpu-2", "gpu-1", "gpu-3")
