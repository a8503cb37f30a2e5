"""The vault password file: run when executable (as Ansible), and a warning for loose modes.

Through the real CLI (`vault view` of an encrypted file) where a user sees it, and through
the library where check and deploy read it (`read_password`, as cli/_common.py does).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ollama_fleet import vault as vault_lib
from ollama_fleet.cli.vault import vault
from ollama_fleet.password_file import permission_warning
from ollama_fleet.vault import (
    PASSWORD_ENV,
    PasswordSource,
    VaultError,
    VaultPassword,
    encrypt_text,
    read_password,
)

PASSWORD = "pw-script-8e2b"
PLAIN = "api_key: sk-script-5555\n"
SCRIPT_NOISE = "NOT-THE-PASSWORD-noise-6666"


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_lib, "SCRYPT_N", 2**10)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.yml"
    path.write_text(encrypt_text(PLAIN, VaultPassword(PASSWORD)), encoding="utf-8")
    return path


def script(tmp_path: Path, body: str, *, mode: int = 0o700, name: str = "pass.sh") -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(mode)
    return path


def view(secrets: Path, password_file: Path) -> Result:
    args = ["view", str(secrets), "--vault-password-file", str(password_file)]
    result = CliRunner().invoke(vault, args, catch_exceptions=False)
    assert PASSWORD not in result.stderr
    assert SCRIPT_NOISE not in result.output
    return result


def test_an_executable_password_file_is_run(tmp_path: Path, secrets: Path) -> None:
    pass_sh = script(tmp_path, f"printf '%s\\n' '{PASSWORD}'")
    result = view(secrets, pass_sh)
    assert result.exit_code == 0, result.output
    assert result.stdout == PLAIN
    assert result.stderr == ""  # mode 0700: nothing to warn about


def test_only_one_trailing_newline_of_the_output_is_dropped(tmp_path: Path, secrets: Path) -> None:
    pass_sh = script(tmp_path, f"printf '%s\\n\\n' '{PASSWORD}'")
    result = view(secrets, pass_sh)
    assert result.exit_code == 2
    assert "cannot decrypt vault file (wrong password" in result.stderr


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (f"echo {SCRIPT_NOISE}; exit 3", "the vault password script exited with status 3"),
        ("exit 0", "the vault password script printed nothing"),
        ("printf '\\n'", "the vault password script printed nothing"),
        (f"echo {SCRIPT_NOISE}; kill -9 $$", "the vault password script was killed by signal 9"),
    ],
    ids=["non-zero", "no-output", "only-a-newline", "killed"],
)
def test_a_failing_script_is_one_line_naming_it(
    tmp_path: Path, secrets: Path, body: str, says: str
) -> None:
    pass_sh = script(tmp_path, body)
    result = view(secrets, pass_sh)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"Error: {pass_sh}: {says}\n"


def test_a_script_that_cannot_run(tmp_path: Path, secrets: Path) -> None:
    broken = tmp_path / "pass.bin"
    broken.write_bytes(b"\x7fELF-not-really")
    broken.chmod(0o700)
    result = view(secrets, broken)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {broken}: cannot run the vault password script: Exec format error (if the "
        "file holds the password itself, `chmod -x` it: an executable file is run as a script)\n"
    )


def test_a_plain_password_file_with_the_x_bit_says_how_to_fix_it(
    tmp_path: Path, secrets: Path
) -> None:
    # common on shared or WSL mounts, where every file is executable
    plain = tmp_path / "pass.txt"
    plain.write_text("the password\n", encoding="utf-8")
    plain.chmod(0o700)

    result = view(secrets, plain)

    assert result.exit_code == 2
    assert "`chmod -x` it" in result.stderr


def test_a_hung_script_times_out(tmp_path: Path) -> None:
    pass_sh = script(tmp_path, "exec sleep 30")
    source = PasswordSource(file=pass_sh, script_timeout=0.2)
    with pytest.raises(VaultError) as info:
        read_password(source, environ={})
    assert str(info.value) == f"{pass_sh}: the vault password script did not finish within 0.2 s"


@pytest.mark.parametrize(
    ("mode", "warning"),
    [
        (0o644, "is readable by group and others (mode 0644): chmod 600"),
        (0o640, "is readable by group (mode 0640): chmod 600"),
        (0o604, "is readable by others (mode 0604): chmod 600"),
        (0o444, "is readable by group and others (mode 0444): chmod 400"),
        (0o600, None),
        (0o400, None),
        (0o620, None),  # group may write but not read: the password stays private
    ],
)
def test_a_password_file_others_can_read_is_warned_about(
    tmp_path: Path, secrets: Path, mode: int, warning: str | None
) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    pw.chmod(mode)
    result = view(secrets, pw)
    assert result.exit_code == 0, result.output
    assert result.stdout == PLAIN  # a warning, not an error
    if warning is None:
        assert result.stderr == ""
    else:
        assert result.stderr == f"warning: vault password file {pw} {warning} {pw}\n"


def test_a_script_others_can_change_is_warned_about(tmp_path: Path, secrets: Path) -> None:
    pass_sh = script(tmp_path, f"echo '{PASSWORD}'", mode=0o777)
    result = view(secrets, pass_sh)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: vault password script {pass_sh} is writable by group and others "
        f"(mode 0777): chmod 755 {pass_sh}\n"
    )
    readable = script(tmp_path, f"echo '{PASSWORD}'", mode=0o755, name="readable.sh")
    assert view(secrets, readable).stderr == ""  # a script holds no secret: reading is fine


def test_check_and_deploy_get_the_warning_as_one_stderr_line(tmp_path: Path) -> None:
    """Without a `warn`, as cli/_common.py reads it, the warning is logged: one plain line."""
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    pw.chmod(0o644)
    code = (
        "import sys; from pathlib import Path; from ollama_fleet.vault import PasswordSource, "
        "read_password; read_password(PasswordSource(file=Path(sys.argv[1])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(pw)], capture_output=True, text=True, check=True
    )
    assert done.stderr == (
        f"warning: vault password file {pw} is readable by group and others (mode 0644): "
        f"chmod 600 {pw}\n"
    )
    assert done.stdout == ""


def test_the_warning_goes_to_the_vault_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pass_sh = script(tmp_path, f"echo '{PASSWORD}'", mode=0o722)
    with caplog.at_level(logging.WARNING, logger="ollama_fleet.vault"):
        assert read_password(PasswordSource(file=pass_sh), environ={}) == VaultPassword(PASSWORD)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        (
            "ollama_fleet.vault",
            f"warning: vault password script {pass_sh} is writable by group and others "
            f"(mode 0722): chmod 700 {pass_sh}",
        )
    ]


def test_the_docs_show_the_warnings_as_they_are() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "vault.md").read_text(encoding="utf-8")
    for path, mode, script in (("pw.txt", 0o644, False), ("fleet-pass", 0o777, True)):
        warning = permission_warning(Path(path), mode, script=script)
        assert f"   {warning}\n" in doc
