"""Tests of the simulator's per-app state: models, keep-alive and faults."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.simulator import Faults, SimulatorConfig, model_from_name
from ollama_fleet.simulator.state import (
    DEFAULT_KEEP_ALIVE_S,
    FOREVER_S,
    SimulatorState,
    parse_keep_alive,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, DEFAULT_KEEP_ALIVE_S),
        (0, 0.0),
        ("0", 0.0),
        (30, 30.0),
        (1.5, 1.5),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        (-1, FOREVER_S),
        ("-1m", FOREVER_S),
    ],
)
def test_parse_keep_alive(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["5", "soon", "", True, [], {}])
def test_parse_keep_alive_refuses_nonsense(value: object) -> None:
    with pytest.raises(ValueError):
        parse_keep_alive(value)


def test_models_change_with_add_and_remove() -> None:
    state = SimulatorState(SimulatorConfig())
    assert state.find("nomic-embed-text") is not None
    state.add(model_from_name("gemma2:2b"))
    assert state.installed()[0].model.name == "gemma2:2b"  # newest first
    assert state.remove("gemma2:2b")
    assert not state.remove("gemma2:2b")
    assert state.find("gemma2:2b") is None


def test_use_loads_and_unloads() -> None:
    state = SimulatorState(SimulatorConfig())
    model = state.config.models[0]
    assert state.running() == []
    assert state.use(model, 60) is True
    assert state.use(model, 60) is False  # already loaded
    assert [item.model.name for item, _ in state.running()] == [model.name]
    state.use(model, 0)
    assert state.running() == []
    assert not state.is_loaded(model.name)


def test_faults_for_respects_paths() -> None:
    state = SimulatorState(SimulatorConfig(faults=Faults(status=503, paths=("/api/chat",))))
    assert state.faults_for("/api/chat") == state.faults
    assert state.faults_for("/api/tags") is None
    state.faults = Faults()
    assert state.faults_for("/api/chat") is None


def test_a_pulled_model_is_remembered_in_models_dir(tmp_path: Path) -> None:
    config = SimulatorConfig(models=(), models_dir=tmp_path)
    model = model_from_name("llama3.2:1b")
    SimulatorState(config).save_manifest(model)
    manifest = tmp_path / "manifests/registry.ollama.ai/library/llama3.2/1b"
    assert json.loads(manifest.read_text()) == {"name": "llama3.2:1b", "digest": model.digest}
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o644
    assert [p.name for p in manifest.parent.iterdir()] == ["1b"]  # no temporary file left
    assert SimulatorState(config).find("llama3.2:1b") is not None  # a restart still has it


def test_an_unwritable_models_dir_names_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifests").write_text("a file where a directory belongs")
    state = SimulatorState(SimulatorConfig(models=(), models_dir=tmp_path))
    with pytest.raises(ConfigError) as caught:
        state.save_manifest(model_from_name("llama3.2:1b"))
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/manifests/registry.ollama.ai/library/llama3.2/1b: ")
    assert "cannot write the model manifest" in message
