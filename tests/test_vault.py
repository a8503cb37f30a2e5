"""The vault library: the text format, its versions and known answers, scrypt's cost, inline
values, passwords."""

from __future__ import annotations

import base64
import io
import string
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ollama_fleet import vault
from ollama_fleet.errors import ConfigError
from ollama_fleet.vault import (
    NEW_PASSWORD_ENV,
    PASSWORD_ENV,
    V1_HEADER,
    PasswordSource,
    ScryptParams,
    VaultError,
    VaultPassword,
    decrypt_bytes,
    decrypt_text,
    default_params,
    encrypt_bytes,
    encrypt_text,
    encrypt_value,
    find_vault_values,
    holds_vault_data,
    is_encrypted,
    read_password,
    rekey_text,
    reveal_text,
    vault_header,
)

REAL_SCRYPT_N = vault.SCRYPT_N  # read before the fixture below lowers it
FAST_HEADER = "$OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT;N=1024,r=8,p=1"  # what the fixture gives
# Committed vault texts, made once: v1 by the code before format 2 (n=2**15, no cost in its
# header), v2 at the default cost. Their password and plaintexts are these.
KNOWN_ANSWERS = Path(__file__).parent / "data" / "vault"
KNOWN_PASSWORD = VaultPassword("known-answer: correct horse battery staple")
KNOWN_V1 = "api_key: sk-known-answer-v1-7f3a\nnote: \u00e9t\u00e9 \u2713\n"
KNOWN_V2 = "api_key: sk-known-answer-v2-0c9e\nnote: \u00e9t\u00e9 \u2713\n"
PASSWORD = VaultPassword("correct horse battery staple")
OTHER = VaultPassword("Tr0ub4dor&3")
SECRET = "sk-live-5f0c2b9e7d1a"
BASE64 = set(string.ascii_letters + string.digits + "+/=")


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """New texts at n=2**10 (about 1 ms); the known answers and the default cost's test
    derive at the real cost, which the header names."""
    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The n of every scrypt derivation run, with the key cache empty before and after."""
    seen: list[int] = []

    def counting(*, salt: bytes, length: int, n: int, r: int, p: int) -> Scrypt:
        seen.append(n)
        return Scrypt(salt=salt, length=length, n=n, r=r, p=p)

    monkeypatch.setattr(vault, "Scrypt", counting)
    vault._scrypt.cache_clear()
    yield seen
    vault._scrypt.cache_clear()


def known_answer(version: int) -> str:
    return (KNOWN_ANSWERS / f"known-answer-v{version}.txt").read_text(encoding="ascii")


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
    assert lines[0] == vault_header(default_params()) == FAST_HEADER
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


# -- versions, cost and known answers ------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "header", "plaintext"),
    [
        pytest.param(1, V1_HEADER, KNOWN_V1, id="v1"),
        pytest.param(
            2, "$OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT;N=131072,r=8,p=1", KNOWN_V2, id="v2"
        ),
    ],
)
def test_committed_known_answers_decrypt(
    version: int, header: str, plaintext: str, derivations: list[int]
) -> None:
    # at the header's cost, whatever SCRYPT_N is now (the fixture lowered it)
    vaulttext = known_answer(version)
    assert vaulttext.splitlines()[0] == header
    assert decrypt_text(vaulttext, KNOWN_PASSWORD, where="x") == plaintext
    assert derivations == [2**15 if version == 1 else 2**17]
    assert "wrong password" in decrypt_error(vaulttext, OTHER)


def test_the_default_cost_is_owasps_minimum_and_works(
    monkeypatch: pytest.MonkeyPatch, derivations: list[int]
) -> None:
    assert (REAL_SCRYPT_N, vault.SCRYPT_R, vault.SCRYPT_P) == (2**17, 8, 1)  # 128 MiB
    monkeypatch.setattr(vault, "SCRYPT_N", REAL_SCRYPT_N)
    vaulttext = encrypt_text(SECRET, PASSWORD)
    assert vaulttext.startswith("$OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT;N=131072,r=8,p=1\n")
    vault._scrypt.cache_clear()
    monkeypatch.setattr(vault, "SCRYPT_N", 2**10)  # decryption does not depend on it
    assert decrypt_text(vaulttext, PASSWORD, where="x") == SECRET
    assert derivations == [2**17, 2**17]


def test_the_cost_in_the_header_is_authenticated() -> None:
    vaulttext = encrypt_text(SECRET, PASSWORD)
    cheaper = vaulttext.replace("N=1024,", "N=512,", 1)
    assert "tampered data" in decrypt_error(cheaper)


def test_a_downgrade_to_version_1_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    # sealed at version 1's cost, so only the header (the associated data) differs
    monkeypatch.setattr(vault, "SCRYPT_N", 2**15)
    body = encrypt_text(SECRET, PASSWORD).split("\n", 1)[1]
    assert "tampered data" in decrypt_error(f"{V1_HEADER}\n{body}")


def test_rekey_turns_version_1_into_version_2_at_the_current_cost() -> None:
    rekeyed = rekey_text(known_answer(1), old=KNOWN_PASSWORD, new=OTHER, where="x")
    assert rekeyed.splitlines()[0] == FAST_HEADER
    assert decrypt_text(rekeyed, OTHER, where="x") == KNOWN_V1


def test_rekeyed_values_share_one_salt_and_cost_one_derivation(derivations: list[int]) -> None:
    v1_value = "".join(f"    {line}\n" for line in known_answer(1).splitlines())
    text = "a: !vault |\n" + v1_value + inline_yaml(KNOWN_PASSWORD)
    assert len(find_vault_values(text, where="x")) == 4
    vault._scrypt.cache_clear()
    derivations.clear()
    rekeyed = rekey_text(text, old=KNOWN_PASSWORD, new=OTHER, where="x")
    assert sorted(derivations) == [2**10] * 4 + [2**15]  # each old salt once, the new one once

    values = find_vault_values(rekeyed, where="x")
    assert {v.vaulttext.split("\n")[0] for v in values} == {FAST_HEADER}
    raws = [base64.b64decode("".join(v.vaulttext.split("\n")[1:])) for v in values]
    assert len({raw[:16] for raw in raws}) == 1  # one salt
    assert len({raw[16:28] for raw in raws}) == 4  # a nonce each
    vault._scrypt.cache_clear()
    derivations.clear()
    plaintexts = [decrypt_text(v.vaulttext, OTHER, where="x") for v in values]
    assert plaintexts == [KNOWN_V1, SECRET, "in-a-list", "token-22"]
    assert derivations == [2**10]


def test_a_key_is_derived_once_per_password_salt_and_cost(derivations: list[int]) -> None:
    vaulttext = encrypt_text(SECRET, PASSWORD)
    for _ in range(3):
        assert decrypt_text(vaulttext, PASSWORD, where="x") == SECRET
    assert "wrong password" in decrypt_error(vaulttext, OTHER)
    assert derivations == [2**10, 2**10]  # encrypting, then the other password


@pytest.mark.parametrize(
    ("cost", "says"),
    [
        ("N=1000,r=8,p=1", "N is not a power of two"),
        ("N=1,r=8,p=1", "N is not a power of two"),
        ("N=65536,r=1,p=1", "N must be below 2^(16*r)"),
        ("N=2097152,r=8,p=1", "it needs 2048 MiB, above 1024 MiB"),
        ("N=4194304,r=8,p=1", "it needs 4096 MiB, above 1024 MiB"),
        ("N=131072,r=8,p=64", "N*r*p is above 2^24"),
        ("N=1024,r=1,p=99999", "N*r*p is above 2^24"),
    ],
)
def test_a_cost_beyond_the_limits_is_refused_before_deriving(
    cost: str, says: str, derivations: list[int]
) -> None:
    body = encrypt_text(SECRET, PASSWORD).split("\n", 1)[1]
    message = decrypt_error(f"$OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT;{cost}\n{body}")
    assert message == f"inventories/prod.yml: vault data asks for scrypt {cost}, refused: {says}"
    assert derivations == [2**10]  # only the encryption's


@pytest.mark.parametrize(
    "cost",
    [
        "",
        "N=1024",
        "N=1024,r=8",
        "n=1024,r=8,p=1",
        "N=01024,r=8,p=1",
        "N=1024, r=8,p=1",
        "N=2^10,r=8,p=1",
        "N=1024,r=8,p=1,",
        "N=99999999999,r=8,p=1",
    ],
)
def test_malformed_cost_is_refused(cost: str) -> None:
    body = encrypt_text(SECRET, PASSWORD).split("\n", 1)[1]
    message = decrypt_error(f"$OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT;{cost}\n{body}")
    assert message == (
        f"inventories/prod.yml: vault data has malformed scrypt parameters {cost!r} "
        "(expected N=...,r=...,p=...)"
    )


def test_a_cost_beyond_the_limits_is_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault, "SCRYPT_N", 1000)
    with pytest.raises(VaultError, match=r"^cannot encrypt with scrypt N=1000,r=8,p=1: N is not"):
        encrypt_text(SECRET, PASSWORD)
    assert ScryptParams(n=2**20, r=8, p=1).problem() is None  # room to raise the default


def test_not_enough_memory_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    vaulttext = encrypt_text(SECRET, PASSWORD)

    def no_memory(secret: str, salt: bytes, params: ScryptParams) -> bytes:
        raise MemoryError

    monkeypatch.setattr(vault, "_scrypt", no_memory)
    assert decrypt_error(vaulttext) == (
        "inventories/prod.yml: not enough memory to derive the key of vault data "
        "(scrypt N=1024,r=8,p=1 needs 1 MiB)"
    )


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
        ("$OLLAMA_FLEET_VAULT;2;AES128-GCM;SCRYPT;N=1024,r=8,p=1", "unsupported vault format"),
        ("$OLLAMA_FLEET_VAULT;2;AES256-GCM;PBKDF2;N=1024,r=8,p=1", "unsupported vault format"),
        ("$OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT;N=1024,r=8,p=1;x", "unsupported vault format"),
        ("$OLLAMA_FLEET_VAULT;1;AES128-GCM;SCRYPT", "unsupported vault format"),
        ("$OLLAMA_FLEET_VAULT;1;AES256-GCM;SCRYPT;N=1024,r=8,p=1", "unsupported vault format"),
        ("$OLLAMA_FLEET_VAULX;2;AES256-GCM;SCRYPT", "does not start with a vault header"),
        ("", "does not start with a vault header"),
    ],
)
def test_altered_header_is_refused(header: str, says: str) -> None:
    body = encrypt_text(SECRET, PASSWORD).split("\n", 1)[1]
    assert says in decrypt_error(f"{header}\n{body}")


@pytest.mark.parametrize("version", ["3", "10", "", "two"])
def test_an_unknown_version_is_refused_by_name(version: str) -> None:
    body = encrypt_text(SECRET, PASSWORD).split("\n", 1)[1]
    header = f"$OLLAMA_FLEET_VAULT;{version};AES256-GCM;SCRYPT;N=1024,r=8,p=1"
    assert decrypt_error(f"{header}\n{body}") == (
        f"inventories/prod.yml: vault data has vault format version {version!r} "
        "(this reads 1 and 2)"
    )


def test_truncated_texts_are_refused() -> None:
    vaulttext = encrypt_text(SECRET * 10, PASSWORD)
    lines = vaulttext.splitlines()
    assert len(lines) > 2

    assert "tampered data" in decrypt_error("\n".join(lines[:-1]))  # a whole line lost
    assert "corrupt" in decrypt_error(vaulttext.rstrip("\n")[:-3])  # not base64 any more
    assert decrypt_error(lines[0]) == "inventories/prod.yml: vault data is corrupt (truncated)"
    assert "truncated" in decrypt_error(lines[0] + "\n" + lines[1][:40])


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
    assert lines[1] == "  " + FAST_HEADER
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
        assert lines[value.first].strip() == FAST_HEADER
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
            assert new != old or old.strip() == FAST_HEADER
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
    text = inline_yaml()  # its first value is at line 5, the last at 18
    with pytest.raises(VaultError, match=r"^inv\.yml: line 5: cannot decrypt vault value"):
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
