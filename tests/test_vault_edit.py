"""`ollama-fleet vault edit` on a YAML file with `!vault` values, through the real CLI.

The editor is a stand-in: a small Python script set as $EDITOR that copies the draft it was
given (so the test can see the view), applies the replacements the test names, and exits
with the status the test asks for.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ollama_fleet import vault as vault_lib
from ollama_fleet.cli.vault import vault
from ollama_fleet.vault import (
    PASSWORD_ENV,
    VaultPassword,
    decrypt_text,
    encrypt_value,
    find_vault_values,
)
from ollama_fleet.vault_edit import BANNER

PASSWORD = "pw-edit-4c1d"
API_KEY = "sk-live-edit-1111"
TOKEN = "tok-edit-2222"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----\n"
SECRETS = (PASSWORD, API_KEY, TOKEN, "MIIBVQIBADANBgkqhkiG9w0B")

EDITOR = r"""
import json, os, shutil, stat, sys
path = sys.argv[-1]
saw = os.environ["EDITOR_SAW"]
shutil.copyfile(path, saw)
modes = [stat.S_IMODE(os.stat(p).st_mode) for p in (os.path.dirname(path), path)]
with open(saw + ".where", "w") as out:
    out.write(f"{path} {modes[0]:o} {modes[1]:o}")
with open(path, encoding="utf-8", newline="") as draft:
    text = draft.read()
for old, new in json.loads(os.environ["EDITOR_EDITS"]):
    if old not in text:
        sys.exit(f"editor stand-in: {old!r} is not in the draft")
    text = text.replace(old, new, 1)
with open(path, "w", encoding="utf-8", newline="") as draft:
    draft.write(text)
sys.exit(int(os.environ["EDITOR_EXIT"]))
"""


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_lib, "SCRYPT_N", 2**10)
    for name in (PASSWORD_ENV, "VISUAL", "EDITOR"):
        monkeypatch.delenv(name, raising=False)


def block(name: str, plaintext: str) -> str:
    """`name: !vault |` and its vault text, indented under `all: vars:`."""
    value = encrypt_value(name, plaintext, VaultPassword(PASSWORD))
    return "".join(f"    {line}\n" for line in value.splitlines())


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "prod.yml"
    path.write_text(
        "# prod fleet: keep this comment\n"
        "all:\n"
        "  vars:\n"
        "    region: eu  # where the fleet is\n"
        + block("api_key", API_KEY)
        + "    # the TLS key, PEM\n"
        + block("tls_key", PEM)
        + block("token", TOKEN)
        + "  hosts:\n"
        "    gpu-1:\n"
        "      public_url: https://gpu-1.example.net\n",
        encoding="utf-8",
    )
    return path


def edit(
    tmp_path: Path, path: Path, edits: list[tuple[str, str]] = (), *, status: int = 0
) -> Result:
    script = tmp_path / "editor.py"
    script.write_text(EDITOR, encoding="utf-8")
    env = {
        "EDITOR": f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}",
        "EDITOR_SAW": str(tmp_path / "seen.yml"),
        "EDITOR_EDITS": json.dumps(list(edits)),
        "EDITOR_EXIT": str(status),
        PASSWORD_ENV: PASSWORD,
    }
    result = CliRunner().invoke(vault, ["edit", str(path)], env=env, catch_exceptions=False)
    for secret in SECRETS:
        assert secret not in result.output, f"{secret!r} leaked into the output"
    return result


def seen(tmp_path: Path) -> str:
    """The view the editor was given."""
    return (tmp_path / "seen.yml").read_text(encoding="utf-8")


def blocks(path: Path) -> dict[int, str]:
    """Each !vault value's vault text, by line."""
    values = find_vault_values(path.read_text(encoding="utf-8"), where=str(path))
    return {v.line: v.vaulttext for v in values}


