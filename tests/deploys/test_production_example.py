"""inventories/production.example.yml planned as written: the whole site, every role.

The example's hosts become strict fake Debian 12 hosts (its GPU nodes with a GPU), keeping
their groups and variables; only how to reach them changes (the connector, no sudo) and the
release checksum is pinned so nothing is fetched. Each host must plan exactly the roles it
runs, and the checks' targets must be the hosts that serve a public URL.
"""

from __future__ import annotations

import gc
import io
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollama_fleet.checks.model import PublicAccess
from ollama_fleet.controller import DeployOptions, make_plan
from ollama_fleet.hostvars import ROLES
from ollama_fleet.inventory import load_inventory

from .conftest import PREFIX, Deployed, gpu_host, host, run_strict, stub_wheel

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "production.example.yml"
GPU_NODES = ("gpu-1", "gpu-2", "gpu-3")
SERVICE_HOSTS = ("gw-1", "mon-1")


def fake_example(folder: Path) -> Path:
    """The example with each host a strict fake one; every variable kept as written."""
    document = yaml.safe_load(EXAMPLE.read_text())
    common = document["all"]["vars"]
    common.pop("_sudo")  # the strict fake runs commands as they are, not through sudo
    common["ollama_sha256"] = "0" * 64  # pinned: no sha256sum.txt fetched from GitHub
    for name, group in document["all"]["children"].items():
        renamed: dict[str, Any] = {}
        for host_name, values in group["hosts"].items():
            models_dir = group.get("vars", {}).get("ollama_models_dir")
            where = {"ollama_models_dir": models_dir} if models_dir else {}
            fake = gpu_host("debian12", **where) if name == "gpu" else host(distro="debian12")
            renamed[PREFIX + host_name] = {**(values or {}), **fake}
        group["hosts"] = renamed
    path = folder / "production.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployed, Any]:
    folder = tmp_path_factory.mktemp("production-example")
    inventory = load_inventory(fake_example(folder))
    with stub_wheel(folder):
        plan = make_plan(
            inventory,
            DeployOptions(dry=True, cache_dir=folder / "cache"),
            decrypt=lambda text, path: text,
        )
    events: list[dict[str, Any]] = []
    log = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        result = run_strict(plan.spec, folder / "report.jsonl", on_event=events.append, log=log)
        gc.collect()
    return Deployed(events=events, log=log.getvalue(), result=result, spec=plan.spec), plan


def roles_planned(deployed: Deployed, name: str) -> set[str]:
    return {op.split(":", 1)[0] for op in deployed.plans(name)}


def test_every_host_is_planned_without_a_refusal(example: tuple[Deployed, Any]) -> None:
    deployed, _ = example
    for name in (*GPU_NODES, *SERVICE_HOSTS):
        assert deployed.refusal(name) is None, deployed.refusal(name)
        assert deployed.outcome(name).error is None


def test_gpu_nodes_get_the_whole_site(example: tuple[Deployed, Any]) -> None:
    deployed, _ = example
    for name in GPU_NODES:
        assert roles_planned(deployed, name) == set(ROLES), name
        changes = deployed.changes(name)
        assert any(op.startswith("gpu: NVIDIA driver 580") for op in changes)
        pulls = [op for op in deployed.plans(name) if op.startswith("models: pull")]
        assert pulls and pulls[0].startswith("models: pull llama3.2:1b (1/")


def test_gateway_and_monitor_hosts_get_only_what_they_run(example: tuple[Deployed, Any]) -> None:
    deployed, _ = example
    for name in SERVICE_HOSTS:
        assert roles_planned(deployed, name) == {"firewall", "services"}, name
        assert not [op for op in deployed.plans(name) if "check timer" in op]  # no Ollama here
    spec_hosts = {h["name"]: h for h in deployed.spec["hosts"]}
    for name in SERVICE_HOSTS:
        prepared = spec_hosts[PREFIX + name]["data"]["fleet_prepared"]
        assert "ollama" not in prepared  # no release prepared for a host without Ollama


def test_the_checks_verify_the_gpu_nodes_as_declared(example: tuple[Deployed, Any]) -> None:
    _, plan = example
    targets = {t.name.removeprefix(PREFIX): t for t in plan.targets}
    assert set(targets) == set(GPU_NODES)
    for target in targets.values():
        assert target.public_access is PublicAccess.OPEN  # no keys yet, said so
        assert target.expect_gpu is True
        assert target.check_write_endpoints is True
        assert target.closed_ports == (11434,)
