"""The lab's record (state.json), its options, and the ports it gets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ollama_fleet.errors import ConfigError
from ollama_fleet.lab.ports import choose_ports, port_is_free
from ollama_fleet.lab.state import (
    STATE_FILE,
    LabInfo,
    default_state_dir,
    info_from_json,
    info_to_json,
    load_info,
    save_info,
)
from ollama_fleet.lab.vm import LabOptions


def test_json_round_trip(info: LabInfo) -> None:
    assert info_from_json(info.state_dir, info_to_json(info)) == info
    stopped = replace(info, pid=None)
    assert info_from_json(info.state_dir, info_to_json(stopped)) == stopped


def test_save_and_load(info: LabInfo) -> None:
    assert load_info(info.state_dir) is None
    save_info(info)
    assert load_info(info.state_dir) == info
    assert info.state_file == info.state_dir / STATE_FILE
    assert info.ssh_key.parent == info.known_hosts.parent == info.state_dir


def test_ports_by_forward_name(info: LabInfo) -> None:
    assert info.ports == {
        "ssh": 40022,
        "http": 40080,
        "https": 40443,
        "ollama": 41434,
        "monitor": 49464,
    }
    assert info.status_page_url == "http://127.0.0.1:49464/"


def test_a_lab_recorded_before_the_monitors_forward_still_loads(info: LabInfo) -> None:
    data = json.loads(info_to_json(info))
    del data["ports"]["monitor"]

    older = info_from_json(info.state_dir, json.dumps(data))

    assert older == replace(info, monitor_port=None)
    assert "monitor" not in older.ports
    assert older.status_page_url is None
    # its next start from stopped adds the forward, keeping the other ports
    ports = choose_ports({}, older.ports)
    assert {name: ports[name] for name in older.ports} == older.ports
    assert port_is_free(ports["monitor"])


def _edited(info: LabInfo, **changes: object) -> str:
    data = json.loads(info_to_json(info))
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"version": 99}, "unknown state version 99"),
        ({"ports": {"ssh": 22}}, "not a lab state file"),
        ({"ports": {"ssh": 22, "http": 80, "https": 443, "ollama": "x"}}, r"'x' is not a port"),
        ({"ports": {"ssh": 0, "http": 80, "https": 443, "ollama": 1}}, r"0 is not a port \(1-"),
        (
            {"ports": {"ssh": 22, "http": 80, "https": 443, "ollama": 1, "monitor": None}},
            "None is not a port",
        ),
        ({"accel": "xen"}, "accel 'xen'"),
        ({"pid": True}, "expected int"),
        ({"image": None}, "not a lab state file"),
    ],
)
def test_a_damaged_state_file_is_a_one_line_config_error(
    info: LabInfo, changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as error:
        info_from_json(info.state_dir, _edited(info, **changes))
    assert str(error.value).startswith(str(info.state_file))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("text", ["", "{", "[]", "null"])
def test_a_state_file_that_is_not_json_or_not_an_object(info: LabInfo, text: str) -> None:
    info.state_file.write_text(text)
    with pytest.raises(ConfigError, match=str(info.state_file)):
        load_info(info.state_dir)


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OLLAMA_FLEET_LAB_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_state_dir() == tmp_path / "cache/ollama-fleet/lab"
    monkeypatch.setenv("OLLAMA_FLEET_LAB_DIR", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"accel": "xen"}, "--accel xen"),
        ({"memory_mb": 256}, "--memory 256"),
        ({"cpus": 0}, "--cpus 0"),
        ({"ssh_port": 0}, "--ssh-port 0"),
        ({"ollama_port": 70000}, "--ollama-port 70000"),
        ({"monitor_port": 0}, "--monitor-port 0"),
        ({"boot_timeout_s": 0}, "--timeout"),
        ({"mirror": "deb.debian.org/debian"}, "--mirror"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        LabOptions(**options)  # type: ignore[arg-type]


# -- ports: real sockets on 127.0.0.1 -----------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_free_ports_for_every_forward() -> None:
    ports = choose_ports({})
    assert list(ports) == ["ssh", "http", "https", "ollama", "monitor"]
    assert len(set(ports.values())) == 5
    assert all(port_is_free(port) for port in ports.values())


def test_a_requested_port_is_used(taken_port: int) -> None:
    free = choose_ports({})["ssh"]
    assert choose_ports({"ssh": free})["ssh"] == free


def test_a_requested_port_in_use_is_a_config_error(taken_port: int) -> None:
    assert not port_is_free(taken_port)
    with pytest.raises(ConfigError, match=f"--https-port {taken_port}: 127.0.0.1:{taken_port}"):
        choose_ports({"https": taken_port})


def test_remembered_ports_are_kept_while_free(taken_port: int) -> None:
    previous = choose_ports({})
    assert choose_ports({}, previous) == previous
    moved = choose_ports({}, {**previous, "http": taken_port})
    assert moved["ssh"] == previous["ssh"]
    assert moved["http"] != taken_port


def test_a_request_wins_over_memory() -> None:
    previous = choose_ports({})
    requested = choose_ports({}, None)["ssh"]
    ports = choose_ports({"http": previous["ssh"], "ssh": requested}, previous)
    assert ports["http"] == previous["ssh"]
    assert ports["ssh"] == requested
    assert len(set(ports.values())) == 5


def test_one_port_for_two_forwards_is_a_config_error() -> None:
    port = choose_ports({})["ssh"]
    with pytest.raises(ConfigError, match="share one port"):
        choose_ports({"ssh": port, "http": port})


def test_a_port_whose_last_connections_wait_in_time_wait_is_free_a_listened_one_is_not() -> None:
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    assert not port_is_free(port)  # something listens there
    accepted.close()  # the server side closes first: its end (port `port`) waits in TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    assert port_is_free(port)  # as qemu's forward would bind it again, SO_REUSEADDR
