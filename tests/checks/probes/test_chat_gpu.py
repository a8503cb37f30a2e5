"""chat with expect_gpu: after the tiny chat, /api/ps must show the model in VRAM.

Pure judgements of /api/ps answers first (the shape Ollama documents: name, model, size,
size_vram), then the probe against the simulator playing a GPU host and a CPU-only host.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ollama_fleet.checks.model import FailureClass, RequiredModel, Status, Target
from ollama_fleet.checks.probes.chat import placement
from ollama_fleet.checks.runner import run_checks
from ollama_fleet.simulator import SimulatorConfig, create_app
from ollama_fleet.testbed.servers import serve_in_thread

GIB = 2**30


def ps(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"models": list(entries)}


def loaded(name: str, size: int, vram: int) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "size": size,
        "size_vram": vram,
        "expires_at": "2026-12-01T12:00:00Z",
    }


@pytest.mark.parametrize(
    ("answer", "status", "klass", "words"),
    [
        (ps(loaded("llama3.2:1b", 2 * GIB, 2 * GIB)), Status.OK, None, "runs on the GPU (2048 MiB"),
        (ps(loaded("llama3.2:1b", 2 * GIB, 0)), Status.FAIL, FailureClass.CPU_FALLBACK,
         "runs on the CPU"),
        (ps(loaded("llama3.2:1b", 4 * GIB, GIB)), Status.WARN, FailureClass.CPU_FALLBACK,
         "only 25% in VRAM"),
        (ps(loaded("other:7b", GIB, GIB)), Status.FAIL, FailureClass.CPU_FALLBACK,
         "is not loaded right after the chat"),
        (ps(), Status.FAIL, FailureClass.CPU_FALLBACK, "is not loaded"),
        ({"models": "x"}, Status.FAIL, FailureClass.BAD_RESPONSE, "no model list"),
        (ps({"name": "llama3.2:1b"}), Status.FAIL, FailureClass.BAD_RESPONSE, "no size/size_vram"),
    ],
)  # fmt: skip
def test_placement_from_api_ps(
    answer: dict[str, Any], status: Status, klass: FailureClass | None, words: str
) -> None:
    details: dict[str, Any] = {}
    finding = placement(answer, "llama3.2:1b", details)
    assert (finding.status, finding.failure_class) == (status, klass)
    assert words in finding.message


def test_a_bare_name_matches_its_latest_tag() -> None:
    finding = placement(ps(loaded("llama3:latest", GIB, GIB)), "llama3", {})
    assert finding.status is Status.OK


@pytest.mark.integration
@pytest.mark.parametrize(("gpu", "expected"), [(True, Status.OK), (False, Status.FAIL)])
def test_the_chat_check_fails_an_ollama_that_runs_on_the_cpu(gpu: bool, expected: Status) -> None:
    with serve_in_thread(create_app(SimulatorConfig(gpu=gpu, tokens_per_second=0))) as port:
        target = Target(
            name="gpu-1",
            url=f"http://127.0.0.1:{port}",
            expect_gpu=True,
            required_models=(RequiredModel(name="llama3.2:1b"),),
        )
        run = asyncio.run(run_checks([target], only=["chat"]))
    (result,) = run.results
    assert result.status is expected, result.summary
    if not gpu:
        assert result.failure_class is FailureClass.CPU_FALLBACK
        assert result.details["size_vram"] == 0
    else:
        assert result.details["size_vram"] > 0


@pytest.mark.integration
def test_without_expect_gpu_the_cpu_is_not_judged() -> None:
    with serve_in_thread(create_app(SimulatorConfig(gpu=False, tokens_per_second=0))) as port:
        target = Target(
            name="cpu-1",
            url=f"http://127.0.0.1:{port}",
            required_models=(RequiredModel(name="llama3.2:1b"),),
        )
        run = asyncio.run(run_checks([target], only=["chat"]))
    assert run.results[0].status is Status.OK
    assert "size_vram" not in run.results[0].details


def test_the_registrys_long_name_is_the_same_model() -> None:
    finding = placement(
        ps(loaded("registry.ollama.ai/library/llama3.2:1b", GIB, GIB)), "llama3.2:1b", {}
    )
    assert finding.status is Status.OK
