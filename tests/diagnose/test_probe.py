"""The facts script itself, run by dash on this machine with stub programs for the host's tools.

Each stub prints a fixed output or fails as the real tool would; anything the script needs
and the stub directory lacks is missing, so a script that used an unexpected tool shows it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ollama_fleet.diagnose.probe import COMMANDS, MARKER, probe_script, split_outputs

# the real programs the script itself relies on (the prologue, fact(), the watchdog)
BASICS = (
    "sh", "cat", "printf", "mktemp", "rm", "sed", "tail", "tr", "xargs", "base64", "sleep",
    "kill", "mkdir", "chmod", "chown", "id", "head", "cut", "timeout", "env", "echo", "true",
    "renice",
)  # fmt: skip


def bin_dir(tmp_path: Path, *, without: tuple[str, ...] = (), stubs: dict[str, str]) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in BASICS:
        found = shutil.which(name)
        if found and name not in without:
            (folder / name).symlink_to(found)
    for name, body in stubs.items():
        stub = folder / name
        stub.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        stub.chmod(0o755)
    return folder


def run(script: str, tmp_path: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    return subprocess.run(
        ["dash", "-s"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        env={"TMPDIR": str(scratch), "PATH": "/usr/bin:/bin"},
        **kwargs,  # type: ignore[arg-type]
    )


STUBS = {
    "systemctl": 'case "$*" in *--value*) echo "OLLAMA_HOST=127.0.0.1:11500 A=1";; '
    "*) echo Id=ollama.service; echo Environment=OLLAMA_HOST=127.0.0.1:11500;; esac",
    "journalctl": 'echo "2026-12-01T10:00:00+0000 h ollama[1]: $*"',
    "ss": "echo 'LISTEN 0 128 0.0.0.0:22 0.0.0.0:*'",
    "nft": "echo 'nft: Operation not permitted' >&2; exit 1",
    "curl": 'echo "asked $*"',
    "uname": "echo Linux 6.1.0-50-amd64 x86_64",
}


def test_every_command_comes_back_with_its_status_and_both_streams(tmp_path: Path) -> None:
    script = probe_script(public_name="gpu-1.example.com", search_path=str(
        bin_dir(tmp_path, stubs=STUBS)
    ))  # fmt: skip
    done = run(script, tmp_path)
    assert done.returncode == 0, done.stderr
    found = split_outputs(done.stdout)
    assert set(found) == {*COMMANDS, "dns"}
    assert found["uname"].stdout == "Linux 6.1.0-50-amd64 x86_64\n"
    assert (found["ruleset"].rc, found["ruleset"].stderr) == (1, "nft: Operation not permitted\n")
    assert found["nvidia_smi"].missing and found["dns"].missing  # no stub: not installed
    # the prologue took Ollama's address from its unit's environment
    assert found["api_version"].stdout == "asked -sS -m 5 http://127.0.0.1:11500/api/version\n"
    assert found["ollama_url"].stdout == "http://127.0.0.1:11500\n"
    assert "journal" not in found["journal:ollama.service"].stderr
    # nothing is left behind in the temporary folder
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_public_name_cannot_break_out_of_its_quotes(tmp_path: Path) -> None:
    argv_file = tmp_path / "argv"
    stubs = {"getent": f'printf "%s\\n" "$@" > {argv_file}'}
    name = "x'$(touch pwned)'; touch pwned2 #"
    done = run(
        probe_script(public_name=name, search_path=str(bin_dir(tmp_path, stubs=stubs))),
        tmp_path,
        cwd=tmp_path,
    )
    assert done.returncode == 0
    assert argv_file.read_text(encoding="utf-8") == f"ahosts\n{name}\n"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_without_base64_the_script_says_so_instead_of_blank_facts(tmp_path: Path) -> None:
    folder = bin_dir(tmp_path, without=("base64",), stubs={})
    done = run(probe_script(search_path=str(folder)), tmp_path)
    assert done.stdout == f"{MARKER} base64 127 - -\n"
    assert split_outputs(done.stdout)["base64"].missing


def test_a_hanging_command_is_cut_at_its_bound_and_the_others_still_come(tmp_path: Path) -> None:
    stubs = {"journalctl": "sleep 10", "uname": "echo Linux 6.1.0 x86_64"}
    folder = bin_dir(tmp_path, stubs=stubs)
    done = run(probe_script(search_path=str(folder), timeout_s=1, watchdog_s=20), tmp_path)
    found = split_outputs(done.stdout)
    assert found["journal:ollama.service"].timed_out
    assert found["uname"].stdout == "Linux 6.1.0 x86_64\n"


def test_without_timeout_the_watchdog_ends_the_script(tmp_path: Path) -> None:
    stubs = {"journalctl": "exec sleep 10", "uname": "echo Linux 6.1.0 x86_64"}
    folder = bin_dir(tmp_path, without=("timeout",), stubs=stubs)
    done = run(probe_script(search_path=str(folder), watchdog_s=2), tmp_path)
    found = split_outputs(done.stdout)
    assert "journal:ollama.service" not in found  # killed: no line, a gap in the facts
    assert found["uname"].ok


@pytest.mark.parametrize(
    "line",
    ["", "garbage", f"{MARKER} x", f"{MARKER} x notanumber - -", f"{MARKER} x 0 !!! -"],
)
def test_lines_that_are_not_the_scripts_own_are_ignored_or_read_safely(line: str) -> None:
    found = split_outputs(f"noise\n{line}\n{MARKER} ok 0 aGk= -\n")
    assert found["ok"].stdout == "hi" and found["ok"].stderr == ""
    assert all(isinstance(o.rc, int) for o in found.values())


def test_dash_accepts_the_script() -> None:
    assert shutil.which("dash"), "dash is Debian's /bin/sh"
    done = subprocess.run(["dash", "-n"], input=probe_script(public_name="a.example"), text=True)
    assert done.returncode == 0
    assert os.sep in probe_script()  # the default PATH is the host's own


def test_the_unbounded_commands_are_all_real_commands() -> None:
    from ollama_fleet.diagnose.probe import QUICK

    assert set(COMMANDS) >= QUICK
