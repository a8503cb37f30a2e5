"""Tests of the simulator's configuration dataclasses."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.simulator import Faults, SimModel, SimulatorConfig, model_from_name
from ollama_fleet.simulator.config import normalize_name


def test_digest_is_sha256_of_the_name() -> None:
    model = SimModel(name="llama3.2:1b", size=10)
    assert model.digest == hashlib.sha256(b"llama3.2:1b").hexdigest()
    assert SimModel(name="x:1", size=1, digest="abc").digest == "abc"


def test_names_are_normalised_like_ollama() -> None:
    assert normalize_name("Llama3.2") == "llama3.2:latest"
    assert normalize_name("library/mistral:7b") == "library/mistral:7b"
    assert normalize_name("registry.local:5000/foo") == "registry.local:5000/foo:latest"
    assert SimModel(name="phi3", size=1).name == "phi3:latest"


def test_default_config() -> None:
    config = SimulatorConfig()
    assert [m.name for m in config.models] == [
        "llama3.2:1b",
        "qwen2.5:0.5b",
        "nomic-embed-text:latest",
    ]
    assert config.tokens_per_second == 200.0
    assert config.loopback_only_hosts is True
    assert config.faults == Faults()
    assert not config.faults.active
    assert config.models[2].is_embedding
    assert not config.models[0].is_embedding


def test_can_pull_pullable_and_configured_names() -> None:
    config = SimulatorConfig()
    assert config.can_pull("mistral:7b")
    assert config.can_pull("nomic-embed-text")
    assert not config.can_pull("does-not-exist:1b")


@pytest.mark.parametrize(
    ("name", "family", "parameter_size", "count"),
    [
        ("llama3.2:1b", "llama", "1.2B", 1_200_000_000),
        ("qwen2.5:0.5b", "qwen2", "494.03M", 494_030_000),
        ("phi3:3.8b", "phi", "3.8B", 3_800_000_000),
        ("tinyllama", "tinyllama", "1.0B", 1_000_000_000),
        ("smollm:135m", "smollm", "135M", 135_000_000),
        ("mxbai-embed-large", "bert", "137M", 137_000_000),
    ],
)
def test_model_from_name(name: str, family: str, parameter_size: str, count: int) -> None:
    model = model_from_name(name)
    assert model.family == family
    assert model.parameter_size == parameter_size
    assert model.parameter_count == count
    assert model.size > 0
    assert model == model_from_name(name)  # deterministic


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency_ms": -1},
        {"status": 200},
        {"status": 600},
        {"cut_stream_after": -1},
        {"paths": ("api/chat",)},
    ],
)
def test_invalid_faults_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Faults(**kwargs)


def test_faults_scope() -> None:
    everywhere = Faults(status=500)
    assert everywhere.applies_to("/api/tags")
    assert everywhere.applies_to("/")
    assert not everywhere.applies_to("/_simulator/faults")
    scoped = Faults(status=500, paths=("/api/chat",))
    assert scoped.applies_to("/api/chat")
    assert not scoped.applies_to("/api/generate")


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ConfigError):
        SimulatorConfig(tokens_per_second=-1)
    with pytest.raises(ConfigError):
        SimulatorConfig(models=(SimModel(name="a", size=1), SimModel(name="a:latest", size=2)))
    with pytest.raises(ConfigError):
        SimModel(name="a", size=-1)
