"""`ollama-fleet vault`: each command on real files, its one-line errors, and what it never prints.

The group is invoked on its own through click's CliRunner (cli.py registers it as `vault`).
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner, Result

from ollama_fleet import vault as vault_lib
from ollama_fleet.cli import vault as vault_cli
from ollama_fleet.cli.vault import vault
from ollama_fleet.vault import (
    NEW_PASSWORD_ENV,
    PASSWORD_ENV,
    V1_HEADER,
    VaultPassword,
    decrypt_text,
    encrypt_text,
    encrypt_value,
    find_vault_values,
    is_encrypted,
)

PASSWORD = "pw-9f3k2-correct"
NEW_PASSWORD = "pw-7q1z-rotated"
SECRET = "sk-live-cli-4242"
PLAIN = f"all:\n  vars:\n    api_key: {SECRET}\n  hosts:\n    gpu-1:\n"
# what new vault texts start with here (the fixture below lowers scrypt's n to 2**10)
HEADER = "$OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT;N=1024,r=8,p=1"
# the committed version 1 text of test_vault.py, with its password and plaintext
KNOWN_V1 = Path(__file__).parent / "data" / "vault" / "known-answer-v1.txt"
KNOWN_PASSWORD = "known-answer: correct horse battery staple"
KNOWN_PLAIN = "api_key: sk-known-answer-v1-7f3a\nnote: \u00e9t\u00e9 \u2713\n"

EDITOR_SCRIPT = """
import os, stat, sys
path = sys.argv[-1]
modes = [stat.S_IMODE(os.stat(p).st_mode) for p in (os.path.dirname(path), path)]
with open(os.environ["EDITOR_LOG"], "a") as log:
    log.write(f"{path} {modes[0]:o} {modes[1]:o}\\n")
action = os.environ["EDITOR_ACTION"]
if action == "append":
    with open(path, "a") as draft:
        draft.write("added: by the editor\\n")
elif action == "remove":
    os.remove(path)
elif action == "fail":
    sys.exit(3)
