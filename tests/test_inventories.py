"""The inventories and tables in the repository stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from ollama_fleet.deploy import DeployOptions, make_plan, validate_hosts
from ollama_fleet.hostvars import ROLES, markdown_table
from ollama_fleet.inventory import load_inventory
from ollama_fleet.lab.inventory import COMMITTED_HEADER, lab_inventory_text
from ollama_fleet.lab.ports import DEFAULT_PORTS
from ollama_fleet.lab.state import LabInfo

ROOT = Path(__file__).resolve().parents[1]


def test_committed_lab_inventory_is_what_the_default_lab_writes() -> None:
    info = LabInfo(
        state_dir=Path("/unused"), ssh_port=DEFAULT_PORTS["ssh"],
        http_port=DEFAULT_PORTS["http"], https_port=DEFAULT_PORTS["https"],
        ollama_port=DEFAULT_PORTS["ollama"], image_dir=Path("/unused"), image_hash="x",
        accel="tcg", memory_mb=2048, cpus=2,
    )  # fmt: skip
    expected = lab_inventory_text(info, base="~/.cache/ollama-fleet/lab", header=COMMITTED_HEADER)
    assert (ROOT / "inventories" / "lab.yml").read_text() == expected


def test_production_example_passes_the_deploy_validation() -> None:
    inventory = load_inventory(ROOT / "inventories" / "production.example.yml")
    validate_hosts(inventory, inventory.hosts)
    assert {h.name for h in inventory.hosts} == {"gpu-1", "gpu-2", "gpu-3", "gw-1", "mon-1"}
    plan = make_plan(
        inventory, DeployOptions(roles=("caddy", "firewall", "models")),
        decrypt=lambda text, path: text,
    )  # fmt: skip
    assert [h["name"] for h in plan.spec["hosts"]] == ["gpu-1", "gpu-2", "gpu-3", "gw-1", "mon-1"]


def test_deploy_docs_carry_every_role_table_as_generated() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    for role in ROLES:
        assert f"### {role}" in text
        assert markdown_table(role) in text, f"docs/deploy.md: the {role} table is out of date"


def test_every_variable_in_the_production_example_is_documented() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text() + (ROOT / "docs" / "inventory.md").read_text()
    example = (ROOT / "inventories" / "production.example.yml").read_text()
    names = set(re.findall(r"^\s*#?\s*([a-z_]+):", example, re.MULTILINE))
    names -= {"all", "vars", "children", "hosts", "name", "digest"}
    names -= {"gpu", "gateway", "monitor", "gpu_1"}  # group names
    undocumented = sorted(n for n in names if f"`{n}" not in text)
    assert not undocumented, undocumented
