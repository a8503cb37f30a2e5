"""Fixtures of the gateway's integration tests: simulator nodes, keys of every role, a gateway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ollama_fleet.gateway.settings import KeySpec, Role

from .live import RunningGateway, SimNode, gateway_config, make_key, running_gateway, sim_node

PAST = datetime(2020, 1, 1, tzinfo=UTC)


class Keys:
    """One key of each kind the tests need: the key itself and its spec."""

    def __init__(self) -> None:
        self.admin, admin = make_key("root", role=Role.ADMIN)
        self.user, user = make_key("alice")
        self.readonly, readonly = make_key("viewer", role=Role.READONLY)
        self.qwen_only, qwen_only = make_key("qwen-fan", models=("qwen*",))
        self.expired, expired = make_key("old", expires=PAST)
        self.limited, limited = make_key("slowpoke", rpm=2)
        self.specs: tuple[KeySpec, ...] = (admin, user, readonly, qwen_only, expired, limited)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def node_a() -> Iterator[SimNode]:
    """Node a: llama3.2:1b only."""
    with sim_node(["llama3.2:1b"]) as node:
        yield node


@pytest.fixture(scope="module")
def node_b() -> Iterator[SimNode]:
    """Node b: llama3.2:1b and qwen2.5:0.5b."""
    with sim_node(["llama3.2:1b", "qwen2.5:0.5b"]) as node:
        yield node


@pytest.fixture(scope="module")
def shared_gateway(keys: Keys, node_a: SimNode, node_b: SimNode) -> Iterator[RunningGateway]:
    """A gateway over nodes a and b for tests that change no state (faults, drains)."""
    config = gateway_config({"a": node_a.url, "b": node_b.url}, keys.specs)
    with running_gateway(config) as gateway:
        yield gateway
