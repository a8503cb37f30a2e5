"""Role models: pull the required models Ollama lacks; optionally delete the others.

Role models: pull what /api/tags lacks (an error inside the pull stream fails the deploy with
the model's name), and optionally delete models that are not required.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server

from ollama_fleet.deploys.common import ollama_url, role_vars
from ollama_fleet.deploys.converge import Want
from ollama_fleet.deploys.facts import OllamaModels
from ollama_fleet.hostvars import defaults
from ollama_fleet.values import canonical_model_name


def full_name(name: str) -> str:
    """Ollama's canonical name: "llama3" means "llama3:latest"."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def required_names(required: list[object]) -> list[str]:
    """The names to pull, as the inventory spells them (with :latest), once per model."""
    names = [str(item["name"]) if isinstance(item, dict) else str(item) for item in required]
    once: dict[str, str] = {}
    for name in names:
        once.setdefault(canonical_model_name(name), full_name(name.strip()))
    return list(once.values())


def plan_models(
    required: list[str], present: list[str] | None, prune: bool
) -> tuple[list[str], list[str]]:
    """(to pull, to delete). Unknown presence (Ollama not answering yet) pulls everything.

    Names compare in the one canonical form the checks use too (values.canonical_model_name:
    Ollama matches case-insensitively); a pull keeps the inventory's spelling, a delete
    Ollama's own.
    """
    have = {} if present is None else {canonical_model_name(n): n for n in present}
    wanted = {canonical_model_name(n) for n in required}
    to_pull = [n for n in required if canonical_model_name(n) not in have]
    to_delete = (
        sorted(full_name(n) for key, n in have.items() if key not in wanted)
        if prune and present is not None
        else []
    )
    return to_pull, to_delete


def want() -> Want:
    v = role_vars("models")
    return Want(
        models_url=ollama_url(),
        models=tuple(required_names(v["required_models"])),
        prune=bool(v["models_prune"]),
    )


@deploy("models", data_defaults=defaults("models"))
def models() -> None:
    v = role_vars("models")
    url = ollama_url()
    to_pull, to_delete = plan_models(
        required_names(v["required_models"]),
        host.get_fact(OllamaModels, base_url=url),
        bool(v["models_prune"]),
    )
    env = {"OLLAMA_HOST": url}
    for number, name in host.loop(enumerate(to_pull, 1)):
        server.shell(
            name=f"models: pull {name} ({number}/{len(to_pull)})",
            commands=[f"ollama pull {shlex.quote(name)}"],
            _env=env,
        )
    for name in host.loop(to_delete):
        server.shell(
            name=f"models: delete {name} (not in required_models)",
            commands=[f"ollama rm {shlex.quote(name)}"],
            _env=env,
        )
