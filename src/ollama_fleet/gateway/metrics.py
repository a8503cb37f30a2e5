"""The gateway's Prometheus metrics: requests, tokens, first-token time, added latency, nodes.

Counters and histograms live in a registry of the gateway's own (never prometheus_client's
global one). The node gauges (in flight, queue depth, breaker, health) are read from the
pool at scrape time, so a node removed by a reload loses its series at once. Labels carry
names only (key names, model names the fleet knows, node names), never a key or a prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ollama_fleet import __version__

# a cold model load can take minutes; a warm first token well under a second
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# the gateway's own cost: well under a millisecond when healthy, queue waits show up too
ADDED_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
BREAKER_VALUES = {"closed": 0.0, "half-open": 1.0, "open": 2.0}
CONTENT_TYPE = CONTENT_TYPE_LATEST


class NodeGauges(Protocol):
    """What the node gauges read of one node (nodes.NodeState has these fields)."""

    @property
    def name(self) -> str: ...
    @property
    def healthy(self) -> bool | None: ...
    @property
    def breaker(self) -> str: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...


class _NodeCollector(Collector):
    def __init__(self, nodes: Callable[[], Sequence[NodeGauges]]) -> None:
        self._nodes = nodes

    def collect(self) -> Iterable[Metric]:
        in_flight = GaugeMetricFamily(
            "gateway_in_flight", "Requests a node is serving now", labels=["node"]
        )
        queued = GaugeMetricFamily(
            "gateway_queue_depth", "Requests waiting for a slot on a node", labels=["node"]
        )
        breaker = GaugeMetricFamily(
            "gateway_breaker_state",
            "A node's circuit breaker: 0 closed, 1 half-open, 2 open",
            labels=["node"],
        )
        healthy = GaugeMetricFamily(
            "gateway_node_healthy", "1 while a node's health check passes", labels=["node"]
        )
        for node in self._nodes():
            in_flight.add_metric([node.name], node.in_flight)
            queued.add_metric([node.name], node.queued)
            breaker.add_metric([node.name], BREAKER_VALUES.get(node.breaker, 2.0))
            healthy.add_metric([node.name], 1.0 if node.healthy else 0.0)
        yield from (in_flight, queued, breaker, healthy)


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What the gateway leans on, read at scrape time: Redis (None: not configured), the
    sessions database (up: open and its last call worked) and the writes made to it."""

    redis_up: bool | None
    redis_errors: int
    database_up: bool
    database_writes: int


class _ServiceCollector(Collector):
    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services

    def collect(self) -> Iterable[Metric]:
        found = self._services()
        if found.redis_up is not None:
            yield GaugeMetricFamily(
                "gateway_redis_up",
                "1 while the shared rate limits' Redis answers (0: redis.on_error applies)",
                value=1.0 if found.redis_up else 0.0,
            )
            yield CounterMetricFamily(
                "gateway_redis_errors",
                "Calls to the shared rate limits' Redis that failed",
                value=found.redis_errors,
            )
        yield GaugeMetricFamily(
            "gateway_sessions_database_up",
            "1 while the sessions database is open and its last call worked",
            value=1.0 if found.database_up else 0.0,
        )
        yield CounterMetricFamily(
            "gateway_sessions_writes",
            "Write transactions committed to the sessions database by this process",
            value=found.database_writes,
        )


class _InfoCollector(Collector):
    def __init__(self, version: str) -> None:
        self._version = version

    def collect(self) -> Iterable[Metric]:
        info = InfoMetricFamily("gateway", "The gateway's version")
        info.add_metric([], {"version": self._version})
        yield info


class GatewayMetrics:
    """Every series the gateway exports; `render()` is the /metrics body."""

    def __init__(
        self,
        *,
        nodes: Callable[[], Sequence[NodeGauges]],
        services: Callable[[], Services] | None = None,
        version: str = __version__,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests",
            "Requests answered, by key name, model, node and HTTP status",
            ["key", "model", "node", "status"],
            registry=self.registry,
        )
        self.first_token = Histogram(
            "gateway_time_to_first_token_seconds",
            "From the request's arrival to the first byte of the answer's content",
            ["model", "node"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens counted from the answers: in (prompt) and out (completion)",
            ["key", "model", "direction"],
            registry=self.registry,
        )
        self.added_latency = Histogram(
            "gateway_added_latency_seconds",
            "Gateway time before the relay starts (body, key, limits, choosing nodes; no queue)",
            buckets=ADDED_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited",
            "Requests refused by a rate limit, by key name and which limit (requests, tokens)",
            ["key", "which"],
            registry=self.registry,
        )
        self.registry.register(_NodeCollector(nodes))
        self.registry.register(_InfoCollector(version))
        if services is not None:
            self.registry.register(_ServiceCollector(services))

    def observe_request(
        self,
        *,
        key: str,
        model: str,
        node: str,
        status: int,
        ttfb_s: float | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        added_latency_s: float | None = None,
    ) -> None:
        """Count one answered request (`key`, `model`, `node` are names, "" when none)."""
        self.requests.labels(key=key, model=model, node=node, status=str(status)).inc()
        if ttfb_s is not None and node:
            self.first_token.labels(model=model, node=node).observe(ttfb_s)
        if tokens_in:
            self.tokens.labels(key=key, model=model, direction="in").inc(tokens_in)
        if tokens_out:
            self.tokens.labels(key=key, model=model, direction="out").inc(tokens_out)
        if added_latency_s is not None:
            self.added_latency.observe(added_latency_s)

    def count_rate_limited(self, *, key: str, which: str) -> None:
        """Count one request a limit refused."""
        self.rate_limited.labels(key=key, which=which).inc()

    def render(self) -> bytes:
        """The text exposition format of every series (served with CONTENT_TYPE)."""
        return generate_latest(self.registry)
