"""`ollama-fleet vault`: encrypt, decrypt, view, edit and rekey secrets from the command line.

A thin click layer over ollama_fleet.vault. Every write goes to a temporary file beside the
target and is renamed over it, so the original is whole until the new text is.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ollama_fleet.cli._common import CONTEXT, FleetGroup, vault_password_option
from ollama_fleet.errors import ConfigError, FleetError, ToolMissingError
from ollama_fleet.vault import (
    MAGIC,
    NEW_PASSWORD_ENV,
    PasswordSource,
    check_variable_name,
    decrypt_bytes,
    encrypt_bytes,
    encrypt_value,
    find_vault_values,
    holds_vault_data,
    is_encrypted,
    read_password,
    rekey_text,
    reveal_text,
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USAGE = 2


FILE_ARGUMENT = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))


@click.group(cls=FleetGroup, context_settings=CONTEXT)
def vault() -> None:
    """Encrypt secrets: whole files, or single values inside an inventory.

    \b
    Encrypt a file:       ollama-fleet vault encrypt group_secrets.yml
    A value to paste:     printf %s "$KEY" | ollama-fleet vault encrypt-string api_key
    Read a file:          ollama-fleet vault view inventories/prod.yml
    Change the password:  ollama-fleet vault rekey inventories/prod.yml

    AES-256-GCM with a key derived by scrypt from the password, at the cost each vault
    text's header names (new texts: N=131072, r=8, p=1). The password comes from
    --vault-password-file FILE, else $OLLAMA_FLEET_VAULT_PASSWORD, else a prompt (only when
    stdin is a terminal). See docs/vault.md.
    """


@vault.command()
@FILE_ARGUMENT
@vault_password_option
def encrypt(file: Path, vault_password_file: Path | None) -> None:
    """Encrypt FILE as a whole, in place.

    FILE is replaced atomically by its vault text; its permissions are kept. A file that is
    already encrypted, or that holds !vault values, is refused and left as it is. At a
    prompt, the password is asked twice.
    """
    data = _read_bytes(file)
    if is_encrypted(data.decode("latin-1")):
        raise ConfigError(f"{file}: already vault-encrypted; left as it is")
    _refuse_inline_values(file, data)
    password = read_password(PasswordSource(file=vault_password_file, confirm=True))
    _write_atomically(file, encrypt_bytes(data, password).encode("ascii"))
    click.echo(f"{file}: encrypted", err=True)


@vault.command()
@FILE_ARGUMENT
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the plaintext to OUTPUT instead of back to FILE; `-` for stdout. A new "
    "OUTPUT gets mode 0600.",
)
@vault_password_option
def decrypt(file: Path, output: Path | None, vault_password_file: Path | None) -> None:
    """Decrypt the vault-encrypted FILE, in place or to --output.

    The write is atomic: on a wrong password or tampered data nothing is written and FILE
    stays encrypted.
    """
    text = _read_vault_file(file)
    password = read_password(PasswordSource(file=vault_password_file))
    plaintext = decrypt_bytes(text, password, where=str(file), what="vault file")
    if output is not None and str(output) == "-":
        click.echo(plaintext, nl=False)  # bytes go to stdout's binary stream as they are
        return
    target = output or file
    _write_atomically(target, plaintext, private=True)
    click.echo(
        f"{target}: decrypted" if target == file else f"{file}: decrypted to {target}", err=True
    )


@vault.command()
@FILE_ARGUMENT
@vault_password_option
def view(file: Path, vault_password_file: Path | None) -> None:
    """Print FILE decrypted, changing nothing on disk.

    A vault-encrypted FILE prints as its plaintext; a YAML FILE with !vault values prints as
    it is, with each value shown as a quoted string in place of its encrypted block. A file
    without vault data prints unchanged, and no password is asked for.
    """
    text = _read_text(file)
    if holds_vault_data(text, where=str(file)):
        text = reveal_text(
            text, read_password(PasswordSource(file=vault_password_file)), where=str(file)
        )
    click.echo(text, nl=False)


@vault.command()
@FILE_ARGUMENT
@vault_password_option
def edit(file: Path, vault_password_file: Path | None) -> None:
    """Edit the vault-encrypted FILE in $VISUAL or $EDITOR (default vi).

    FILE is decrypted into a private temporary directory (mode 0700), the editor runs on
    it, and FILE is re-encrypted with the same password (at the current scrypt cost) only
    if the text changed. The temporary file is removed afterwards, even when the editor
    fails. A FILE that does not exist is created, encrypted, from what you write (the
    password is asked twice).
    """
    existed = file.exists()
    if existed:
        text = _read_vault_file(file)
        password = read_password(PasswordSource(file=vault_password_file))
        before = decrypt_bytes(text, password, where=str(file), what="vault file")
    else:
        password = read_password(PasswordSource(file=vault_password_file, confirm=True))
        before = b""
    after = _run_editor(file, before)
    if after == before:
        click.echo(f"{file}: unchanged" if existed else f"{file}: empty, not created", err=True)
        return
    _write_atomically(file, encrypt_bytes(after, password).encode("ascii"))
    click.echo(f"{file}: {'saved' if existed else 'created'}, encrypted", err=True)


@vault.command()
@FILE_ARGUMENT
@vault_password_option
@click.option(
    "--new-vault-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the new password from FILE. Without it: ${NEW_PASSWORD_ENV}, else a "
    "prompt (asked twice) when stdin is a terminal.",
)
def rekey(
    file: Path, vault_password_file: Path | None, new_vault_password_file: Path | None
) -> None:
    """Re-encrypt the vault data of FILE with a new password.

    Works on a vault-encrypted FILE and on a YAML FILE with !vault values: each value's
    block is replaced by its new vault text, and every other byte (comments, order,
    spacing) stays as it was. Every value must open with the old password, or nothing
    is written. Afterwards the old password no longer opens FILE. The new vault texts get
    the current scrypt cost (format 2, even from a format 1 FILE) and one salt for the file.
    """
    text = _read_text(file)
    if not holds_vault_data(text, where=str(file)):
        raise ConfigError(f"{file}: holds no vault data (neither encrypted nor !vault values)")
    old = read_password(PasswordSource(file=vault_password_file))
    new = read_password(
        PasswordSource(
            file=new_vault_password_file,
            option="--new-vault-password-file",
            env_var=NEW_PASSWORD_ENV,
            prompt="New vault password",
            confirm=True,
        )
    )
    _write_atomically(file, rekey_text(text, old=old, new=new, where=str(file)).encode("utf-8"))
    click.echo(f"{file}: rekeyed", err=True)


@vault.command("encrypt-string")
@click.argument("name")
@vault_password_option
def encrypt_string(name: str, vault_password_file: Path | None) -> None:
    """Print a `NAME: !vault |` block to paste into an inventory's vars.

    The value is read from stdin (one trailing newline is dropped), or at a terminal from
    a hidden prompt, asked twice. It is never taken from the command line, where shell
    history and `ps` would keep it.

    \b
    printf %s "$OLLAMA_API_KEY" | ollama-fleet vault encrypt-string api_key
    """
    check_variable_name(name)
    if sys.stdin.isatty():
        value = click.prompt(
            f"Value of {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    else:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not value:
        raise ConfigError(f"encrypt-string {name}: the value is empty (give it on stdin)")
    password = read_password(PasswordSource(file=vault_password_file, confirm=True))
    click.echo(encrypt_value(name, value, password), nl=False)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _read_text(path: Path) -> str:
    """The text of `path` exactly: no newline translation, so a rewrite keeps every byte."""
    try:
        return _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def _read_vault_file(path: Path) -> str:
    text = _read_bytes(path).decode("latin-1")
    if not is_encrypted(text):
        raise ConfigError(
            f"{path}: not a vault-encrypted file (no {MAGIC} header); for !vault values "
            "inside a YAML file, use `ollama-fleet vault view`"
        )
    return text


def _refuse_inline_values(path: Path, data: bytes) -> None:
    """Values encrypted inside an encrypted file would need two passwords changed at rekey."""
    try:
        values = find_vault_values(data.decode("utf-8"), where=str(path))
    except (UnicodeDecodeError, ConfigError):
        return  # not YAML text: it cannot hold !vault values
    if values:
        raise ConfigError(
            f"{path}: line {values[0].line}: holds a !vault value; encrypt single values "
            "or the whole file, not both"
        )


def _write_atomically(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write a temporary file beside `path` and rename it over `path`, keeping its mode.

    `private` (plaintext secrets) also takes away every permission of group and others.
    """
    path = path.resolve()  # through a symlink, replace the file, not the link
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
    if private:
        mode &= 0o600
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
        raise


def _run_editor(file: Path, text: bytes) -> bytes:
    """What the user saved after editing `text` in their editor, from a private directory."""
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "") or ["vi"]
    workdir = Path(tempfile.mkdtemp(prefix="ollama-fleet-vault-"))  # mode 0700
    try:
        draft = workdir / file.name
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(text)
        try:
            status = subprocess.run([*editor, str(draft)], check=False).returncode
        except OSError as exc:
            raise ToolMissingError(
                f"{file}: cannot run the editor {editor[0]!r} ({exc.strerror}); set VISUAL "
                "or EDITOR; nothing changed"
            ) from None
        if status != 0:
            raise FleetError(f"{file}: the editor exited with status {status}; nothing changed")
        try:
            return draft.read_bytes()
        except FileNotFoundError:
            raise FleetError(f"{file}: the editor removed the file; nothing changed") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
