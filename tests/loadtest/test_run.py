"""The driver against the real simulator (a test double of Ollama's API) on 127.0.0.1.

Both APIs, streamed and not; faults set at runtime through /_simulator/faults, each counted in
its failure class; a refused port. A transport double proves the concurrency bound.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ollama_fleet.checks.model import FailureClass
from ollama_fleet.loadtest import Api, LoadRun, LoadSettings, TokenSource, run_loadtest, summarize
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import free_port, serve_in_thread

pytestmark = pytest.mark.integration

MODEL = "llama3.2:1b"
MAX_TOKENS = 8
N = 20


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with serve_in_thread(create_app(SimulatorConfig(tokens_per_second=0))) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def faults(sim: str) -> Iterator[Any]:
    """Set the simulator's faults for one test; they are reset afterwards."""

    def put(**values: Any) -> None:
        httpx.put(f"{sim}/_simulator/faults", json=values).raise_for_status()

    yield put
    httpx.delete(f"{sim}/_simulator/faults").raise_for_status()


def load(url: str, **settings: Any) -> LoadRun:
    values: dict[str, Any] = {"model": MODEL, "requests": N, "concurrency": 4}
    values.update(settings)
    return asyncio.run(run_loadtest(LoadSettings(url=url, max_tokens=MAX_TOKENS, **values)))


@pytest.mark.parametrize("api", list(Api))
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_every_request_succeeds_and_is_measured(sim: str, api: Api, stream: bool) -> None:
    run = load(sim, api=api, stream=stream)
    summary = summarize(run)

    assert (summary.requests, summary.ok, summary.failed) == (N, N, 0)
    assert sorted(o.index for o in run.outcomes) == list(range(N))
    source = TokenSource.EVAL_COUNT if api is Api.OLLAMA else TokenSource.USAGE
    assert {(o.tokens, o.tokens_source) for o in run.outcomes} == {(MAX_TOKENS, source)}
    assert summary.total_tokens == N * MAX_TOKENS
    assert summary.latency_ms.count == N and summary.latency_ms.p50 is not None
    if stream:
        assert all(o.first_token_ms is not None for o in run.outcomes)
        assert all(o.first_token_ms <= o.latency_ms for o in run.outcomes if o.first_token_ms)
    else:
        assert summary.first_token_ms.count == 0
    assert run.simulator and run.server_version == "0.12.0-simulator"


def _classes(run: LoadRun) -> dict[FailureClass, int]:
    return {g.failure_class: g.count for g in summarize(run).errors}


@pytest.mark.parametrize("api", list(Api))
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 503}, FailureClass.OVERLOAD),
        ({"status": 429}, FailureClass.OVERLOAD),
        ({"status": 500}, FailureClass.SERVER_ERROR),
        ({"status": 401}, FailureClass.AUTH),
        ({"cut_stream_after": 2}, FailureClass.BAD_RESPONSE),
        ({"stream_error": "CUDA error: out of memory"}, FailureClass.SERVER_ERROR),
        ({"malformed": True}, FailureClass.BAD_RESPONSE),
    ],
    ids=["503", "429", "500", "401", "cut", "stream-error", "malformed"],
)
def test_a_fault_is_counted_in_its_class(
    sim: str, faults: Any, api: Api, fault: dict[str, Any], expected: FailureClass
) -> None:
    faults(**fault, paths=["/api/chat", "/v1/chat/completions"])
    run = load(sim, api=api, requests=6, concurrency=3)

    assert _classes(run) == {expected: 6}
    assert run.simulator  # the label comes from /api/version, which the faults spared


@pytest.mark.parametrize("api", list(Api))
def test_an_unknown_model_is_model_missing(sim: str, api: Api) -> None:
    run = load(sim, api=api, model="no-such-model:7b", requests=4)

    assert _classes(run) == {FailureClass.MODEL_MISSING: 4}
    group = summarize(run).errors[0]
    assert "no-such-model:7b" in group.example and "ollama pull no-such-model:7b" in group.hint


def test_a_fault_on_the_whole_answer_is_counted_too(sim: str, faults: Any) -> None:
    faults(status=503, paths=["/api/chat"])
    run = load(sim, stream=False, requests=4)

    assert _classes(run) == {FailureClass.OVERLOAD: 4}
    assert {o.status_code for o in run.outcomes} == {503}


def test_a_request_slower_than_the_timeout_is_a_read_timeout(sim: str, faults: Any) -> None:
    faults(latency_ms=1000, paths=["/api/chat"])
    run = load(sim, requests=2, concurrency=2, timeout_s=0.3)

    assert _classes(run) == {FailureClass.READ_TIMEOUT: 2}
    assert not summarize(run).unreachable


def test_a_refused_port_is_unreachable() -> None:
    run = load(f"http://127.0.0.1:{free_port()}", requests=3)
    summary = summarize(run)

    assert _classes(run) == {FailureClass.REFUSED: 3}
    assert summary.unreachable
    assert not run.simulator and run.server_version is None


def test_never_more_in_flight_than_the_concurrency() -> None:
    in_flight = 0
    most = 0
    chats = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most, chats
        if request.url.path == "/api/version":
            return httpx.Response(200, json={"version": "0.6.5"})
        assert (request.method, request.url.path) == ("POST", "/api/chat"), request.url
        assert json.loads(request.content)["options"] == {"num_predict": MAX_TOKENS}
        in_flight += 1
        chats += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)  # let the other workers start theirs
        in_flight -= 1
        body = {"message": {"content": "hi"}, "done": True, "eval_count": 3}
        return httpx.Response(200, json=body)

    settings = LoadSettings(
        url="http://127.0.0.1:9", model=MODEL, requests=30, concurrency=5, stream=False,
        max_tokens=MAX_TOKENS,
    )  # fmt: skip
    run = asyncio.run(run_loadtest(settings, transport=httpx.MockTransport(handler)))

    assert chats == 30 and len(run.outcomes) == 30
    assert most == 5
    assert not run.simulator and run.server_version == "0.6.5"
    assert summarize(run).total_tokens == 90
