"""The gauges of what the gateway leans on: Redis (only when configured) and the sessions db."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ollama_fleet.gateway.metrics import GatewayMetrics, Services


def samples(services: Services) -> dict[str, float]:
    body = GatewayMetrics(nodes=list, services=lambda: services).render().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name.startswith(("gateway_redis", "gateway_sessions"))
    }


def test_without_redis_only_the_database_series() -> None:
    found = samples(Services(redis_up=None, redis_errors=0, database_up=False, database_writes=0))
    assert found == {"gateway_sessions_database_up": 0.0, "gateway_sessions_writes_total": 0.0}


def test_with_redis_its_state_and_errors() -> None:
    found = samples(Services(redis_up=False, redis_errors=3, database_up=True, database_writes=12))
    assert found == {
        "gateway_redis_up": 0.0,
        "gateway_redis_errors_total": 3.0,
        "gateway_sessions_database_up": 1.0,
        "gateway_sessions_writes_total": 12.0,
    }