"""


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast scrypt, and no password or editor leaking in from the developer's shell."""
    monkeypatch.setattr(vault_lib, "SCRYPT_N", 2**10)
    for name in (PASSWORD_ENV, NEW_PASSWORD_ENV, "VISUAL", "EDITOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    path = tmp_path / "vault-pass"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def new_pwfile(tmp_path: Path) -> Path:
    path = tmp_path / "new-vault-pass"
    path.write_text(NEW_PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def invoke(
    args: Sequence[str | Path],
    *,
    input: str | bytes | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    return CliRunner().invoke(
        vault, [str(a) for a in args], input=input, env=env, catch_exceptions=False
    )


def assert_no_leak(result: Result, *also: str) -> None:
    """Neither password nor the secret, on stdout or stderr."""
    for text in (PASSWORD, NEW_PASSWORD, SECRET, *also):
        assert text not in result.output, f"{text!r} leaked into the output"


def assert_one_line_error(result: Result, *, code: int = 2) -> str:
    """Exit `code`, no traceback, nothing on stdout, one `Error:` line; returns it."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert_no_leak(result)
    return errors[0]


def encrypted_file(tmp_path: Path, text: str = PLAIN, name: str = "secrets.yml") -> Path:
    path = tmp_path / name
    path.write_text(encrypt_text(text, VaultPassword(PASSWORD)), encoding="utf-8")
    return path


def inline_file(tmp_path: Path) -> Path:
    block = encrypt_value("api_key", SECRET, VaultPassword(PASSWORD))
    path = tmp_path / "prod.yml"
    path.write_text(
        "# prod fleet (keep me)\n"
        "all:\n"
        "  vars:\n"
        "    region: eu  # a trailing comment\n"
        + "".join(f"    {line}\n" for line in block.splitlines())
        + "    # after the value\n"
        "  hosts:\n"
        "    gpu-1: {public_url: 'https://gpu-1.example.net'}\n",
        encoding="utf-8",
    )
    return path


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(vault))


# -- the command tree ----------------------------------------------------------------------


def test_the_group_has_the_commands() -> None:
    assert set(vault.commands) == {"encrypt", "decrypt", "view", "edit", "rekey", "encrypt-string"}


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "vault" for p, _ in COMMANDS]
)
def test_every_command_and_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{path}: option {param.opts} has no help"
    result = invoke([*path, "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    if path:
        assert "--vault-password-file" in result.stdout


# -- encrypt and decrypt -------------------------------------------------------------------


def test_encrypt_then_decrypt_in_place(tmp_path: Path, pwfile: Path) -> None:
    path = tmp_path / "secrets.yml"
    path.write_text(PLAIN, encoding="utf-8")
    path.chmod(0o640)

    result = invoke(["encrypt", path, "--vault-password-file", pwfile])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{path}: encrypted\n"
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER + "\n")
    assert SECRET not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert decrypt_text(text, VaultPassword(PASSWORD), where="x") == PLAIN
    assert_no_leak(result)

    result = invoke(["decrypt", path, "--vault-password-file", pwfile])
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == PLAIN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # plaintext: no group or other access
    assert_no_leak(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.yml", "vault-pass"]


def test_encrypt_keeps_binary_files_whole(tmp_path: Path, pwfile: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256))
    path.write_bytes(data)
    assert invoke(["encrypt", path, "--vault-password-file", pwfile]).exit_code == 0
    result = invoke(["decrypt", path, "-o", "-", "--vault-password-file", pwfile])
    assert result.exit_code == 0
    assert result.stdout_bytes == data


def test_encrypt_through_a_symlink_replaces_the_target(tmp_path: Path, pwfile: Path) -> None:
    target = tmp_path / "real.yml"
    target.write_text(PLAIN, encoding="utf-8")
    link = tmp_path / "link.yml"
    link.symlink_to(target)
    assert invoke(["encrypt", link, "--vault-password-file", pwfile]).exit_code == 0
    assert link.is_symlink()
    assert is_encrypted(target.read_text(encoding="utf-8"))


def test_encrypt_refuses_an_encrypted_file_and_leaves_it(tmp_path: Path, pwfile: Path) -> None:
    path = encrypted_file(tmp_path)
    before = path.read_bytes()
    line = assert_one_line_error(invoke(["encrypt", path, "--vault-password-file", pwfile]))
    assert line == f"Error: {path}: already vault-encrypted; left as it is"
    assert path.read_bytes() == before


def test_encrypt_refuses_a_file_with_vault_values(tmp_path: Path, pwfile: Path) -> None:
    path = inline_file(tmp_path)
    before = path.read_bytes()
    line = assert_one_line_error(invoke(["encrypt", path, "--vault-password-file", pwfile]))
    assert f"{path}: line 5: holds a !vault value" in line
    assert path.read_bytes() == before


def test_decrypt_to_stdout_and_to_a_new_file(tmp_path: Path, pwfile: Path) -> None:
    path = encrypted_file(tmp_path)
    before = path.read_bytes()
    result = invoke(["decrypt", path, "--output", "-", "--vault-password-file", pwfile])
    assert result.exit_code == 0
    assert result.stdout == PLAIN
    assert path.read_bytes() == before

    out = tmp_path / "plain.yml"
    result = invoke(["decrypt", path, "-o", out, "--vault-password-file", pwfile])
    assert result.exit_code == 0
    assert result.stderr == f"{path}: decrypted to {out}\n"
    assert out.read_text(encoding="utf-8") == PLAIN
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert path.read_bytes() == before


def test_wrong_password_changes_nothing_and_says_where(tmp_path: Path) -> None:
    path = encrypted_file(tmp_path)
    before = path.read_bytes()
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not-the-password\n", encoding="utf-8")
    for command in (["decrypt", path], ["view", path], ["edit", path]):
        result = invoke([*command, "--vault-password-file", wrong], env={"EDITOR": "false"})
        line = assert_one_line_error(result)
        assert line == (
            f"Error: {path}: cannot decrypt vault file (wrong password or tampered data)"
        )
        assert_no_leak(result, "not-the-password")
    assert path.read_bytes() == before


def test_tampered_file_is_refused(tmp_path: Path, pwfile: Path) -> None:
    path = encrypted_file(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1][:20] + ("Q" if lines[1][20] != "Q" else "R") + lines[1][21:]
    path.write_text("".join(lines), encoding="utf-8")
    line = assert_one_line_error(invoke(["view", path, "--vault-password-file", pwfile]))
    assert "tampered data" in line


def test_truncated_file_is_refused(tmp_path: Path, pwfile: Path) -> None:
    path = encrypted_file(tmp_path)
    path.write_text(path.read_text(encoding="utf-8")[:-10], encoding="utf-8")
    line = assert_one_line_error(invoke(["decrypt", path, "--vault-password-file", pwfile]))
    assert f"{path}: vault file is corrupt" in line


def test_missing_and_plain_files(tmp_path: Path, pwfile: Path) -> None:
    missing = tmp_path / "nope.yml"
    for command in ("encrypt", "decrypt", "view", "rekey"):
        line = assert_one_line_error(invoke([command, missing, "--vault-password-file", pwfile]))
        assert line == f"Error: {missing}: no such file"
    plain = tmp_path / "plain.yml"
    plain.write_text(PLAIN, encoding="utf-8")
    line = assert_one_line_error(invoke(["decrypt", plain, "--vault-password-file", pwfile]))
    assert f"{plain}: not a vault-encrypted file" in line
    line = assert_one_line_error(invoke(["rekey", plain, "--vault-password-file", pwfile]))
    assert f"{plain}: holds no vault data" in line
    assert plain.read_text(encoding="utf-8") == PLAIN


def test_a_failed_write_keeps_the_original(
    tmp_path: Path, pwfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secrets.yml"
    path.write_text(PLAIN, encoding="utf-8")

    def no_rename(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    line = assert_one_line_error(invoke(["encrypt", path, "--vault-password-file", pwfile]))
    assert line.endswith(f"{path}: cannot write the vault file: No space left on device")
    assert path.read_text(encoding="utf-8") == PLAIN
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.yml", "vault-pass"]


# -- where the password comes from ---------------------------------------------------------


def test_password_from_the_environment(tmp_path: Path) -> None:
    path = encrypted_file(tmp_path)
    result = invoke(["view", path], env={PASSWORD_ENV: PASSWORD})
    assert result.exit_code == 0, result.output
    assert result.stdout == PLAIN


def test_password_file_newline_matches_the_environment(tmp_path: Path, pwfile: Path) -> None:
    assert pwfile.read_text(encoding="utf-8") == PASSWORD + "\n"
    path = tmp_path / "secrets.yml"
    path.write_text(PLAIN, encoding="utf-8")
    assert invoke(["encrypt", path, "--vault-password-file", pwfile]).exit_code == 0
    result = invoke(["decrypt", path, "-o", "-"], env={PASSWORD_ENV: PASSWORD})
    assert result.stdout == PLAIN


def test_without_a_password_and_a_terminal_the_error_says_how(tmp_path: Path) -> None:
    path = encrypted_file(tmp_path)
    line = assert_one_line_error(invoke(["view", path], input=PASSWORD + "\n"))
    assert line == (
        "Error: no vault password: give --vault-password-file FILE or set "
        "OLLAMA_FLEET_VAULT_PASSWORD (stdin is not a terminal, so it cannot be asked for)"
    )


def test_empty_password_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yml"
    path.write_text(PLAIN, encoding="utf-8")
    empty = tmp_path / "empty-pass"
    empty.write_text("\n", encoding="utf-8")
    line = assert_one_line_error(invoke(["encrypt", path, "--vault-password-file", empty]))
    assert line == f"Error: {empty}: the vault password file is empty"
    assert path.read_text(encoding="utf-8") == PLAIN


def test_empty_password_variable_is_refused(tmp_path: Path) -> None:
    path = encrypted_file(tmp_path)
    line = assert_one_line_error(invoke(["view", path], env={PASSWORD_ENV: ""}))
    assert "OLLAMA_FLEET_VAULT_PASSWORD is set but empty" in line


# -- view ----------------------------------------------------------------------------------


def test_view_inline_values(tmp_path: Path, pwfile: Path) -> None:
    path = inline_file(tmp_path)
    before = path.read_bytes()
    result = invoke(["view", path, "--vault-password-file", pwfile])
    assert result.exit_code == 0, result.output
    assert f'    api_key: "{SECRET}"\n' in result.stdout
    assert "# prod fleet (keep me)\n" in result.stdout
    assert yaml.safe_load(result.stdout)["all"]["vars"] == {"region": "eu", "api_key": SECRET}
    assert path.read_bytes() == before


def test_view_a_plain_file_needs_no_password(tmp_path: Path) -> None:
    path = tmp_path / "plain.yml"
    path.write_text("all:\n  hosts:\n    a:\n", encoding="utf-8")
    result = invoke(["view", path])
    assert result.exit_code == 0, result.output
    assert result.stdout == "all:\n  hosts:\n    a:\n"


def test_view_names_the_line_of_a_value_that_does_not_open(tmp_path: Path) -> None:
    path = inline_file(tmp_path)
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n", encoding="utf-8")
    line = assert_one_line_error(invoke(["view", path, "--vault-password-file", wrong]))
    assert line == (
        f"Error: {path}: line 5: cannot decrypt vault value (wrong password or tampered data)"
    )


# -- rekey ---------------------------------------------------------------------------------


def test_rekey_inline_keeps_the_rest_byte_identical(
    tmp_path: Path, pwfile: Path, new_pwfile: Path
) -> None:
    path = inline_file(tmp_path)
    before = path.read_text(encoding="utf-8")
    (value,) = find_vault_values(before, where="x")

    args = ["rekey", path, "--vault-password-file", pwfile]
    result = invoke([*args, "--new-vault-password-file", new_pwfile])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{path}: rekeyed\n"
    assert_no_leak(result)

    after = path.read_text(encoding="utf-8")
    old_lines, new_lines = before.splitlines(True), after.splitlines(True)
    assert old_lines[: value.first] == new_lines[: value.first]
    assert old_lines[value.stop :] == new_lines[value.stop :]
    assert old_lines[value.first : value.stop] != new_lines[value.first : value.stop]

    line = assert_one_line_error(invoke(["view", path, "--vault-password-file", pwfile]))
    assert "line 5: cannot decrypt vault value" in line
    result = invoke(["view", path, "--vault-password-file", new_pwfile])
    assert f'api_key: "{SECRET}"' in result.stdout


def test_rekey_a_whole_file_with_environment_passwords(tmp_path: Path) -> None:
    path = encrypted_file(tmp_path)
    env = {PASSWORD_ENV: PASSWORD, NEW_PASSWORD_ENV: NEW_PASSWORD}
    result = invoke(["rekey", path], env=env)
    assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    assert decrypt_text(text, VaultPassword(NEW_PASSWORD), where="x") == PLAIN
    assert "wrong password" in assert_one_line_error(invoke(["view", path], env=env))


def test_rekey_turns_a_version_1_file_into_version_2(tmp_path: Path, new_pwfile: Path) -> None:
    path = tmp_path / "old-secrets.yml"
    path.write_bytes(KNOWN_V1.read_bytes())
    assert path.read_text(encoding="ascii").startswith(V1_HEADER + "\n")
    env = {PASSWORD_ENV: KNOWN_PASSWORD}
    result = invoke(["rekey", path, "--new-vault-password-file", new_pwfile], env=env)
    assert result.exit_code == 0, result.output
    assert_no_leak(result, KNOWN_PASSWORD, KNOWN_PLAIN)
    text = path.read_text(encoding="ascii")
    assert text.startswith(HEADER + "\n")
    assert decrypt_text(text, VaultPassword(NEW_PASSWORD), where="x") == KNOWN_PLAIN


def test_rekey_with_the_wrong_old_password_writes_nothing(tmp_path: Path, new_pwfile: Path) -> None:
    path = inline_file(tmp_path)
    before = path.read_bytes()
    args = ["rekey", path, "--vault-password-file", new_pwfile]
    line = assert_one_line_error(invoke([*args], env={NEW_PASSWORD_ENV: "third-password"}))
    assert "line 5: cannot decrypt vault value" in line
    assert path.read_bytes() == before


def test_rekey_needs_a_new_password(tmp_path: Path, pwfile: Path) -> None:
    path = encrypted_file(tmp_path)
    before = path.read_bytes()
    line = assert_one_line_error(invoke(["rekey", path, "--vault-password-file", pwfile]))
    assert "--new-vault-password-file FILE or set OLLAMA_FLEET_NEW_VAULT_PASSWORD" in line
    line = assert_one_line_error(
        invoke(["rekey", path, "--vault-password-file", pwfile], env={NEW_PASSWORD_ENV: PASSWORD})
    )
    assert "same as the old one" in line
    assert path.read_bytes() == before


# -- edit ----------------------------------------------------------------------------------


def editor_env(tmp_path: Path, action: str) -> dict[str, str | None]:
    script = tmp_path / "editor.py"
    script.write_text(EDITOR_SCRIPT, encoding="utf-8")
    return {
        "EDITOR": f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}",
        "EDITOR_ACTION": action,
        "EDITOR_LOG": str(tmp_path / "editor.log"),
    }


def edited_paths(tmp_path: Path) -> list[tuple[Path, str, str]]:
    """What the editor saw: the draft's path, its directory's mode, its own mode."""
    lines = (tmp_path / "editor.log").read_text(encoding="utf-8").splitlines()
    return [(Path(p), d, f) for p, d, f in (line.rsplit(" ", 2) for line in lines)]


def test_edit_re_encrypts_what_the_editor_changed(tmp_path: Path, pwfile: Path) -> None:
    path = encrypted_file(tmp_path)
    result = invoke(
        ["edit", path, "--vault-password-file", pwfile], env=editor_env(tmp_path, "append")
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{path}: saved, encrypted\n"
    assert_no_leak(result)

    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    assert (
        decrypt_text(text, VaultPassword(PASSWORD), where="x") == PLAIN + "added: by the editor\n"
    )
    ((draft, dir_mode, file_mode),) = edited_paths(tmp_path)
    assert draft.name == path.name
    assert (dir_mode, file_mode) == ("700", "600")
    assert not draft.exists()
    assert not draft.parent.exists()


def test_edit_saves_a_version_1_file_as_version_2(tmp_path: Path) -> None:
    path = tmp_path / "old-secrets.yml"
    path.write_bytes(KNOWN_V1.read_bytes())
    env = {PASSWORD_ENV: KNOWN_PASSWORD, **editor_env(tmp_path, "append")}
    result = invoke(["edit", path], env=env)
    assert result.exit_code == 0, result.output
    text = path.read_text(encoding="ascii")
    assert text.startswith(HEADER + "\n")
    plaintext = decrypt_text(text, VaultPassword(KNOWN_PASSWORD), where="x")
    assert plaintext == KNOWN_PLAIN + "added: by the editor\n"


def test_edit_without_changes_leaves_the_file_alone(tmp_path: Path, pwfile: Path) -> None:
    path = encrypted_file(tmp_path)
    before = path.read_bytes()
    result = invoke(
        ["edit", path, "--vault-password-file", pwfile], env=editor_env(tmp_path, "keep")
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{path}: unchanged\n"
    assert path.read_bytes() == before  # not even a new salt


@pytest.mark.parametrize(
    ("action", "says"),
    [("fail", "the editor exited with status 3"), ("remove", "the editor removed the file")],
)
def test_edit_when_the_editor_fails(tmp_path: Path, pwfile: Path, action: str, says: str) -> None:
    path = encrypted_file(tmp_path)
    before = path.read_bytes()
    result = invoke(
        ["edit", path, "--vault-password-file", pwfile], env=editor_env(tmp_path, action)
    )
    line = assert_one_line_error(result, code=1)
    assert line == f"Error: {path}: {says}; nothing changed"
    assert path.read_bytes() == before
    ((draft, _, _),) = edited_paths(tmp_path)
    assert not draft.parent.exists()


def test_edit_with_a_missing_editor(tmp_path: Path, pwfile: Path) -> None:
    path = encrypted_file(tmp_path)
    before = path.read_bytes()
    env = {"EDITOR": str(tmp_path / "no-such-editor")}
    line = assert_one_line_error(
        invoke(["edit", path, "--vault-password-file", pwfile], env=env), code=1
    )
    assert "cannot run the editor" in line
    assert path.read_bytes() == before


def test_edit_creates_a_new_file(tmp_path: Path, pwfile: Path) -> None:
    path = tmp_path / "new-secrets.yml"
    result = invoke(
        ["edit", path, "--vault-password-file", pwfile], env=editor_env(tmp_path, "append")
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{path}: created, encrypted\n"
    text = path.read_text(encoding="utf-8")
    assert decrypt_text(text, VaultPassword(PASSWORD), where="x") == "added: by the editor\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_edit_a_new_file_left_empty_creates_nothing(tmp_path: Path, pwfile: Path) -> None:
    path = tmp_path / "new-secrets.yml"
    result = invoke(
        ["edit", path, "--vault-password-file", pwfile], env=editor_env(tmp_path, "keep")
    )
    assert result.exit_code == 0, result.output
    assert not path.exists()


def test_edit_refuses_a_file_without_vault_data(tmp_path: Path, pwfile: Path) -> None:
    path = tmp_path / "plain.yml"
    path.write_text(PLAIN, encoding="utf-8")
    result = invoke(
        ["edit", path, "--vault-password-file", pwfile], env=editor_env(tmp_path, "append")
    )
    line = assert_one_line_error(result)
    assert line == (
        f"Error: {path}: holds no vault data: encrypt it as a whole with `ollama-fleet vault "
        "encrypt`, or add a value made by `ollama-fleet vault encrypt-string`"
    )
    assert path.read_text(encoding="utf-8") == PLAIN
    assert not (tmp_path / "editor.log").exists()


def test_the_new_password_variable_in_help_is_the_library_s() -> None:
    assert vault_cli.NEW_PASSWORD_ENV == NEW_PASSWORD_ENV
    assert f"${NEW_PASSWORD_ENV}" in invoke(["rekey", "--help"]).stdout


def test_the_command_group_loads_without_cryptography() -> None:
    """`ollama-fleet --help` imports every command module: this one must stay light."""
    code = (
        "import sys, ollama_fleet.cli.vault; "
        "print(sorted(m for m in sys.modules if m.startswith(('cryptography', 'yaml'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


# -- encrypt-string ------------------------------------------------------------------------


def test_encrypt_string_from_stdin(tmp_path: Path, pwfile: Path) -> None:
    result = invoke(
        ["encrypt-string", "api_key", "--vault-password-file", pwfile], input=SECRET + "\n"
    )
    assert result.exit_code == 0, result.output
    assert_no_leak(result)
    lines = result.stdout.splitlines()
    assert lines[0] == "api_key: !vault |"
    assert lines[1] == "  " + HEADER

    inventory = "all:\n  vars:\n" + "".join(f"    {line}\n" for line in lines)
    (value,) = find_vault_values(inventory, where="x")
    assert decrypt_text(value.vaulttext, VaultPassword(PASSWORD), where="x") == SECRET


def test_encrypt_string_errors(tmp_path: Path, pwfile: Path) -> None:
    line = assert_one_line_error(
        invoke(["encrypt-string", "api_key", "--vault-password-file", pwfile], input="")
    )
    assert "the value is empty" in line
    line = assert_one_line_error(
        invoke(["encrypt-string", "api-key", "--vault-password-file", pwfile], input=SECRET)
    )
    assert "'api-key' is not a variable name" in line
    line = assert_one_line_error(invoke(["encrypt-string", "api_key"], input=SECRET))
    assert "--vault-password-file FILE or set OLLAMA_FLEET_VAULT_PASSWORD" in line


def test_encrypt_string_takes_no_value_argument(pwfile: Path) -> None:
    result = invoke(["encrypt-string", "api_key", SECRET, "--vault-password-file", pwfile])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_a_wrong_password_names_the_first_of_several_values(tmp_path: Path) -> None:
    first = encrypt_value("api_key", SECRET, VaultPassword(PASSWORD))
    second = encrypt_value("webhook", SECRET, VaultPassword(PASSWORD))
    path = tmp_path / "two.yml"
    path.write_text(
        "all:\n  vars:\n"
        + "".join(f"    {line}\n" for line in (first + "\n" + second).splitlines())
        + "  hosts:\n    gpu-1: {}\n",
        encoding="utf-8",
    )
    wrong, new = tmp_path / "wrong", tmp_path / "new"
    wrong.write_text("nope\n", encoding="utf-8")
    new.write_text("a new password\n", encoding="utf-8")
    for file in (wrong, new):
        file.chmod(0o600)

    for command in ("view", "rekey"):
        extra = ["--new-vault-password-file", new] if command == "rekey" else []
        result = invoke([command, path, "--vault-password-file", wrong, *extra])
        assert result.exit_code == 2, result.output
        assert f"{path}: line 3: cannot decrypt vault value" in result.stderr, command
