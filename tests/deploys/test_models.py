"""Role models: what is pulled or deleted, decided from Ollama's /api/tags on the host."""

from __future__ import annotations

import pytest

from ollama_fleet.deploys.models import full_name, plan_models, required_names

from .answers import ollama_tags
from .conftest import Deployed, deploy_fakes, host

# -- pure: names and the plan --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llama3", "llama3:latest"),
        ("llama3.2:1b", "llama3.2:1b"),
        ("registry.example.com:5000/team/llama3", "registry.example.com:5000/team/llama3:latest"),
        ("registry.example.com:5000/team/llama3:8b", "registry.example.com:5000/team/llama3:8b"),
        ("hf.co/org/model:Q4_K_M", "hf.co/org/model:Q4_K_M"),
    ],
)
def test_full_name_adds_latest_only_without_a_tag(name: str, expected: str) -> None:
    assert full_name(name) == expected


def test_required_names_accepts_names_and_digest_entries_once_each() -> None:
    required: list[object] = [
        "qwen3",
        {"name": "llama3.2:1b", "digest": "sha256:ab"},
        "qwen3:latest",
    ]

    assert required_names(required) == ["qwen3:latest", "llama3.2:1b"]


def test_names_compare_as_ollama_does_case_and_registry_aside() -> None:
    # the checks compare in the same canonical form (ollama_fleet.values): the two agree
    present = ["llama3.2:1b", "registry.ollama.ai/library/qwen3:latest", "hf.co/Org/M:Q4_K_M"]

    to_pull, to_delete = plan_models(
        ["Llama3.2:1B", "qwen3", "hf.co/org/m:q4_k_m", "new:7b"], present, prune=True
    )

    assert (to_pull, to_delete) == (["new:7b"], [])


def test_prune_deletes_by_ollamas_own_spelling() -> None:
    assert plan_models(["a:latest"], ["a", "Old-Model:7B"], prune=True) == ([], ["Old-Model:7B"])


def test_required_names_keep_the_inventorys_spelling_once_per_model() -> None:
    assert required_names(["Qwen3", "qwen3:latest", "hf.co/Org/M:Q4"]) == [
        "Qwen3:latest",
        "hf.co/Org/M:Q4",
    ]


def test_plan_pulls_only_what_is_missing() -> None:
    assert plan_models(["a:latest", "b:7b"], ["a"], prune=False) == (["b:7b"], [])


def test_plan_prunes_what_is_not_required() -> None:
    assert plan_models(["a:latest"], ["a:latest", "z:1b", "c"], prune=True) == (
        [],
        ["c:latest", "z:1b"],
    )


def test_plan_without_an_answer_pulls_everything_and_deletes_nothing() -> None:
    assert plan_models(["a:latest", "b:7b"], None, prune=True) == (["a:latest", "b:7b"], [])


# -- dry deploys on fake hosts -------------------------------------------------------------------


HOSTS = {
    "has-all": host(
        ollama_tags("llama3.2:1b", "qwen3:latest"), required_models=["llama3.2:1b", "qwen3"]
    ),
    "missing-one": host(ollama_tags("llama3.2:1b"), required_models=["llama3.2:1b", "qwen3:8b"]),
    "prune": host(
        ollama_tags("llama3.2:1b", "old:7b"), required_models=["llama3.2:1b"], models_prune=True
    ),
    "keep": host(ollama_tags("llama3.2:1b", "old:7b"), required_models=["llama3.2:1b"]),
    # a bare host: nothing answers on 127.0.0.1:11434, the fact's curl says "unreachable"
    "not-answering": host(required_models=["llama3.2:1b", "qwen3:8b"]),
}


@pytest.fixture(scope="module")
def models_run(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    return deploy_fakes(tmp_path_factory.mktemp("models"), HOSTS, roles=["models"])


@pytest.mark.integration
class TestDryDeploy:
    def test_nothing_is_pulled_when_every_model_is_there(self, models_run: Deployed) -> None:
        assert models_run.plans("has-all") == {}
        assert models_run.outcome("has-all").planned == ()

    def test_one_missing_model_is_one_pull_named_after_it(self, models_run: Deployed) -> None:
        assert models_run.plans("missing-one") == {"models: pull qwen3:8b (1/1)": True}

    def test_prune_deletes_a_model_that_is_not_required(self, models_run: Deployed) -> None:
        assert models_run.plans("prune") == {"models: delete old:7b (not in required_models)": True}

    def test_without_prune_extra_models_stay(self, models_run: Deployed) -> None:
        assert models_run.plans("keep") == {}

    def test_ollama_not_answering_pulls_every_required_model(self, models_run: Deployed) -> None:
        assert models_run.changes("not-answering") == [
            "models: pull llama3.2:1b (1/2)",
            "models: pull qwen3:8b (2/2)",
        ]
