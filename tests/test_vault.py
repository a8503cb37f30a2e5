"""The vault library: the text format, AES-GCM with scrypt, inline values, passwords."""

from __future__ import annotations

import base64
import io
import string
import sys
from pathlib import Path

import pytest
import yaml

from ollama_fleet import vault
from ollama_fleet.errors import ConfigError
from ollama_fleet.vault import (
    HEADER,
    NEW_PASSWORD_ENV,
    PASSWORD_ENV,
    PasswordSource,
    VaultError,
    VaultPassword,
    decrypt_bytes,
    decrypt_text,
    encrypt_bytes,
    encrypt_text,
    encrypt_value,
    find_vault_values,
    holds_vault_data,
    is_encrypted,
    read_password,
    rekey_text,
    reveal_text,
)

REAL_SCRYPT_N = vault.SCRYPT_N  # read before the fixture below lowers it
PASSWORD = VaultPassword("correct horse battery staple")
OTHER = VaultPassword("Tr0ub4dor&3")
SECRET = "sk-live-5f0c2b9e7d1a"
BASE64 = set(string.ascii_letters + string.digits + "+/=")


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at n=2**10 (about 10 ms); test_real_cost_* use the real cost."""
    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)


def decrypt_error(vaulttext: str, password: VaultPassword = PASSWORD) -> str:
    """The one-line message of the VaultError decrypting `vaulttext` raises; leaks nothing."""
    with pytest.raises(VaultError) as info:
        decrypt_bytes(vaulttext, password, where="inventories/prod.yml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("inventories/prod.yml: ")
    assert PASSWORD.secret not in message
    assert SECRET not in message
    return message


def reseal(vaulttext: str, change: int) -> str:
    """`vaulttext` with byte `change` of its decoded salt|nonce|ciphertext|tag flipped."""
    header, *lines = vaulttext.splitlines()
    raw = bytearray(base64.b64decode("".join(lines)))
    raw[change] ^= 0x01
    body = base64.b64encode(bytes(raw)).decode()
    return header + "\n" + body + "\n"


# -- format and round trips ----------------------------------------------------------------


def test_text_round_trip_and_format() -> None:
    plaintext = "all:\n  vars:\n    api_key: " + SECRET + "\n    note: \u00e9t\u00e9 \u2713\n" * 5
    vaulttext = encrypt_text(plaintext, PASSWORD)

    lines = vaulttext.splitlines()
    assert lines[0] == HEADER == "$OLLAMA_FLEET_VAULT;1;AES256-GCM;SCRYPT"
    assert len(lines) > 2
    assert all(len(line) == 76 for line in lines[1:-1])
    assert 0 < len(lines[-1]) <= 76
    assert all(set(line) <= BASE64 for line in lines[1:])
    assert vaulttext.endswith("\n")
    assert SECRET not in vaulttext
    raw = base64.b64decode("".join(lines[1:]))
    assert len(raw) == 16 + 12 + len(plaintext.encode()) + 16  # salt nonce ciphertext tag
    assert decrypt_text(vaulttext, PASSWORD, where="x") == plaintext


def test_every_encryption_uses_a_new_salt_and_nonce() -> None:
    first, second = encrypt_text(SECRET, PASSWORD), encrypt_text(SECRET, PASSWORD)
    assert first != second
    raw_first = base64.b64decode("".join(first.splitlines()[1:]))
    raw_second = base64.b64decode("".join(second.splitlines()[1:]))
    assert raw_first[:16] != raw_second[:16]
    assert raw_first[16:28] != raw_second[16:28]
    assert decrypt_text(first, PASSWORD, where="x") == decrypt_text(second, PASSWORD, where="x")


def test_bytes_round_trip_keeps_binary_data() -> None:
    data = bytes(range(256)) * 3
    assert decrypt_bytes(encrypt_bytes(data, PASSWORD), PASSWORD, where="x") == data


def test_empty_plaintext_round_trips() -> None:
    assert decrypt_text(encrypt_text("", PASSWORD), PASSWORD, where="x") == ""


def test_decrypt_text_refuses_a_plaintext_that_is_not_utf8() -> None:
    vaulttext = encrypt_bytes(b"\xff\xfe not text", PASSWORD)
    with pytest.raises(VaultError, match=r"^key\.bin: the decrypted vault file is not UTF-8"):
        decrypt_text(vaulttext, PASSWORD, where="key.bin", what="vault file")


def test_surrounding_whitespace_and_crlf_are_tolerated() -> None:
    vaulttext = encrypt_text(SECRET, PASSWORD).replace("\n", "\r\n")
    assert decrypt_text("\n  " + vaulttext + "\n\n", PASSWORD, where="x") == SECRET


def test_real_cost_round_trip_and_the_cost_is_part_of_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert REAL_SCRYPT_N == 2**15
    monkeypatch.setattr(vault, "SCRYPT_N", REAL_SCRYPT_N)
    vaulttext = encrypt_text(SECRET, PASSWORD)
    assert decrypt_text(vaulttext, PASSWORD, where="x") == SECRET

    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)
    assert "wrong password" in decrypt_error(vaulttext)


# -- what cannot be decrypted --------------------------------------------------------------


def test_wrong_password_is_a_config_error_naming_where() -> None:
    vaulttext = encrypt_text(SECRET, PASSWORD)
    with pytest.raises(ConfigError) as info:
        decrypt_text(vaulttext, OTHER, where="inventories/prod.yml: line 12", what="vault value")
    assert isinstance(info.value, VaultError)
    assert str(info.value) == (
        "inventories/prod.yml: line 12: cannot decrypt vault value "
        "(wrong password or tampered data)"
    )
    assert OTHER.secret not in str(info.value)


@pytest.mark.parametrize(
    ("part", "index"),
    [("salt", 0), ("salt", 15), ("nonce", 16), ("nonce", 27), ("ciphertext", 28), ("tag", -1)],
)
def test_one_flipped_byte_is_detected(part: str, index: int) -> None:
    vaulttext = encrypt_text(SECRET * 3, PASSWORD)
    assert decrypt_text(vaulttext, PASSWORD, where="x") == SECRET * 3
    message = decrypt_error(reseal(vaulttext, index))
    assert message == (
        "inventories/prod.yml: cannot decrypt vault data (wrong password or tampered data)"
    ), part


def test_one_flipped_character_of_the_text_is_detected() -> None:
    vaulttext = encrypt_text(SECRET, PASSWORD)
    lines = vaulttext.splitlines()
    line = lines[1]
    lines[1] = line[:10] + ("A" if line[10] != "A" else "B") + line[11:]
    assert "tampered data" in decrypt_error("\n".join(lines))


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("$OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT", "unsupported vault format"),
        ("$OLLAMA_FLEET_VAULT;1;AES128-GCM;SCRYPT", "unsupported vault format"),
        ("$OLLAMA_FLEET_VAULT;1;AES256-GCM;PBKDF2", "unsupported vault format"),
        ("$OLLAMA_FLEET_VAULX;1;AES256-GCM;SCRYPT", "does not start with the vault header"),
        ("", "does not start with the vault header"),
    ],
)
def test_altered_header_is_refused(header: str, says: str) -> None:
    body = encrypt_text(SECRET, PASSWORD).split("\n", 1)[1]
    assert says in decrypt_error(f"{header}\n{body}")


def test_the_header_is_authenticated(monkeypatch: pytest.MonkeyPatch) -> None:
    # sealed under another header, then given the one this version reads: the tag must fail
    monkeypatch.setattr(vault, "HEADER", "$OLLAMA_FLEET_VAULT;9;AES256-GCM;SCRYPT")
    body = encrypt_text(SECRET, PASSWORD).split("\n", 1)[1]
    monkeypatch.setattr(vault, "HEADER", HEADER)
    assert "tampered data" in decrypt_error(f"{HEADER}\n{body}")


def test_truncated_texts_are_refused() -> None:
    vaulttext = encrypt_text(SECRET * 10, PASSWORD)
    lines = vaulttext.splitlines()
    assert len(lines) > 2

    assert "tampered data" in decrypt_error("\n".join(lines[:-1]))  # a whole line lost
    assert "corrupt" in decrypt_error(vaulttext.rstrip("\n")[:-3])  # not base64 any more
    assert decrypt_error(HEADER) == "inventories/prod.yml: vault data is corrupt (truncated)"
    assert "truncated" in decrypt_error(HEADER + "\n" + lines[1][:40])


def test_is_encrypted() -> None:
    vaulttext = encrypt_text(SECRET, PASSWORD)
    assert is_encrypted(vaulttext)
    assert is_encrypted("\n  " + vaulttext)
    assert not is_encrypted("all:\n  hosts:\n")
    assert not is_encrypted(encrypt_value("api_key", SECRET, PASSWORD))
    assert not is_encrypted("")


# -- passwords -----------------------------------------------------------------------------


def test_password_repr_hides_the_secret() -> None:
    assert PASSWORD.secret not in repr(PASSWORD)
    assert PASSWORD.secret not in str(PASSWORD)
    assert repr(PASSWORD) == "VaultPassword()"


def test_empty_password_is_refused() -> None:
    with pytest.raises(VaultError, match="empty vault password"):
        VaultPassword("")


@pytest.mark.parametrize(
    ("content", "secret"),
    [
        (b"hunter2\n", "hunter2"),
        (b"hunter2", "hunter2"),
        (b"hunter2\r\n", "hunter2"),
        (b"hunter2\n\n", "hunter2\n"),  # one newline only
        (b" spaced pass \n", " spaced pass "),
        ("p\u00e4ss\n".encode(), "p\u00e4ss"),
    ],
)
def test_password_file_loses_one_trailing_newline(
    tmp_path: Path, content: bytes, secret: str
) -> None:
    path = tmp_path / "vault-pass"
    path.write_bytes(content)
    assert read_password(PasswordSource(file=path), environ={}) == VaultPassword(secret)


def test_password_file_and_env_give_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "vault-pass"
    path.write_text("hunter2\n", encoding="utf-8")
    from_file = read_password(PasswordSource(file=path), environ={})
    from_env = read_password(PasswordSource(), environ={PASSWORD_ENV: "hunter2"})
    vaulttext = encrypt_text(SECRET, from_file)
    assert decrypt_text(vaulttext, from_env, where="x") == SECRET


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n"])
def test_empty_password_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vault-pass"
    path.write_bytes(content)
    with pytest.raises(VaultError, match=r"vault-pass: the vault password file is empty$"):
        read_password(PasswordSource(file=path), environ={PASSWORD_ENV: "not used"})


def test_missing_and_unreadable_password_files(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match=r"nope: no such vault password file$"):
        read_password(PasswordSource(file=tmp_path / "nope"))
    with pytest.raises(VaultError, match="cannot read the vault password file"):
        read_password(PasswordSource(file=tmp_path))  # a directory
    latin1 = tmp_path / "latin1"
    latin1.write_bytes(b"p\xe4ss\n")
    with pytest.raises(VaultError, match="not UTF-8"):
        read_password(PasswordSource(file=latin1))


def test_the_file_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "vault-pass"
    path.write_text("from-file\n", encoding="utf-8")
    source = PasswordSource(file=path)
    assert read_password(source, environ={PASSWORD_ENV: "from-env"}).secret == "from-file"


def test_environment_variables() -> None:
    environ = {PASSWORD_ENV: "old-one", NEW_PASSWORD_ENV: "new-one"}
    assert read_password(PasswordSource(), environ=environ).secret == "old-one"
    new = PasswordSource(env_var=NEW_PASSWORD_ENV, option="--new-vault-password-file")
    assert read_password(new, environ=environ).secret == "new-one"
    with pytest.raises(VaultError, match=f"environment variable {PASSWORD_ENV} is set but empty"):
        read_password(PasswordSource(), environ={PASSWORD_ENV: ""})


def test_without_a_terminal_the_error_says_how_to_give_a_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("typed-but-not-a-tty\n"))
    asked: list[str] = []
    monkeypatch.setattr(vault.getpass, "getpass", lambda prompt="": asked.append(prompt) or "x")
    with pytest.raises(VaultError) as info:
        read_password(PasswordSource(), environ={})
    assert str(info.value) == (
        "no vault password: give --vault-password-file FILE or set "
        "OLLAMA_FLEET_VAULT_PASSWORD (stdin is not a terminal, so it cannot be asked for)"
    )
    assert asked == []
    new = PasswordSource(option="--new-vault-password-file", env_var=NEW_PASSWORD_ENV)
    with pytest.raises(VaultError, match="--new-vault-password-file FILE or set OLLAMA_FLEET_NEW"):
        read_password(new, environ={})


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_at_a_terminal_the_password_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", FakeTerminal())
    asked: list[str] = []

    def getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return "typed-secret"

    monkeypatch.setattr(vault.getpass, "getpass", getpass)
    assert read_password(PasswordSource(), environ={}).secret == "typed-secret"
    assert asked == ["Vault password: "]


def test_a_confirmed_prompt_asks_twice_and_must_match() -> None:
    answers = iter(["first", "first"])
    source = PasswordSource(prompt="New vault password", confirm=True)
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    assert read_password(source, environ={}, ask=ask).secret == "first"
    assert prompts == ["New vault password: ", "New vault password (again): "]
    mismatch = iter(["first", "fisrt"])
    with pytest.raises(VaultError, match="do not match") as info:
        read_password(source, environ={}, ask=lambda _: next(mismatch))
    assert "first" not in str(info.value)
    with pytest.raises(VaultError, match="empty vault password"):
        read_password(source, environ={}, ask=lambda _: "")


# -- inline values -------------------------------------------------------------------------


def test_encrypt_value_is_a_block_to_paste() -> None:
    block = encrypt_value("api_key", SECRET, PASSWORD)
    lines = block.splitlines()
    assert lines[0] == "api_key: !vault |"
    assert lines[1] == "  " + HEADER
    assert all(line.startswith("  ") and len(line) <= 78 for line in lines[1:])
    assert block.endswith("\n")
    assert SECRET not in block

    pasted = "all:\n  vars:\n" + "".join(f"    {line}\n" for line in lines)
    (value,) = find_vault_values(pasted, where="inv.yml")
    assert value.line == 3
    assert decrypt_text(value.vaulttext, PASSWORD, where="x") == SECRET


@pytest.mark.parametrize("name", ["", "api-key", "1st", "a b", "key:"])
def test_encrypt_value_refuses_names_that_are_not_variables(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a variable name"):
        encrypt_value(name, SECRET, PASSWORD)


def inline_yaml(password: VaultPassword = PASSWORD) -> str:
    """A YAML file with comments, a CRLF-free layout and three !vault values."""
    key = encrypt_text(SECRET, password).splitlines()
    token = encrypt_text("token-22", password).splitlines()
    item = encrypt_text("in-a-list", password).splitlines()
    return (
        "# production fleet: keep this comment\n"
        "all:\n"
        "  vars:\n"
        "    region: eu   # trailing comment\n"
        "    api_key: !vault |  # rotated quarterly\n"
        + "".join(f"      {line}\n" for line in key)
        + "\n"
        "    # between the values\n"
        "    extra:\n"
        "      - plain\n"
        "      - !vault |\n" + "".join(f"        {line}\n" for line in item) + "  hosts:\n"
        "    gpu-1:\n"
        "      token: !vault |\n" + "".join(f"        {line}\n" for line in token)
    )


def test_find_vault_values_locates_each_block() -> None:
    text = inline_yaml()
    values = find_vault_values(text, where="inv.yml")
    assert [v.line for v in values] == [5, 13, 18]
    lines = text.splitlines()
    for value in values:
        assert "!vault |" in lines[value.line - 1]
        assert lines[value.first].strip() == HEADER
        assert lines[value.first].startswith(value.indent)
        block = [line.strip() for line in lines[value.first : value.stop]]
        assert block == value.vaulttext.rstrip("\n").split("\n")
    plaintexts = [decrypt_text(v.vaulttext, PASSWORD, where="x") for v in values]
    assert plaintexts == [SECRET, "in-a-list", "token-22"]


def test_yaml_without_vault_values() -> None:
    assert find_vault_values("all:\n  hosts:\n", where="x") == ()
    assert not holds_vault_data("all:\n  hosts:\n", where="x")
    assert holds_vault_data(inline_yaml(), where="x")
    assert holds_vault_data(encrypt_text(SECRET, PASSWORD), where="x")


@pytest.mark.parametrize(
    "text",
    [
        "all:\n  vars:\n    api_key: !vault '$OLLAMA_FLEET_VAULT;1'\n",
        "all:\n  vars:\n    api_key: !vault >\n      $OLLAMA_FLEET_VAULT;1\n",
        "all:\n  vars:\n    api_key: !vault [a, b]\n",
    ],
)
def test_a_vault_value_must_be_a_literal_block(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^inv\.yml: line 3: a !vault value must be a literal"):
        find_vault_values(text, where="inv.yml")


def test_invalid_yaml_with_vault_tags_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^inv\.yml: line 3: invalid YAML"):
        find_vault_values("a: !vault |\n  x\n b: c: d\n", where="inv.yml")


def test_rekey_inline_keeps_every_other_byte() -> None:
    text = inline_yaml()
    rekeyed = rekey_text(text, old=PASSWORD, new=OTHER, where="inv.yml")

    before, after = find_vault_values(text, where="x"), find_vault_values(rekeyed, where="x")
    assert [v.line for v in after] == [v.line for v in before]
    old_lines, new_lines = text.splitlines(keepends=True), rekeyed.splitlines(keepends=True)
    # outside the blocks (same length here: same plaintexts), every line is the same
    inside = {i for v in before for i in range(v.first, v.stop)}
    assert len(old_lines) == len(new_lines)
    for i, (old, new) in enumerate(zip(old_lines, new_lines, strict=True)):
        if i in inside:
            assert new != old or old.strip() == HEADER
            assert new.startswith(before[0].indent)
        else:
            assert new == old
    plaintexts = [decrypt_text(v.vaulttext, OTHER, where="x") for v in after]
    assert plaintexts == [SECRET, "in-a-list", "token-22"]
    for value in after:
        with pytest.raises(VaultError, match="wrong password"):
            decrypt_text(value.vaulttext, PASSWORD, where="x")


def test_rekey_keeps_crlf_and_a_missing_final_newline() -> None:
    block = encrypt_value("api_key", SECRET, PASSWORD).rstrip("\n")
    text = "# c\r\nall:\r\n  vars:\r\n" + "".join(f"    {line}\r\n" for line in block.split("\n"))
    text = text.removesuffix("\r\n")
    rekeyed = rekey_text(text, old=PASSWORD, new=OTHER, where="x")
    assert rekeyed.startswith("# c\r\nall:\r\n  vars:\r\n    api_key: !vault |\r\n")
    assert "\n" not in rekeyed.replace("\r\n", "")
    assert not rekeyed.endswith("\n")
    (value,) = find_vault_values(rekeyed, where="x")
    assert decrypt_text(value.vaulttext, OTHER, where="x") == SECRET


def test_rekey_whole_text() -> None:
    rekeyed = rekey_text(encrypt_text(SECRET, PASSWORD), old=PASSWORD, new=OTHER, where="x")
    assert decrypt_text(rekeyed, OTHER, where="x") == SECRET
    assert "wrong password" in decrypt_error(rekeyed, PASSWORD)


def test_rekey_with_a_wrong_old_password_names_the_value() -> None:
    text = inline_yaml()
    with pytest.raises(VaultError, match=r"^inv\.yml: line 18: cannot decrypt vault value"):
        rekey_text(text, old=OTHER, new=VaultPassword("third"), where="inv.yml")


def test_rekey_to_the_same_password_is_refused() -> None:
    with pytest.raises(VaultError, match="same as the old one"):
        rekey_text(inline_yaml(), old=PASSWORD, new=VaultPassword(PASSWORD.secret), where="x")


def test_reveal_inline_values_as_quoted_strings() -> None:
    text = inline_yaml()
    shown = reveal_text(text, PASSWORD, where="inv.yml")
    assert "!vault" not in shown
    assert "    api_key: " + f'"{SECRET}"\n' in shown
    assert "# production fleet: keep this comment\n" in shown
    assert yaml.safe_load(shown) == {
        "all": {
            "vars": {"region": "eu", "api_key": SECRET, "extra": ["plain", "in-a-list"]},
            "hosts": {"gpu-1": {"token": "token-22"}},
        }
    }


def test_reveal_quotes_awkward_values() -> None:
    awkward = 'multi\nline "quoted" # not a comment: \u00e9'
    text = "a: 1\n" + encrypt_value("b", awkward, PASSWORD)
    assert yaml.safe_load(reveal_text(text, PASSWORD, where="x")) == {"a": 1, "b": awkward}


def test_reveal_whole_text_and_plain_text() -> None:
    assert reveal_text(encrypt_text("a: 1\n", PASSWORD), PASSWORD, where="x") == "a: 1\n"
    assert reveal_text("a: 1\n", PASSWORD, where="x") == "a: 1\n"
