"""plan_checks (pure) and run_checks against simulators on 127.0.0.1 (integration)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from ollama_fleet.checks.http import make_client
from ollama_fleet.checks.model import (
    CHECK_NAMES,
    CheckResult,
    CheckRun,
    FailureClass,
    PublicAccess,
    RequiredModel,
    Status,
    Target,
    TlsPolicy,
)
from ollama_fleet.checks.probe import SharedGets
from ollama_fleet.checks.runner import plan_checks, run_checks, run_one
from ollama_fleet.checks.settings import ProbeSettings
from ollama_fleet.simulator import Faults, SimulatorConfig, create_app
from ollama_fleet.testbed.servers import free_port, serve_in_thread

MODEL = "llama3.2:1b"
HTTP = "http://gpu-1.example.net"
HTTPS = "https://gpu-1.example.net"


# --- plan_checks ---------------------------------------------------------------------------


def test_plan_for_a_plain_http_target() -> None:
    assert plan_checks(Target(name="t", url=HTTP)) == ("connectivity", "models", "auth")


def test_plan_for_an_https_target_adds_tls() -> None:
    assert plan_checks(Target(name="t", url=HTTPS)) == ("connectivity", "tls", "models", "auth")


def test_a_target_closes_no_port_unless_told() -> None:
    # `check --url http://127.0.0.1:11434` must not fail its own port as exposed
    bare = Target(name="t", url="http://127.0.0.1:11434")
    assert bare.closed_ports == ()
    assert "exposure" not in plan_checks(bare)
    assert "exposure" in plan_checks(Target(name="t", url=HTTP, closed_ports=(11434,)))


def test_required_models_add_chat() -> None:
    target = Target(name="t", url=HTTPS, required_models=(RequiredModel(name=MODEL),))
    assert "chat" in plan_checks(target)


def test_chat_model_alone_adds_chat() -> None:
    assert "chat" in plan_checks(Target(name="t", url=HTTP, chat_model=MODEL))


@pytest.mark.parametrize(
    "target",
    [
        Target(name="t", url=HTTP),
        Target(name="t", url=HTTP, api_key="k"),
        Target(name="t", url=HTTP, public_access=PublicAccess.OPEN),
        Target(name="t", url=HTTP, public_access=PublicAccess.OPEN, check_write_endpoints=False),
    ],
)
def test_auth_runs_on_every_target(target: Target) -> None:
    assert "auth" in plan_checks(target)


def test_everything_applies_in_the_fixed_order() -> None:
    target = Target(
        name="t",
        url=HTTPS,
        required_models=(RequiredModel(name=MODEL),),
        api_key="k",
        closed_ports=(11434,),
    )
    assert plan_checks(target) == CHECK_NAMES


def test_no_ports_means_no_exposure_check() -> None:
    assert "exposure" not in plan_checks(Target(name="t", url=HTTP, closed_ports=()))


def test_open_ports_alone_keep_the_exposure_check() -> None:
    target = Target(name="t", url=HTTP, closed_ports=(), open_ports=(443,))
    assert "exposure" in plan_checks(target)


def test_only_filters_and_keeps_the_run_order() -> None:
    target = Target(name="t", url=HTTPS, required_models=(RequiredModel(name=MODEL),))
    assert plan_checks(target, ["chat", "connectivity", "tls"]) == ("connectivity", "tls", "chat")


def test_only_cannot_add_a_check_that_does_not_apply() -> None:
    assert plan_checks(Target(name="t", url=HTTP), ["tls", "chat", "models"]) == ("models",)


def test_only_nothing_runs_nothing() -> None:
    assert plan_checks(Target(name="t", url=HTTPS), []) == ()


# --- run_checks against simulators ---------------------------------------------------------


def simulator(faults: Faults | None = None) -> SimulatorConfig:
    return SimulatorConfig(tokens_per_second=0, faults=faults or Faults())


def target(name: str, port: int, *, models: bool = True) -> Target:
    """A plain-http target on 127.0.0.1 whose closed-port check looks at an unused port.

    It is the simulator itself, with no proxy: like the host's self-check of its loopback
    Ollama, it is declared open and its write endpoints (which answer there) are not probed.
    """
    return Target(
        name=name,
        url=f"http://127.0.0.1:{port}",
        required_models=(RequiredModel(name=MODEL),) if models else (),
        closed_ports=(free_port(),),
        public_access=PublicAccess.OPEN,
        check_write_endpoints=False,
    )


def run(
    targets: list[Target],
    *,
    settings: ProbeSettings | None = None,
    only: list[str] | None = None,
    progress: Callable[[CheckResult], None] | None = None,
) -> CheckRun:
    return asyncio.run(run_checks(targets, settings=settings, only=only, progress=progress))


def by_target(run: CheckRun, name: str) -> list[CheckResult]:
    return [r for r in run.results if r.target == name]


def assert_all_ok(results: list[CheckResult]) -> None:
    assert results
    for result in results:
        assert result.status is Status.OK, (result.check, result.summary)


@pytest.fixture(scope="module")
def healthy_ports() -> Iterator[tuple[int, int, int]]:
    with (
        serve_in_thread(create_app(simulator())) as a,
        serve_in_thread(create_app(simulator())) as b,
        serve_in_thread(create_app(simulator())) as c,
    ):
        yield a, b, c


@pytest.mark.integration
def test_run_deadline_fails_the_slow_target_and_keeps_the_healthy_one(
    healthy_ports: tuple[int, int, int],
) -> None:
    slow_faults = Faults(latency_ms=5000)  # on every path
    with serve_in_thread(create_app(simulator(slow_faults))) as slow_port:
        targets = [target("slow", slow_port), target("healthy", healthy_ports[0])]
        settings = ProbeSettings(deadline_s=1.5, read_timeout_s=10, check_timeout_s=10)
        result = run(targets, settings=settings)

    plan = plan_checks(targets[0])
    assert plan == ("connectivity", "models", "chat", "auth", "exposure")
    assert [(r.target, r.check) for r in result.results] == [
        *(("slow", check) for check in plan),
        *(("healthy", check) for check in plan),
    ]
    assert result.targets == ("slow", "healthy")
    for slow in by_target(result, "slow"):
        assert slow.status is Status.FAIL
        assert slow.failure_class is FailureClass.READ_TIMEOUT
    slow_results = {r.check: r for r in by_target(result, "slow")}
    # connectivity was waiting for its answer; the others wait behind it and never started
    assert slow_results["connectivity"].summary == (
        "run deadline of 1.5 s reached while waiting for the answer (GET /api/version)"
    )
    assert slow_results["connectivity"].elapsed_ms > 0
    for check in ("models", "chat", "auth", "exposure"):
        assert (
            slow_results[check].summary == "run deadline of 1.5 s reached before the check started"
        )
        assert "--deadline" in (slow_results[check].hint or "")
    assert_all_ok(by_target(result, "healthy"))
    assert result.status is Status.FAIL


@pytest.mark.integration
def test_run_deadline_keeps_every_finished_result_and_stops_only_the_slow_chat() -> None:
    faults = Faults(latency_ms=3000, paths=("/api/chat",))
    seen: list[CheckResult] = []
    with serve_in_thread(create_app(simulator(faults))) as port:
        settings = ProbeSettings(deadline_s=1.5, read_timeout_s=10, check_timeout_s=10)
        result = run([target("gpu-1", port)], settings=settings, progress=seen.append)

    checks = {r.check: r for r in result.results}
    assert list(checks) == ["connectivity", "models", "chat", "auth", "exposure"]
    for name in ("connectivity", "models", "auth", "exposure"):
        assert checks[name].status is Status.OK, checks[name].findings
        assert checks[name].elapsed_ms > 0  # its own time, not a placeholder
    chat = checks["chat"]
    assert chat.status is Status.FAIL
    assert chat.failure_class is FailureClass.READ_TIMEOUT
    assert chat.summary == (
        "run deadline of 1.5 s reached while waiting for the answer (POST /api/chat)"
    )
    assert chat.elapsed_ms > 0
    # every result reached the progress callback once, the stopped one too
    assert sorted(r.check for r in seen) == sorted(checks)


@pytest.mark.integration
def test_check_timeout_fails_only_the_slow_check(healthy_ports: tuple[int, int, int]) -> None:
    # /api/ps is read only by the models check, so only that check runs over its budget.
    faults = Faults(latency_ms=2000, paths=("/api/ps",))
    with serve_in_thread(create_app(simulator(faults))) as port:
        targets = [target("slow-ps", port, models=False), target("healthy", healthy_ports[0])]
        settings = ProbeSettings(check_timeout_s=0.5, read_timeout_s=10, deadline_s=60)
        result = run(targets, settings=settings)

    slow = {r.check: r for r in by_target(result, "slow-ps")}
    assert set(slow) == {"connectivity", "models", "auth", "exposure"}
    assert slow["models"].status is Status.FAIL
    assert slow["models"].failure_class is FailureClass.READ_TIMEOUT
    assert slow["models"].summary == (
        "not finished within 0.5 s: stopped while waiting for the answer (GET /api/ps)"
    )
    assert slow["connectivity"].status is Status.OK
    assert slow["exposure"].status is Status.OK
    assert_all_ok(by_target(result, "healthy"))


@pytest.mark.integration
def test_concurrency_one_still_checks_every_target(healthy_ports: tuple[int, int, int]) -> None:
    targets = [target(f"gpu-{i}", port) for i, port in enumerate(healthy_ports)]
    result = run(targets, settings=ProbeSettings(concurrency=1, deadline_s=60))

    assert result.targets == ("gpu-0", "gpu-1", "gpu-2")
    for t in targets:
        results = by_target(result, t.name)
        assert [r.check for r in results] == list(plan_checks(t))
        assert_all_ok(results)
    assert result.status is Status.OK


@pytest.mark.integration
def test_progress_is_called_once_per_result(healthy_ports: tuple[int, int, int]) -> None:
    seen: list[CheckResult] = []
    targets = [target("a", healthy_ports[0]), target("b", healthy_ports[1], models=False)]
    result = run(targets, progress=seen.append)

    assert len(seen) == len(result.results) == 9
    assert Counter((r.target, r.check) for r in seen) == Counter(
        (r.target, r.check) for r in result.results
    )
    assert all(any(s is r for r in result.results) for s in seen)


@pytest.mark.integration
def test_only_limits_the_run(healthy_ports: tuple[int, int, int]) -> None:
    targets = [target("a", healthy_ports[0]), target("b", healthy_ports[1])]
    result = run(targets, only=["models", "connectivity"])
    assert [(r.target, r.check) for r in result.results] == [
        ("a", "connectivity"),
        ("a", "models"),
        ("b", "connectivity"),
        ("b", "models"),
    ]
    assert_all_ok(list(result.results))


@pytest.mark.integration
def test_refused_target_does_not_affect_the_others(healthy_ports: tuple[int, int, int]) -> None:
    targets = [target("down", free_port(), models=False), target("up", healthy_ports[0])]
    result = run(targets, settings=ProbeSettings(deadline_s=60))

    down = {r.check: r for r in by_target(result, "down")}
    assert down["connectivity"].status is Status.FAIL
    assert down["connectivity"].failure_class is FailureClass.REFUSED
    assert down["models"].failure_class is FailureClass.REFUSED
    assert down["exposure"].status is Status.OK  # its closed port is closed, as it should be
    assert_all_ok(by_target(result, "up"))
    assert [r.target for r in result.results][:3] == ["down"] * 3


def test_a_target_that_cannot_start_fails_alone(healthy_ports: tuple[int, int, int]) -> None:
    # a CA file that vanished after validation: its client cannot be built
    broken = Target(
        name="broken",
        url=f"https://localhost:{free_port()}",
        tls=TlsPolicy(ca_file="/nonexistent/ca.pem"),
        closed_ports=(),
    )
    result = run([broken, target("up", healthy_ports[0])], settings=ProbeSettings(deadline_s=60))
    failed = by_target(result, "broken")
    assert [r.check for r in failed] == ["connectivity", "tls", "models", "auth"]
    for found in failed:
        assert found.failure_class is FailureClass.BAD_RESPONSE
        assert found.summary.startswith("check not run: FileNotFoundError")
    assert_all_ok(by_target(result, "up"))


def test_no_targets_is_an_empty_ok_run() -> None:
    result = run([])
    assert result.results == ()
    assert result.targets == ()
    assert result.status is Status.OK


@pytest.mark.integration
def test_targets_that_share_a_name_each_keep_their_results(
    healthy_ports: tuple[int, int, int],
) -> None:
    # two --url targets on one host:port (different paths) are named alike
    twins = [target("gpu-1", healthy_ports[0]), target("gpu-1", healthy_ports[1], models=False)]
    result = run(twins, settings=ProbeSettings(deadline_s=60))
    assert [(r.url, r.check) for r in result.results] == [
        *((twins[0].url, check) for check in plan_checks(twins[0])),
        *((twins[1].url, check) for check in plan_checks(twins[1])),
    ]
    assert_all_ok(list(result.results))


def counting_ollama(counts: Counter[str]) -> ASGIApp:
    """A simulator app wrapped to count the requests per path."""
    app = create_app(SimulatorConfig(tokens_per_second=0))

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            counts[str(scope["path"])] += 1
        await app(scope, receive, send)

    return counted


def test_run_one_shares_what_the_host_has_but_never_api_ps() -> None:
    counts: Counter[str] = Counter()
    with serve_in_thread(counting_ollama(counts)) as port:
        target = Target(
            name="sim",
            url=f"http://127.0.0.1:{port}",
            required_models=(RequiredModel(name="llama3.2:1b"),),
        )

        async def scenario() -> list[Status]:
            settings = ProbeSettings()
            shared: SharedGets = {}
            async with make_client(target, settings) as client:
                results = [
                    await run_one(target, check, settings=settings, client=client, shared=shared)
                    for check in ("connectivity", "models", "models")
                ]
                alone = await run_one(target, "models", settings=settings, client=client)
            return [r.status for r in (*results, alone)]

        statuses = asyncio.run(scenario())
    assert statuses == [Status.OK] * 4
    assert counts["/api/version"] == 1
    assert counts["/api/tags"] == 2  # one shared by the three checks, one for the check alone
    assert counts["/api/ps"] == 3  # fresh for every check that reads it
