"""Host patterns as Ansible has them: names, groups, globs, !exclusions, &intersections, @files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.hostpatterns import host_list, select_hosts
from ollama_fleet.inventory import Inventory, load_inventory

FLEET = """\
all:
  children:
    gpu:
      children:
        eu:
          hosts:
            gpu-1:
            gpu-2:
        us:
          hosts:
            gpu-3:
    gateway:
      hosts:
        gw-1:
    spare:
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Inventory:
    path = tmp_path / "inv.yml"
    path.write_text(FLEET, encoding="utf-8")
    return load_inventory(path)


def names(inventory: Inventory, *patterns: str) -> list[str]:
    return [h.name for h in select_hosts(inventory, patterns)]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ((), ["gpu-1", "gpu-2", "gpu-3", "gw-1"]),
        (("all",), ["gpu-1", "gpu-2", "gpu-3", "gw-1"]),
        (("*",), ["gpu-1", "gpu-2", "gpu-3", "gw-1"]),
        (("gpu",), ["gpu-1", "gpu-2", "gpu-3"]),
        (("gpu:!gpu-3",), ["gpu-1", "gpu-2"]),
        (("gpu,!us",), ["gpu-1", "gpu-2"]),
        (("gpu-*",), ["gpu-1", "gpu-2", "gpu-3"]),
        (("g*-1",), ["gpu-1", "gw-1"]),
        (("gw-1,gpu-2",), ["gpu-2", "gw-1"]),  # inventory order, not pattern order
        (("gpu", "gateway"), ["gpu-1", "gpu-2", "gpu-3", "gw-1"]),
        (("gpu:&eu",), ["gpu-1", "gpu-2"]),
        (("!gateway",), ["gpu-1", "gpu-2", "gpu-3"]),
        (("~gpu-[12]",), ["gpu-1", "gpu-2"]),
    ],
)
def test_patterns_choose_hosts_in_inventory_order(
    fleet: Inventory, patterns: tuple[str, ...], expected: list[str]
) -> None:
    assert names(fleet, *patterns) == expected


def test_a_retry_file_names_one_host_a_line(fleet: Inventory, tmp_path: Path) -> None:
    retry = tmp_path / "retry.txt"
    retry.write_text("gpu-3\n\n# a comment\ngw-1\n", encoding="utf-8")
    assert names(fleet, f"@{retry}") == ["gpu-3", "gw-1"]
    assert names(fleet, f"eu,@{retry}") == ["gpu-1", "gpu-2", "gpu-3", "gw-1"]


def test_a_missing_retry_file_is_one_line(fleet: Inventory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        select_hosts(fleet, [f"@{tmp_path / 'retry.txt'}"])
    assert str(info.value) == f"--limit @{tmp_path / 'retry.txt'}: no such file"


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("gpu-9", "--limit gpu-9: no host or group matches in {path}; did you mean gpu-3?"),
        ("gpu:!gpu-33", "--limit !gpu-33: no host or group matches in {path}; did you mean gpu-3?"),
        ("gatway", "--limit gatway: no host or group matches in {path}; did you mean gateway?"),
        ("db-*", "--limit db-*: no host or group matches in {path}"),
        ("spare", "--limit spare: group spare has no hosts"),
        ("gpu:!gpu", "--limit gpu:!gpu: no host is left"),  # as typed
    ],
)
def test_a_part_that_matches_nothing_is_an_error(fleet: Inventory, pattern: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        select_hosts(fleet, [pattern])
    assert str(info.value) == says.format(path=fleet.path)


def test_the_option_is_named_in_the_error(fleet: Inventory) -> None:
    with pytest.raises(ConfigError, match=r"^--hosts nope: "):
        select_hosts(fleet, ["nope"], option="--hosts")


def test_list_hosts_prints_as_ansible_does(fleet: Inventory) -> None:
    assert host_list(select_hosts(fleet, ["eu"])) == "  hosts (2):\n    gpu-1\n    gpu-2"
