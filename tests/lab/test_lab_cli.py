"""`ollama-fleet lab` without a VM: help, status rendering, and the errors a user meets first."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from ollama_fleet.cli.lab import lab
from ollama_fleet.lab.health import LabStatus, render_status, status
from ollama_fleet.lab.recipe import recipe_hash
from ollama_fleet.lab.state import LabInfo, save_info


def invoke(args: Sequence[str]) -> Result:
    return CliRunner().invoke(lab, list(args), catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


def test_the_lab_commands() -> None:
    assert set(lab.commands) == {"build", "up", "down", "status", "ssh", "key", "access"}


@pytest.mark.parametrize("path", list(walk(lab)), ids=lambda p: " ".join(p) or "lab")
def test_every_command_and_option_has_help(path: tuple[str, ...]) -> None:
    result = invoke([*path, "--help"])
    assert result.exit_code == 0
    command: click.Command = lab
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert (command.help or "").strip()
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{path}: {param.opts} has no help"


def test_status_without_a_lab(tmp_path: Path) -> None:
    result = invoke(["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout == f"no lab in {tmp_path}: `ollama-fleet lab up` starts one\n"


def test_status_of_a_stopped_lab(info: LabInfo) -> None:
    save_info(info)  # pid 4242 is not this lab's qemu
    result = invoke(["status", "--state-dir", str(info.state_dir)])
    assert result.exit_code == 1
    assert result.stdout.startswith("lab: stopped")
    assert f"127.0.0.1:{info.ssh_port} -> 22" in result.stdout


def test_state_dir_from_the_environment(info: LabInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    save_info(info)
    monkeypatch.setenv("OLLAMA_FLEET_LAB_DIR", str(info.state_dir))
    assert status(probe_ssh=False).info == info


def test_ssh_into_no_lab_is_one_line(tmp_path: Path) -> None:
    result = invoke(["ssh", "--state-dir", str(tmp_path), "--", "true"])
    assert result.exit_code == 1
    assert error_lines(result) == [f"Error: no lab in {tmp_path}: `ollama-fleet lab up` starts one"]


def test_ssh_into_a_stopped_lab_is_one_line(info: LabInfo) -> None:
    save_info(info)
    result = invoke(["ssh", "--state-dir", str(info.state_dir)])
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1
    assert "is stopped" in result.stderr


def test_down_without_a_lab_is_fine(tmp_path: Path) -> None:
    result = invoke(["down", "--state-dir", str(tmp_path / "none")])
    assert result.exit_code == 0
    assert "no lab in" in result.stderr
    assert not (tmp_path / "none").exists()


def test_down_forgets_a_dead_qemu(info: LabInfo) -> None:
    save_info(info)
    result = invoke(["down", "--state-dir", str(info.state_dir)])
    assert result.exit_code == 0
    assert '"pid": null' in info.state_file.read_text()


def test_down_destroy_removes_the_lab_files_only(info: LabInfo) -> None:
    save_info(info)
    for path in (info.overlay, info.ssh_key, info.known_hosts, info.serial_log):
        path.write_text("x")
    (info.state_dir / "mine.txt").write_text("not the lab's")
    result = invoke(["down", "--state-dir", str(info.state_dir), "--destroy"])
    assert result.exit_code == 0
    left = sorted(p.name for p in info.state_dir.iterdir() if not p.name.startswith("."))
    assert left == ["mine.txt"]


def test_up_rejects_a_damaged_state_file(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{")
    result = invoke(["up", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith(f"Error: {tmp_path}/state.json: invalid JSON: ")


@pytest.mark.parametrize(
    "args",
    [["--accel", "xen"], ["--ssh-port", "0"], ["--memory", "64"], ["--mirror", "ftp://x"]],
)
def test_up_rejects_bad_options_before_doing_anything(tmp_path: Path, args: list[str]) -> None:
    result = invoke(["up", "--state-dir", str(tmp_path / "lab"), *args])
    assert result.exit_code == 2
    assert len(error_lines(result)) == 1
    assert not (tmp_path / "lab").exists()


def test_render_status_of_a_ready_lab(info: LabInfo) -> None:
    text = render_status(LabStatus(state_dir=info.state_dir, info=info, running=True, ssh_ok=True))
    assert text.startswith("lab: running, SSH answers (qemu pid 4242)")
    assert "127.0.0.1:41434 -> 11434  (must stay closed)" in text
    assert str(info.inventory) in text
    assert "older recipe" in text  # the fixture's image hash is not the current recipe's
    current = replace(info, image_hash=recipe_hash())
    ready = LabStatus(state_dir=info.state_dir, info=current, running=True, ssh_ok=True)
    assert "older recipe" not in render_status(ready)


def test_render_status_shows_the_status_page_through_its_forward(info: LabInfo) -> None:
    text = render_status(LabStatus(state_dir=info.state_dir, info=info, running=True, ssh_ok=True))
    assert "127.0.0.1:49464 -> 9464  (the monitor, once deployed)" in text
    # `make demo` prints this line after the report's path
    assert "\n  status page: http://127.0.0.1:49464/\n" in text
    older = replace(info, monitor_port=None)
    shown = render_status(
        LabStatus(state_dir=info.state_dir, info=older, running=True, ssh_ok=True)
    )
    assert "status page" not in shown


def test_render_status_of_a_lab_that_does_not_answer(info: LabInfo) -> None:
    text = render_status(
        LabStatus(
            state_dir=info.state_dir,
            info=info,
            running=True,
            ssh_ok=False,
            ssh_error="Connection refused",
        )
    )
    assert text.startswith("lab: running, SSH does not answer (Connection refused;")


def test_up_with_a_state_dir_it_cannot_make_is_one_line() -> None:
    result = invoke(["up", "--state-dir", "/proc/no-such-dir/lab"])
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith("Error: /proc/no-such-dir/lab: cannot create the lab's directory")


def test_lab_key_prints_the_key_the_labs_inventory_gives_the_gateway(
    info: LabInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ollama_fleet import vault
    from ollama_fleet.inventory import load_inventory
    from ollama_fleet.lab.inventory import write_lab_inventory
    from ollama_fleet.lab.vault import read_lab_password

    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)
    path = write_lab_inventory(info)
    keys = load_inventory(path, vault=read_lab_password(info.state_dir)).host("lab").vars
    by_name = {entry["name"]: entry["key"] for entry in keys["gateway_api_keys"]}

    user = invoke(["key", "--state-dir", str(info.state_dir)])
    admin = invoke(["key", "--state-dir", str(info.state_dir), "--admin"])

    assert user.stdout == by_name["lab-user"] + "\n"
    assert admin.stdout == by_name["lab-admin"] + "\n"


def test_lab_key_without_a_vault_says_how_to_make_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(lab, ["key", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"Error: {tmp_path}/host_vars/lab.yml: cannot read the lab's keys: No such file or "
        "directory; `ollama-fleet lab up` makes them"
    ]


def test_lab_access_names_the_url_and_the_key_command_but_never_the_key(
    info: LabInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ollama_fleet import vault
    from ollama_fleet.lab.inventory import write_lab_inventory
    from ollama_fleet.lab.vault import lab_key

    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)
    write_lab_inventory(info)
    save_info(info)

    shown = invoke(["access", "--state-dir", str(info.state_dir)]).stdout

    lines = dict(line.split(":", 1) for line in shown.splitlines())
    assert lines["gateway"].strip().startswith("https://localhost:40443 ")
    assert f"lab key --state-dir {info.state_dir}" in lines["key"]
    assert "https://localhost:40443/v1/chat/completions" in lines["curl"]
    assert f"--cacert {info.state_dir}/tls/ca.pem" in lines["curl"]
    assert 'base_url="https://localhost:40443/v1"' in lines["openai"]
    assert lab_key(info.state_dir) not in shown