def opened(path: Path) -> list[str]:
    """The plaintext of each !vault value, in file order."""
    values = find_vault_values(path.read_text(encoding="utf-8"), where=str(path))
    password = VaultPassword(PASSWORD)
    return [decrypt_text(v.vaulttext, password, where="test") for v in values]


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_the_view_shows_each_value_decrypted_and_tagged(tmp_path: Path, inventory: Path) -> None:
    result = edit(tmp_path, inventory)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{inventory}: unchanged\n"
    view = seen(tmp_path)
    assert view == (
        "".join(f"{line}\n" for line in BANNER) + "# prod fleet: keep this comment\n"
        "all:\n"
        "  vars:\n"
        "    region: eu  # where the fleet is\n"
        f'    api_key: !vault-plain "{API_KEY}"\n'
        "    # the TLS key, PEM\n"
        "    tls_key: !vault-plain |\n"
        "      -----BEGIN PRIVATE KEY-----\n"
        "      MIIBVQIBADANBgkqhkiG9w0B\n"
        "      -----END PRIVATE KEY-----\n"
        f'    token: !vault-plain "{TOKEN}"\n'
        "  hosts:\n"
        "    gpu-1:\n"
        "      public_url: https://gpu-1.example.net\n"
    )
    draft, dir_mode, file_mode = (tmp_path / "seen.yml.where").read_text().split(" ")
    assert (dir_mode, file_mode) == ("700", "600")
    assert not Path(draft).parent.exists()  # the plaintext is gone with its directory


