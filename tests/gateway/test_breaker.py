"""The per-node breaker: opening after failures in a row, one probe after the cooldown."""

from __future__ import annotations

from ollama_fleet.gateway.breaker import (
    CLOSED,
    BreakerState,
    Circuit,
    allow,
    on_failure,
    on_success,
)
from ollama_fleet.gateway.settings import Breaker

CFG = Breaker(failures=3, cooldown_s=30.0)


def _fail(state: BreakerState, times: int, *, now: float = 0.0) -> BreakerState:
    for _ in range(times):
        state = on_failure(state, now=now, cfg=CFG)
    return state


def _opened_at(now: float) -> BreakerState:
    state = _fail(CLOSED, 3, now=now)
    assert state.circuit is Circuit.OPEN
    return state


def test_a_closed_breaker_lets_everything_through() -> None:
    allowed, state = allow(CLOSED, now=0.0, cfg=CFG)
    assert allowed
    assert state == CLOSED


def test_it_opens_only_after_the_configured_failures_in_a_row() -> None:
    two = _fail(CLOSED, 2)
    assert two.circuit is Circuit.CLOSED
    assert allow(two, now=0.0, cfg=CFG)[0]
    three = on_failure(two, now=5.0, cfg=CFG)
    assert three.circuit is Circuit.OPEN
    assert three.opened_at == 5.0
    assert not allow(three, now=5.0, cfg=CFG)[0]


def test_a_success_while_closed_resets_the_count() -> None:
    state = on_success(_fail(CLOSED, 2))
    assert state == CLOSED
    assert _fail(state, 2).circuit is Circuit.CLOSED


def test_an_open_breaker_refuses_until_the_cooldown_then_allows_one_probe() -> None:
    state = _opened_at(100.0)
    allowed, still = allow(state, now=129.9, cfg=CFG)
    assert not allowed
    assert still == state
    allowed, probing = allow(state, now=130.0, cfg=CFG)
    assert allowed
    assert probing.circuit is Circuit.HALF_OPEN
    assert probing.probing
    allowed, same = allow(probing, now=130.5, cfg=CFG)
    assert not allowed
    assert same == probing


def test_a_successful_probe_closes_the_breaker() -> None:
    _, probing = allow(_opened_at(0.0), now=30.0, cfg=CFG)
    closed = on_success(probing)
    assert closed.circuit is Circuit.CLOSED
    assert closed.failures == 0
    assert allow(closed, now=30.1, cfg=CFG)[0]


def test_a_failed_probe_reopens_with_a_fresh_cooldown() -> None:
    _, probing = allow(_opened_at(0.0), now=40.0, cfg=CFG)
    reopened = on_failure(probing, now=41.0, cfg=CFG)
    assert reopened.circuit is Circuit.OPEN
    assert not reopened.probing
    assert not allow(reopened, now=70.0, cfg=CFG)[0]
    assert allow(reopened, now=71.0, cfg=CFG)[0]


def test_a_probe_that_never_reports_is_replaced_after_another_cooldown() -> None:
    _, probing = allow(_opened_at(0.0), now=30.0, cfg=CFG)
    assert not allow(probing, now=59.0, cfg=CFG)[0]
    allowed, second = allow(probing, now=60.0, cfg=CFG)
    assert allowed
    assert second.probing
    assert second.opened_at == 60.0


def test_late_failures_while_open_do_not_extend_the_cooldown() -> None:
    state = on_failure(_opened_at(0.0), now=20.0, cfg=CFG)
    assert state.circuit is Circuit.OPEN
    assert state.opened_at == 0.0
    assert allow(state, now=30.0, cfg=CFG)[0]


def test_a_breaker_with_one_failure_allowed_opens_at_once() -> None:
    state = on_failure(CLOSED, now=0.0, cfg=Breaker(failures=1, cooldown_s=1.0))
    assert state.circuit is Circuit.OPEN


def test_circuit_values_are_what_admin_shows() -> None:
    assert [c.value for c in Circuit] == ["closed", "open", "half-open"]
