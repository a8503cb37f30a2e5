"""Strict inventories: every unknown key, duplicate and bad value is named by file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.inventory import InventoryError, load_inventory


def write(tmp_path: Path, text: str, name: str = "inv.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert isinstance(info.value, ConfigError)
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems][:20]
    return [str(p).removeprefix(f"{path}:") for p in info.value.problems]


def test_a_misspelt_check_variable_is_an_error_not_a_pass(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          hosts:
            gpu-1:
              requried_models: [llama3.2:1b]
              public_url: https://gpu-1.example.net
        """,
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert (
        str(info.value)
        == f"{path}:4: requried_models: unknown variable; did you mean required_models?"
    )


def test_every_problem_of_a_file_is_shown_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          vars:
            ssh_prot: 22
            tls_warn_days: soon
          hosts:
            gpu-1:
              public_ulr: https://gpu-1.example.net
          children:
            gpu:
              host:
                gpu-2:
          chidlren: {}
        public_url: https://x.example.net
        """,
    )
    assert problems(path) == [
        "3: ssh_prot: unknown variable; did you mean ssh_port?",
        "4: tls_warn_days: expected a whole number >= 0, got 'soon'",
        "7: public_ulr: unknown variable; did you mean public_url?",
        "10: host: unknown key in group gpu; did you mean hosts?",
        "12: chidlren: unknown key in group all; did you mean children?",
        "13: public_url: a variable at the top level, which holds groups; put it under a group "
        "(e.g. all:)",
    ]


def test_a_variable_written_straight_into_a_group_says_where_it_goes(tmp_path: Path) -> None:
    path = write(tmp_path, "all:\n  public_url: https://x.example.net\n  hosts: {h1: }\n")
    assert problems(path) == [
        "2: public_url: a variable directly in group all; put it under all: vars:"
    ]


def test_duplicate_keys_name_both_lines_at_any_depth(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          hosts:
            gpu-1:
              public_url: https://gpu-1.example.net
              latency_thresholds:
                connect_ms: [100, 200]
                connect_ms: [100, 300]
            gpu-1:
              public_url: https://gpu-one.example.net
        """,
    )
    assert problems(path) == [
        "7: connect_ms: duplicate key; first at line 6",
        "8: gpu-1: duplicate key; first at line 3",  # and not again for its public_url
    ]


def test_a_host_in_two_groups_is_fine_but_two_values_for_one_variable_are_not(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
        all:
          children:
            web:
              hosts:
                shared: {public_url: "https://a.example.net", expect_gpu: true}
            gpu:
              hosts:
                shared: {public_url: "https://b.example.net", expect_gpu: true}
        """,
    )
    assert problems(path) == [
        "8: public_url: set again for host shared with another value; first at line 5"
    ]


def test_a_type_error_is_named_where_it_is_set_not_per_host(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          children:
            gpu:
              vars:
                closed_ports: [11434, ssh]
              hosts:
                gpu-1:
                gpu-2:
        """,
    )
    assert problems(path) == ["5: closed_ports: 'ssh' is not a port (1-65535)"]


def test_a_rule_across_variables_names_the_line_and_the_hosts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          vars:
            tls_warn_days: 7
          children:
            gpu:
              vars:
                tls_fail_days: 14
              hosts:
                gpu-1:
                gpu-2:
        """,
    )
    assert problems(path) == ["7: tls_fail_days: 14 exceeds tls_warn_days (7) (hosts gpu-1, gpu-2)"]


def test_twenty_problems_are_listed_then_a_count(tmp_path: Path) -> None:
    lines = "".join(f"    bogus_{n:02}: 1\n" for n in range(25))
    path = write(tmp_path, "all:\n  vars:\n" + lines + "  hosts: {h1: }\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    shown = str(info.value).splitlines()
    assert len(info.value.problems) == 25
    assert len(shown) == 21
    assert shown[0].startswith(f"{path}:3: bogus_00: unknown variable")
    assert shown[-1] == "and 5 more"


def test_a_secret_value_is_never_shown_in_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "all:\n  vars:\n    api_key: [sk-live-123]\n  hosts: {h1: }\n")
    (problem,) = problems(path)
    assert "sk-live" not in problem
    assert problem == "3: api_key: invalid value (not shown: it is a secret); expected a string"


def test_an_empty_value_resets_a_group_value_to_the_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          vars:
            closed_ports: [9090]
          hosts:
            h1:
              closed_ports:
        """,
    )
    assert "closed_ports" not in load_inventory(path).host("h1").vars


def test_yaml_merge_keys_work_and_an_explicit_key_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          hosts:
            h1: &base
              ssh_user: deploy
              ssh_port: 22
            h2:
              <<: *base
              ssh_port: 2222
        """,
    )
    host = load_inventory(path).host("h2")
    assert dict(host.vars) == {"ssh_user": "deploy", "ssh_port": 2222}
    assert str(host.origins["ssh_port"]) == f"{path}:8"
    assert str(host.origins["ssh_user"]) == f"{path}:4"


def test_a_rule_between_two_values_is_named_where_one_was_set(tmp_path: Path) -> None:
    # tls_fail_days keeps its default (3): the line to fix is the one that set tls_warn_days
    path = write(
        tmp_path,
        """
        all:
          hosts:
            gpu-1:
              tls_warn_days: 2
        """,
    )
    assert problems(path) == ["4: tls_warn_days: 2 is below tls_fail_days (3) (host gpu-1)"]


def test_a_host_written_twice_is_one_problem_not_two(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        all:
          hosts:
            gpu-1:
              public_url: https://a.example
            gpu-1:
              public_url: https://b.example
        """,
    )
    assert problems(path) == ["5: gpu-1: duplicate key; first at line 3"]