def test_a_changed_value_is_re_encrypted_and_the_others_keep_their_bytes(
    tmp_path: Path, inventory: Path
) -> None:
    before, old_blocks = lines_of(inventory), blocks(inventory)
    result = edit(tmp_path, inventory, [(f'"{API_KEY}"', '"sk-live-edit-rotated"')])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{inventory}: saved; vault values: 1 changed, 2 unchanged\n"
    assert opened(inventory) == ["sk-live-edit-rotated", PEM, TOKEN]
    after, new_blocks = lines_of(inventory), blocks(inventory)
    # the api_key block's base64 (lines 7 and 8; line 6 is the header) is all that
    # differs: a git diff shows only it
    assert len(after) == len(before)
    assert [i + 1 for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [7, 8]
    assert after[4] == "    api_key: !vault |\n"
    assert new_blocks[5] != old_blocks[5]
    assert {k: v for k, v in new_blocks.items() if k != 5} == {
        k: v for k, v in old_blocks.items() if k != 5
    }


def test_a_line_changed_inside_a_block_value(tmp_path: Path, inventory: Path) -> None:
    result = edit(tmp_path, inventory, [("MIIBVQIBADANBgkqhkiG9w0B", "MIIBnewKEYmaterial")])
    assert result.exit_code == 0, result.output
    assert opened(inventory) == [
        API_KEY,
        PEM.replace("MIIBVQIBADANBgkqhkiG9w0B", "MIIBnewKEYmaterial"),
        TOKEN,
    ]


def test_a_new_value_tagged_vault_plain_is_encrypted(tmp_path: Path, inventory: Path) -> None:
    result = edit(
        tmp_path,
        inventory,
        [
            (
                "  hosts:\n",
                '    hf_token: !vault-plain "hf-new-3333"  # added in the editor\n'
                "    log_level: debug\n"
                "  hosts:\n",
            )
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{inventory}: saved; vault values: 1 added, 3 unchanged\n"
    text = inventory.read_text(encoding="utf-8")
    assert "hf-new-3333" not in text
    assert "    hf_token: !vault |  # added in the editor\n" in text
    assert "    log_level: debug\n" in text  # an untagged value stays in clear text
    assert opened(inventory) == [API_KEY, PEM, TOKEN, "hf-new-3333"]


def test_a_removed_value_is_gone(tmp_path: Path, inventory: Path) -> None:
    before = inventory.read_text(encoding="utf-8")
    result = edit(tmp_path, inventory, [(f'    token: !vault-plain "{TOKEN}"\n', "")])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{inventory}: saved; vault values: 1 removed, 2 unchanged\n"
    assert opened(inventory) == [API_KEY, PEM]
    token_block = block("token", TOKEN).splitlines()[0]  # the tag line: the same every time
    assert token_block not in inventory.read_text(encoding="utf-8")
    # nothing else moved: the file is the old one without the token's lines
    old = before.splitlines(keepends=True)
    (token_line,) = [i for i, line in enumerate(old) if line.startswith("    token:")]
    assert inventory.read_text(encoding="utf-8") == "".join(
        old[:token_line] + old[token_line + 3 :]
    )


def test_a_renamed_value_keeps_its_vault_text(tmp_path: Path, inventory: Path) -> None:
    old_blocks = blocks(inventory)
    result = edit(
        tmp_path, inventory, [("    api_key: !vault-plain", "    openai_key: !vault-plain")]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{inventory}: saved; vault values: 3 unchanged\n"
    assert blocks(inventory) == old_blocks
    assert "    openai_key: !vault |\n" in inventory.read_text(encoding="utf-8")


def test_comments_survive_an_edit(tmp_path: Path, inventory: Path) -> None:
    result = edit(
        tmp_path,
        inventory,
        [
            ("    # the TLS key, PEM\n", "    # the TLS key, PEM (rotated yearly)\n"),
            (f'"{TOKEN}"', '"tok-2"'),
        ],
    )
    assert result.exit_code == 0, result.output
    text = inventory.read_text(encoding="utf-8")
    assert text.startswith("# prod fleet: keep this comment\nall:\n")
    assert "    region: eu  # where the fleet is\n" in text
    assert "    # the TLS key, PEM (rotated yearly)\n" in text
    assert "vault edit" not in text  # the view's note is not saved


@pytest.mark.parametrize(
    ("edits", "status", "code", "says"),
    [
        (
            [(f'"{API_KEY}"', '"sk-changed"')],
            3,
            1,
            "the editor exited with status 3; nothing changed",
        ),
        (
            [("  hosts:\n", "  hosts: [unclosed\n")],
            0,
            2,
            "the edited text: line 16: not valid YAML: expected ',' or ']', but got ':'; "
            "nothing changed",
        ),
        (
            [("  hosts:\n", "    more: {a: !vault-plain x}\n  hosts:\n")],
            0,
            2,
            "the edited text: line 15: a !vault-plain value is inside a flow collection ([...] "
            "or {...}); write that collection as a block to keep a vault value in it; "
            "nothing changed",
        ),
        (
            [("  hosts:\n", "    more: !vault-plain [a, b]\n  hosts:\n")],
            0,
            2,
            "the edited text: line 15: a !vault-plain value must be a string, not a list or "
            "a mapping; nothing changed",
        ),
    ],
    ids=["editor-fails", "invalid-yaml", "flow-collection", "not-a-string"],
)
def test_a_failed_edit_leaves_the_file_byte_identical(
    tmp_path: Path,
    inventory: Path,
    edits: list[tuple[str, str]],
    status: int,
    code: int,
    says: str,
) -> None:
    before, stat_before = inventory.read_bytes(), inventory.stat()
    result = edit(tmp_path, inventory, edits, status=status)
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert result.stderr == f"Error: {inventory}: {says}\n"
    assert inventory.read_bytes() == before
    assert inventory.stat().st_mtime_ns == stat_before.st_mtime_ns
    assert sorted(p.name for p in inventory.parent.iterdir()) == [
        "editor.py",
        "prod.yml",
        "seen.yml",
        "seen.yml.where",
    ]  # no temporary file left beside it


def test_no_change_leaves_the_file_untouched(tmp_path: Path, inventory: Path) -> None:
    before = inventory.stat()
    os.utime(inventory, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
    stamp = inventory.stat().st_mtime_ns
    result = edit(tmp_path, inventory, [(f'"{TOKEN}"', '"other"'), ('"other"', f'"{TOKEN}"')])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{inventory}: unchanged\n"
    assert inventory.stat().st_mtime_ns == stamp


def test_a_wrong_password_opens_no_editor(tmp_path: Path, inventory: Path) -> None:
    before = inventory.read_bytes()
    script = tmp_path / "editor.py"
    script.write_text(EDITOR, encoding="utf-8")
    env = {
        "EDITOR": f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}",
        PASSWORD_ENV: "wrong",
    }
    result = CliRunner().invoke(vault, ["edit", str(inventory)], env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {inventory}: line 5: cannot decrypt vault value "
        "(wrong password or tampered data)\n"
    )
    assert inventory.read_bytes() == before
    assert not (tmp_path / "seen.yml").exists()


def test_the_docs_show_the_view_s_note_as_it_is() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "vault.md").read_text(encoding="utf-8")
    assert "\n".join(BANNER) + "\n" in doc
