"""The lab's access lines: each works as printed, whatever the paths hold."""

from __future__ import annotations

import shlex
from pathlib import Path

from ollama_fleet.lab.access import access_lines
from ollama_fleet.lab.state import LabInfo


def lab(state_dir: Path) -> LabInfo:
    return LabInfo(
        state_dir=state_dir,
        ssh_port=40022,
        http_port=40080,
        https_port=40443,
        ollama_port=41434,
        image_dir=state_dir / "image",
        image_hash="0" * 16,
        accel="tcg",
        memory_mb=2048,
        cpus=2,
    )


def key_words(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("key:"))
    return shlex.split(line.removeprefix("key:"))


def test_a_command_with_blanks_or_shell_characters_is_quoted_part_by_part(tmp_path: Path) -> None:
    state = tmp_path / "my lab"
    program = "/opt/my tools;$(id)/ollama-fleet"
    shown = access_lines(lab(state), command=[program], python="/usr/bin/python3")

    assert key_words(shown) == [program, "lab", "key", "--state-dir", str(state)]


def test_a_command_given_as_one_line_keeps_its_words(tmp_path: Path) -> None:
    shown = access_lines(
        lab(tmp_path), command="/usr/bin/python3 -m ollama_fleet", python="/usr/bin/python3"
    )

    assert key_words(shown)[:5] == ["/usr/bin/python3", "-m", "ollama_fleet", "lab", "key"]


def test_the_chat_page_is_named_on_the_gateways_url(tmp_path: Path) -> None:
    shown = access_lines(lab(tmp_path), command=["ollama-fleet"], python="/usr/bin/python3")
    chat = next(line for line in shown.splitlines() if line.startswith("chat page:"))
    assert chat.split()[2] == "https://localhost:40443/chat"
