"""The gateway's metrics: every family exported, node gauges read from the pool at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from ollama_fleet.gateway.metrics import GatewayMetrics


@dataclass(frozen=True)
class _Node:
    name: str
    healthy: bool
    breaker: str
    in_flight: int
    queued: int


def _samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_request_counts_in_requests_tokens_first_token_and_added_latency() -> None:
    metrics = GatewayMetrics(nodes=list, version="9.9")
    metrics.observe_request(
        key="alice",
        model="llama3.2:1b",
        node="gpu-1",
        status=200,
        ttfb_s=0.2,
        tokens_in=7,
        tokens_out=11,
        added_latency_s=0.001,
    )
    metrics.count_rate_limited(key="alice", which="tokens")
    samples = _samples(metrics)
    labels = (("key", "alice"), ("model", "llama3.2:1b"), ("node", "gpu-1"), ("status", "200"))
    assert samples[("gateway_requests_total", labels)] == 1
    tokens_in = (("direction", "in"), ("key", "alice"), ("model", "llama3.2:1b"))
    assert samples[("gateway_tokens_total", tokens_in)] == 7
    tokens_out = (("direction", "out"), ("key", "alice"), ("model", "llama3.2:1b"))
    assert samples[("gateway_tokens_total", tokens_out)] == 11
    ttft = (("model", "llama3.2:1b"), ("node", "gpu-1"))
    assert samples[("gateway_time_to_first_token_seconds_count", ttft)] == 1
    assert samples[("gateway_added_latency_seconds_count", ())] == 1
    assert samples[("gateway_rate_limited_total", (("key", "alice"), ("which", "tokens")))] == 1
    assert samples[("gateway_info", (("version", "9.9"),))] == 1


def test_node_gauges_follow_the_pool_and_a_removed_node_loses_its_series() -> None:
    nodes = [
        _Node(name="a", healthy=True, breaker="closed", in_flight=2, queued=1),
        _Node(name="b", healthy=False, breaker="open", in_flight=0, queued=0),
    ]
    metrics = GatewayMetrics(nodes=lambda: nodes)
    samples = _samples(metrics)
    assert samples[("gateway_in_flight", (("node", "a"),))] == 2
    assert samples[("gateway_queue_depth", (("node", "a"),))] == 1
    assert samples[("gateway_breaker_state", (("node", "b"),))] == 2
    assert samples[("gateway_node_healthy", (("node", "a"),))] == 1
    assert samples[("gateway_node_healthy", (("node", "b"),))] == 0
    nodes.pop()
    assert ("gateway_node_healthy", (("node", "b"),)) not in _samples(metrics)


def test_a_refused_request_without_a_node_has_no_first_token_sample() -> None:
    metrics = GatewayMetrics(nodes=list)
    metrics.observe_request(key="", model="", node="", status=401, ttfb_s=0.1)
    samples = _samples(metrics)
    labels = (("key", ""), ("model", ""), ("node", ""), ("status", "401"))
    assert samples[("gateway_requests_total", labels)] == 1
    assert not any(name.startswith("gateway_time_to_first_token") and lab for name, lab in samples)
