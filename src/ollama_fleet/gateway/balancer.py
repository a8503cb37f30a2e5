"""Choosing nodes: orders the nodes that can serve a request, best candidate first (pure).

Tiers come first (a loaded model with a free slot, a free slot, a loaded model with queue room,
queue room); the strategy orders nodes within a tier. Nodes that are not usable, lack the model
or have a full queue are left out, so the result may be empty (the caller answers 503 or 404).
`hash` ignores the tiers: rendezvous hashing keeps one affinity on one node while it is eligible.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ollama_fleet.gateway.settings import Strategy


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """What the balancer sees of one node at the moment of one request."""

    name: str
    weight: int
    usable: bool  # healthy, the breaker allows, and not draining
    in_flight: int
    max_parallel: int
    queued: int
    queue_size: int
    has_model: bool
    loaded: bool

    @property
    def free_slot(self) -> bool:
        """A request sent now would start at once."""
        return self.in_flight < self.max_parallel

    @property
    def queue_room(self) -> bool:
        """A request sent now may wait in the node's queue."""
        return self.queued < self.queue_size


def order(
    nodes: Sequence[NodeView],
    *,
    strategy: Strategy,
    prefer_loaded: bool,
    affinity: str | None,
    turn: int,
    rng: random.Random,
) -> tuple[str, ...]:
    """The names of the nodes that can take the request, best first."""
    eligible = [n for n in nodes if n.usable and n.has_model and (n.free_slot or n.queue_room)]
    if strategy is Strategy.HASH and affinity is not None:
        return tuple(n.name for n in _rendezvous(eligible, affinity))
    if strategy is Strategy.HASH:
        strategy = Strategy.LEAST_CONNECTIONS  # no affinity to hash on: spread the load
    result: list[str] = []
    for tier in _tiers(eligible, prefer_loaded=prefer_loaded):
        result.extend(n.name for n in _within(tier, strategy=strategy, turn=turn, rng=rng))
    return tuple(result)


def _tiers(nodes: list[NodeView], *, prefer_loaded: bool) -> list[list[NodeView]]:
    def rank(node: NodeView) -> int:
        busy = 0 if node.free_slot else 2
        cold = 0 if node.loaded or not prefer_loaded else 1
        return busy + cold

    tiers: list[list[NodeView]] = [[], [], [], []]
    for node in nodes:
        tiers[rank(node)].append(node)
    return [tier for tier in tiers if tier]


def _within(
    tier: list[NodeView], *, strategy: Strategy, turn: int, rng: random.Random
) -> list[NodeView]:
    if strategy is Strategy.RANDOM:
        shuffled = list(tier)
        rng.shuffle(shuffled)
        return shuffled
    if strategy is Strategy.WEIGHTED:
        pick = rng.choices(tier, weights=[max(n.weight, 1) for n in tier])[0]
        rest = sorted((n for n in tier if n is not pick), key=lambda n: -n.weight)
        return [pick, *rest]
    rotated = _rotate(tier, turn)
    if strategy is Strategy.ROUND_ROBIN:
        return rotated
    # least-connections: the rotation breaks ties, so a recovered node still gets traffic
    return sorted(rotated, key=lambda n: (n.in_flight + n.queued) / max(n.weight, 1))


def _rotate(tier: list[NodeView], turn: int) -> list[NodeView]:
    start = turn % len(tier)
    return tier[start:] + tier[:start]


def _rendezvous(nodes: list[NodeView], affinity: str) -> list[NodeView]:
    """Highest random weight first; stable across processes (blake2b, never hash())."""

    def score(node: NodeView) -> float:
        digest = hashlib.blake2b(f"{affinity}\x00{node.name}".encode(), digest_size=8).digest()
        unit = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)  # in (0, 1)
        return max(node.weight, 1) / -math.log(unit)

    return sorted(nodes, key=lambda n: (-score(n), n.name))
