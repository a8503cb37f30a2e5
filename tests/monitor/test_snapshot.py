"""The status page's snapshot, built from what a monitor recorded into a real store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ollama_fleet.checks.model import (
    CheckResult,
    FailureClass,
    PublicAccess,
    RequiredModel,
    Status,
    Target,
    fail,
    ok,
)
from ollama_fleet.monitor.engine import Monitor
from ollama_fleet.monitor.metrics import MonitorMetrics
from ollama_fleet.monitor.settings import MonitorConfig
from ollama_fleet.monitor.snapshot import BARS, build_snapshot
from ollama_fleet.monitor.store import Store

NOW = 1_800_000_000.0
SIM = Target(
    name="sim",
    url="http://127.0.0.1:1",
    required_models=(RequiredModel(name="llama3.2:1b"),),
    public_access=PublicAccess.OPEN,
)
NEVER = Target(name="never", url="http://127.0.0.1:2", public_access=PublicAccess.OPEN)


def result(check: str, *, failing: bool = False, **details: object) -> CheckResult:
    finding = fail(FailureClass.REFUSED, f"{check} refused") if failing else ok(f"{check} fine")
    return CheckResult(
        target="sim",
        url=SIM.url,
        check=check,
        findings=(finding,),
        elapsed_ms=40.0,
        details=details,
    )


def test_a_snapshot_shows_latest_results_uptime_bars_charts_and_what_ollama_holds(
    tmp_path: Path,
) -> None:
    config = MonitorConfig(source=tmp_path / "m.yml", targets=(SIM, NEVER))

    async def scenario() -> None:
        with Store.open(tmp_path / "state") as store:
            monitor = Monitor(config, store=store, metrics=MonitorMetrics(), clock=lambda: NOW)
            # the last hour: three ok connectivity results and one failure, 15 min apart
            for minutes, failing in ((60, False), (45, False), (30, True), (15, False)):
                monitor.record(
                    SIM,
                    result("connectivity", failing=failing, version="0.12.0-simulator"),
                    at=NOW - minutes * 60,
                )
            loaded = [{"name": "llama3.2:1b", "size": 2000, "size_vram": 2000, "expires_at": None}]
            monitor.record(
                SIM,
                result("models", present=["llama3.2:1b"], loaded_models=loaded),
                at=NOW - 60,
            )
            monitor.record(SIM, result("chat", first_token_ms=321.0), at=NOW - 30)
            snapshot = build_snapshot(monitor, now=NOW)
            await monitor.close()
        sim, never = snapshot.targets
        assert sim.status is Status.OK
        assert sim.version == "0.12.0-simulator" and snapshot.simulated == ("sim",)
        views = {view.check: view for view in sim.checks}
        assert set(views) == {"connectivity", "models", "chat", "auth"}
        connectivity = views["connectivity"]
        assert connectivity.status is Status.OK
        assert connectivity.at == NOW - 15 * 60
        assert connectivity.uptime["24h"] == 0.75
        assert len(connectivity.bars) == BARS
        assert Status.FAIL in connectivity.bars and connectivity.bars[0] is None
        assert views["auth"].status is None  # scheduled, not run yet
        assert sim.models_present == ("llama3.2:1b",)
        assert [(m.name, m.vram_bytes) for m in sim.models_loaded] == [("llama3.2:1b", 2000)]
        assert [ms for _, ms in sim.response_ms] == [40.0] * 4
        assert sim.first_token_ms == ((NOW - 30, 321.0),)
        assert never.status is None and all(view.status is None for view in never.checks)
        assert all(v.uptime["1h"] is None and set(v.bars) == {None} for v in never.checks)

    asyncio.run(scenario())
