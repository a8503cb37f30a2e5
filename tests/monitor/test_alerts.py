"""The alert state machine, table-driven: results in, phase and notifications out.

Every row is also replayed with a restart at every point of its sequence (the state through
its JSON, and through a real Store), and the continued run must match the uninterrupted one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from ollama_fleet.checks.model import Status
from ollama_fleet.monitor.alerts import (
    AlertState,
    Notification,
    Phase,
    firing_notification,
    open_alert,
    remind,
    step,
)
from ollama_fleet.monitor.model import Sample, Severity
from ollama_fleet.monitor.settings import AlertPolicy
from ollama_fleet.monitor.store import Store

URL = "https://gpu-1.example.test"
T0 = 1_000_000.0
STEP_S = 30.0
CODES = {"o": Status.OK, "w": Status.WARN, "f": Status.FAIL}
C, W = Severity.CRITICAL, Severity.WARNING

# (kind, severity, reason) of each notification a sequence sends
Sent = tuple[str, Severity, str]


@dataclass(frozen=True, kw_only=True)
class Row:
    name: str
    results: str  # one letter per result: o(k), w(arn), f(ail)
    phase: Phase
    sent: tuple[Sent, ...] = ()
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    start: AlertState = field(default_factory=AlertState.initial)
    severity: Severity | None = None  # the final state's, where it matters


RATE = AlertPolicy(failure_threshold=10, window=5, min_success_rate=0.8, success_threshold=1)
# both ways to fire: three failures in a row, or under 80 % ok among the last five
BOTH = AlertPolicy(failure_threshold=3, window=5, min_success_rate=0.8, success_threshold=2)
FIRING_CRITICAL = AlertState(
    phase=Phase.FIRING,
    severity=C,
    failures=4,
    recent=(False,) * 4,
    since=T0 - 600,
    summary="connection refused",
    last_notified_at=T0 - 600,
)

# what each notification says: (kind, severity, reason)
FIRED_C = ("firing", C, "consecutive")
FIRED_W = ("firing", W, "consecutive")
RESOLVED_C = ("resolved", C, "consecutive")
FIRED_RATE = ("firing", C, "success_rate")
RESOLVED_RATE = ("resolved", C, "success_rate")
PENDING, FIRING_, OK_ = Phase.PENDING, Phase.FIRING, Phase.OK
NO_WARN = AlertPolicy(warn=False)

ROWS = [
    Row(name="under the threshold: pending", results="ff", phase=PENDING, severity=C),
    Row(name="fires at the threshold", results="fff", phase=FIRING_, sent=(FIRED_C,)),
    Row(name="fires once, however long it fails", results="ffffff", phase=FIRING_, sent=(FIRED_C,)),
    Row(name="an ok breaks a pending run", results="ffoff", phase=PENDING),
    Row(name="one ok does not resolve", results="fffo", phase=FIRING_, sent=(FIRED_C,)),
    Row(name="resolves after success_threshold oks", results="fffoo", phase=OK_,
        sent=(FIRED_C, RESOLVED_C)),
    Row(name="a failure restarts the ok count", results="fffofo", phase=FIRING_, sent=(FIRED_C,)),
    Row(name="warn alerts as a warning", results="www", phase=FIRING_, sent=(FIRED_W,), severity=W),
    Row(name="warn off: a warn is fine", results="wwwww", phase=OK_, policy=NO_WARN),
    Row(name="warn off: warns resolve a failure", results="fffww", phase=OK_, policy=NO_WARN,
        sent=(FIRED_C, RESOLVED_C)),
    Row(name="pending takes the worst severity", results="wwf", phase=FIRING_, sent=(FIRED_C,)),
    Row(name="escalation warning -> critical notifies", results="wwwwf", phase=FIRING_,
        sent=(FIRED_W, FIRED_C), severity=C),
    Row(name="de-escalation is silent and keeps the worst", results="fffww", phase=FIRING_,
        sent=(FIRED_C,), severity=C),
    Row(name="no resolved without send_on_resolved", results="fffoo", phase=OK_,
        policy=AlertPolicy(send_on_resolved=False), sent=(FIRED_C,)),
    Row(name="threshold 1 fires at once", results="f", phase=FIRING_,
        policy=AlertPolicy(failure_threshold=1), sent=(FIRED_C,)),
    Row(name="success rate: a window not yet full never fires", results="fofo", phase=OK_,
        policy=RATE),
    Row(name="success rate: fires when the full window drops below", results="fofof",
        phase=FIRING_, policy=RATE, sent=(FIRED_RATE,)),
    Row(name="success rate: oks alone do not resolve a low rate", results="fofofoo",
        phase=FIRING_, policy=RATE, sent=(FIRED_RATE,)),
    Row(name="success rate: resolves once the rate is back", results="fofofooo", phase=OK_,
        policy=RATE, sent=(FIRED_RATE, RESOLVED_RATE)),
    Row(name="both: oks do not resolve a run of failures while the rate is low",
        results="fffoo", phase=FIRING_, policy=BOTH, sent=(FIRED_C,)),
    Row(name="both: so the next failure does not fire it again", results="fffoof",
        phase=FIRING_, policy=BOTH, sent=(FIRED_C,)),
    Row(name="both: resolves once the oks are the rate's share", results="fffoooo",
        phase=OK_, policy=BOTH, sent=(FIRED_C, RESOLVED_C)),
    Row(name="restored firing state resolves", results="oo", phase=OK_, start=FIRING_CRITICAL,
        sent=(RESOLVED_C,)),
    Row(name="restored firing state does not fire again", results="fff", phase=FIRING_,
        start=FIRING_CRITICAL),
    Row(name="restored pending state fires on the next failure", results="f", phase=FIRING_,
        start=AlertState(phase=PENDING, severity=W, failures=2), sent=(FIRED_C,)),
]  # fmt: skip


def sample(index: int, code: str) -> Sample:
    return Sample(
        target="gpu-1", check="chat", at=T0 + STEP_S * index, status=CODES[code], elapsed_ms=5.0
    )


def summary_of(code: str, index: int) -> str:
    return f"{CODES[code]} result {index}"


def run(
    state: AlertState, results: str, policy: AlertPolicy, *, offset: int = 0
) -> tuple[AlertState, list[Notification]]:
    sent: list[Notification] = []
    for index, code in enumerate(results, start=offset):
        state, notes = step(
            state, sample=sample(index, code), summary=summary_of(code, index), url=URL,
            policy=policy,
        )  # fmt: skip
        sent += notes
    return state, sent


def essence(notes: list[Notification]) -> list[tuple[object, ...]]:
    """What a receiver sees of each notification, all but its random id."""
    return [
        (n.kind, n.severity, n.reason, n.since, n.at, n.summary, n.target, n.url) for n in notes
    ]


def through_json(state: AlertState) -> AlertState:
    return AlertState.from_json(json.loads(json.dumps(state.to_json())))


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_transitions(row: Row) -> None:
    state, sent = run(row.start, row.results, row.policy)
    assert state.phase is row.phase
    assert [(n.kind, n.severity, n.reason) for n in sent] == list(row.sent)
    if row.severity is not None:
        assert state.severity is row.severity
    assert len({n.id for n in sent}) == len(sent)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_restart_in_every_state_changes_nothing(row: Row) -> None:
    whole_state, whole_sent = run(row.start, row.results, row.policy)
    for cut in range(len(row.results) + 1):
        before, sent = run(row.start, row.results[:cut], row.policy)
        after, more = run(through_json(before), row.results[cut:], row.policy, offset=cut)
        assert after == whole_state, f"restart after {cut} results"
        assert essence(sent + more) == essence(whole_sent), f"restart after {cut} results"


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r.sent and r.start == AlertState.initial()],
    ids=lambda r: r.name,
)
def test_restart_through_the_store_neither_refires_nor_forgets(row: Row, tmp_path: Path) -> None:
    whole_state, whole_sent = run(row.start, row.results, row.policy)
    for cut in range(len(row.results) + 1):
        state_dir = tmp_path / f"cut-{cut}"
        with Store.open(state_dir) as store:
            state = row.start
            for index, code in enumerate(row.results[:cut]):
                state, notes = run(state, code, row.policy, offset=index)
                store.commit_step("gpu-1", "chat", state, notes, ["hook"])
        with Store.open(state_dir) as store:
            state = store.alert_states().get(("gpu-1", "chat"), row.start)
            for index, code in enumerate(row.results[cut:], start=cut):
                state, notes = run(state, code, row.policy, offset=index)
                store.commit_step("gpu-1", "chat", state, notes, ["hook"])
            queued = [d.notification for d in store.due(float("inf"))]
            assert store.alert_states()[("gpu-1", "chat")] == whole_state
        # due() gives one per alert at a time: deliver them in order to see the whole outbox
        with Store.open(state_dir) as store:
            outbox: list[Notification] = []
            while due := store.due(float("inf")):
                outbox.append(due[0].notification)
                store.delivered(due[0].id)
        assert essence(outbox) == essence(whole_sent), f"restart after {cut} results"
        assert queued == outbox[:1]


def test_notifications_carry_the_alert() -> None:
    state, sent = run(AlertState.initial(), "ffooo", AlertPolicy(failure_threshold=2))
    firing, resolved = sent
    assert (firing.target, firing.check, firing.url) == ("gpu-1", "chat", URL)
    assert firing.since == firing.at == T0 + STEP_S  # the second failure fired it
    assert firing.summary == summary_of("f", 1)
    assert resolved.since == firing.since
    assert resolved.at == T0 + 3 * STEP_S
    assert resolved.summary == summary_of("o", 3)  # what it says now that it works
    assert state == AlertState(recent=(False, False, True, True, True))


def test_escalation_tells_which_severity_it_leaves() -> None:
    _, sent = run(AlertState.initial(), "wwwf", AlertPolicy())
    assert [n.escalated_from for n in sent] == [None, Severity.WARNING]
    assert sent[1].since == sent[0].since  # the same incident


def test_recent_keeps_only_the_window() -> None:
    state, _ = run(AlertState.initial(), "ooooofoo", AlertPolicy(window=4))
    assert state.recent == (True, False, True, True)


def test_firing_since_and_summary_follow_the_failures() -> None:
    state, _ = run(AlertState.initial(), "ffff", AlertPolicy())
    assert state.since == T0 + 2 * STEP_S
    assert state.summary == summary_of("f", 3)
    assert state.last_notified_at == T0 + 2 * STEP_S


REMIND = AlertPolicy(reminder_s=3600.0)
FIRING = replace(FIRING_CRITICAL, since=100.0, last_notified_at=100.0)


@pytest.mark.parametrize(
    ("state", "now", "policy", "reminds"),
    [
        (FIRING, 3699.0, REMIND, False),
        (FIRING, 3700.0, REMIND, True),
        (replace(FIRING, last_notified_at=None), 3700.0, REMIND, True),
        (FIRING, 99999.0, AlertPolicy(reminder_s=None), False),
        (AlertState(phase=Phase.PENDING, severity=C, failures=2), 99999.0, REMIND, False),
        (AlertState.initial(), 99999.0, REMIND, False),
    ],
)
def test_remind(state: AlertState, now: float, policy: AlertPolicy, reminds: bool) -> None:
    new, note = remind(state, now=now, url=URL, target="gpu-1", check="chat", policy=policy)
    if not reminds:
        assert (new, note) == (state, None)
        return
    assert note is not None
    assert (note.kind, note.severity, note.since, note.at) == ("reminder", C, 100.0, now)
    assert note.summary == state.summary
    assert new == replace(state, last_notified_at=now)
    # the next reminder counts from this one
    assert (
        remind(new, now=now + 60, url=URL, target="gpu-1", check="chat", policy=policy)[1] is None
    )


def test_json_round_trips() -> None:
    assert through_json(FIRING_CRITICAL) == FIRING_CRITICAL
    assert through_json(AlertState.initial()) == AlertState.initial()
    _, (note, escalated) = run(AlertState.initial(), "wwwf", AlertPolicy())
    for n in (note, escalated):
        assert Notification.from_json(json.loads(json.dumps(n.to_json()))) == n


def test_open_alert_and_restated_firing() -> None:
    alert = open_alert(FIRING_CRITICAL, target="gpu-1", check="chat")
    assert alert is not None
    assert (alert.severity, alert.since, alert.summary) == (C, T0 - 600, "connection refused")
    assert open_alert(AlertState.initial(), target="gpu-1", check="chat") is None
    restated = firing_notification(FIRING_CRITICAL, target="gpu-1", check="chat", url=URL, now=T0)
    assert restated is not None
    assert (restated.kind, restated.since, restated.at) == ("firing", T0 - 600, T0)
    pending = AlertState(phase=Phase.PENDING, severity=C, failures=1)
    assert firing_notification(pending, target="gpu-1", check="chat", url=URL, now=T0) is None
