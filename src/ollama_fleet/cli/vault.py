"""`ollama-fleet vault`: encrypt, decrypt, view, edit and rekey secrets from the command line.

A thin click layer over ollama_fleet.vault, imported inside each command so that
`ollama-fleet --help` does not load cryptography. Every write is atomic (fsutil.atomic_write):
the original is whole until the new text is.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ollama_fleet.cli._common import CONTEXT, FleetGroup, vault_password_option
from ollama_fleet.errors import ConfigError, FleetError, ToolMissingError

if TYPE_CHECKING:
    from ollama_fleet.vault import PasswordSource, VaultPassword

# == vault.NEW_PASSWORD_ENV (a test says so), not imported just to build --help
NEW_PASSWORD_ENV = "OLLAMA_FLEET_NEW_VAULT_PASSWORD"
FILE_ARGUMENT = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))


@click.group(cls=FleetGroup, context_settings=CONTEXT)
def vault() -> None:
    """Encrypt secrets: whole files, or single values inside an inventory.

    \b
    Encrypt a file:       ollama-fleet vault encrypt group_secrets.yml
    A value to paste:     printf %s "$KEY" | ollama-fleet vault encrypt-string api_key
    Read a file:          ollama-fleet vault view inventories/prod.yml
    Edit its secrets:     ollama-fleet vault edit inventories/prod.yml
    Change the password:  ollama-fleet vault rekey inventories/prod.yml

    AES-256-GCM with a key derived by scrypt from the password, at the cost each vault
    text's header names (new texts: N=131072, r=8, p=1). The password comes from
    --vault-password-file FILE (run, if it is executable), else
    $OLLAMA_FLEET_VAULT_PASSWORD, else a prompt (only when stdin is a terminal). See
    docs/vault.md.
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
    from ollama_fleet.fsutil import atomic_write
    from ollama_fleet.vault import PasswordSource, encrypt_bytes, is_encrypted

    data = _read_bytes(file)
    if is_encrypted(data.decode("latin-1")):
        raise ConfigError(f"{file}: already vault-encrypted; left as it is")
    _refuse_inline_values(file, data)
    password = _password(PasswordSource(file=vault_password_file, confirm=True))
    atomic_write(file, encrypt_bytes(data, password), what="vault file")
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
    from ollama_fleet.fsutil import atomic_write
    from ollama_fleet.vault import PasswordSource, decrypt_bytes

    text = _read_vault_file(file)
    password = _password(PasswordSource(file=vault_password_file))
    plaintext = decrypt_bytes(text, password, where=str(file), what="vault file")
    if output is not None and str(output) == "-":
        click.echo(plaintext, nl=False)  # bytes go to stdout's binary stream as they are
        return
    target = output or file
    atomic_write(target, plaintext, private=True, what="decrypted file")
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
    from ollama_fleet.vault import PasswordSource, holds_vault_data, reveal_text

    text = _read_text(file)
    if holds_vault_data(text, where=str(file)):
        password = _password(PasswordSource(file=vault_password_file))
        text = reveal_text(text, password, where=str(file))
    click.echo(text, nl=False)


@vault.command()
@FILE_ARGUMENT
@vault_password_option
def edit(file: Path, vault_password_file: Path | None) -> None:
    """Edit FILE's secrets in $VISUAL or $EDITOR (default vi).

    \b
    A vault-encrypted FILE: you edit its plaintext.
    A YAML FILE with !vault values: you edit the file with each value decrypted and
    tagged !vault-plain. On save, a value you changed is encrypted again, one you did
    not change keeps its exact vault text (a diff shows only what changed), a new value
    you tag !vault-plain is encrypted, and the rest stays as you wrote it.

    The decrypted text lives only in a private temporary directory (mode 0700), removed
    afterwards, even when the editor fails. FILE is written (with the same password, at
    the current scrypt cost) only if something changed; a failing editor or invalid YAML
    writes nothing. A FILE that does not exist is created, encrypted, from what you
    write (the password is asked twice).
    """
    from ollama_fleet.vault import PasswordSource, is_encrypted

    if not file.exists():
        _edit_new_file(file, _password(PasswordSource(file=vault_password_file, confirm=True)))
    elif is_encrypted(_read_bytes(file).decode("latin-1")):
        _edit_whole_file(file, vault_password_file)
    else:
        _edit_inline_values(file, vault_password_file)


@vault.command()
@FILE_ARGUMENT
@vault_password_option
@click.option(
    "--new-vault-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the new password from FILE (run, if it is executable). Without it: "
    f"${NEW_PASSWORD_ENV}, else a prompt (asked twice) when stdin is a terminal.",
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
    from ollama_fleet.fsutil import atomic_write
    from ollama_fleet.vault import PasswordSource, holds_vault_data, rekey_text

    text = _read_text(file)
    if not holds_vault_data(text, where=str(file)):
        raise ConfigError(f"{file}: holds no vault data (neither encrypted nor !vault values)")
    old = _password(PasswordSource(file=vault_password_file))
    new = _password(
        PasswordSource(
            file=new_vault_password_file,
            option="--new-vault-password-file",
            env_var=NEW_PASSWORD_ENV,
            prompt="New vault password",
            confirm=True,
        )
    )
    atomic_write(file, rekey_text(text, old=old, new=new, where=str(file)), what="vault file")
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
    from ollama_fleet.vault import PasswordSource, check_variable_name, encrypt_value

    check_variable_name(name)
    if sys.stdin.isatty():
        value = click.prompt(
            f"Value of {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    else:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not value:
        raise ConfigError(f"encrypt-string {name}: the value is empty (give it on stdin)")
    password = _password(PasswordSource(file=vault_password_file, confirm=True))
    click.echo(encrypt_value(name, value, password), nl=False)


def _password(source: PasswordSource) -> VaultPassword:
    """The password, with a warning about a password file others can read on stderr."""
    from ollama_fleet.vault import read_password

    return read_password(source, warn=lambda line: click.echo(line, err=True))


def _edit_new_file(file: Path, password: VaultPassword) -> None:
    from ollama_fleet.fsutil import atomic_write
    from ollama_fleet.vault import encrypt_bytes

    after = _run_editor(file, b"")
    if not after:
        click.echo(f"{file}: empty, not created", err=True)
        return
    atomic_write(file, encrypt_bytes(after, password), mode=0o600, what="vault file")
    click.echo(f"{file}: created, encrypted", err=True)


def _edit_whole_file(file: Path, vault_password_file: Path | None) -> None:
    from ollama_fleet.fsutil import atomic_write
    from ollama_fleet.vault import PasswordSource, decrypt_bytes, encrypt_bytes

    text = _read_vault_file(file)
    password = _password(PasswordSource(file=vault_password_file))
    before = decrypt_bytes(text, password, where=str(file), what="vault file")
    after = _run_editor(file, before)
    if after == before:
        click.echo(f"{file}: unchanged", err=True)
        return
    atomic_write(file, encrypt_bytes(after, password), what="vault file")
    click.echo(f"{file}: saved, encrypted", err=True)


def _edit_inline_values(file: Path, vault_password_file: Path | None) -> None:
    """Edit the decrypted view of a YAML file's !vault values; write back what changed."""
    from ollama_fleet.fsutil import atomic_write
    from ollama_fleet.vault import PasswordSource, find_vault_values
    from ollama_fleet.vault_edit import apply_edit, edit_view

    text = _read_text(file)
    if not find_vault_values(text, where=str(file)):
        raise ConfigError(
            f"{file}: holds no vault data: encrypt it as a whole with `ollama-fleet vault "
            "encrypt`, or add a value made by `ollama-fleet vault encrypt-string`"
        )
    password = _password(PasswordSource(file=vault_password_file))
    shown = edit_view(text, password, where=str(file))
    raw = _run_editor(file, shown.text.encode("utf-8"))
    try:
        edited = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: the edited text is not UTF-8; nothing changed") from None
    if edited == shown.text:
        click.echo(f"{file}: unchanged", err=True)
        return
    try:
        result = apply_edit(shown, edited, password, where=str(file))
    except ConfigError as exc:
        raise ConfigError(f"{exc}; nothing changed") from None
    if result.text == text:
        click.echo(f"{file}: unchanged", err=True)
        return
    atomic_write(file, result.text, what="vault file")
    counts = (
        (result.changed, "changed"),
        (result.added, "added"),
        (result.removed, "removed"),
        (result.unchanged, "unchanged"),
    )
    said = ", ".join(f"{n} {what}" for n, what in counts if n)
    click.echo(f"{file}: saved; vault values: {said or 'none left'}", err=True)


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
    from ollama_fleet.vault import MAGIC, is_encrypted

    text = _read_bytes(path).decode("latin-1")
    if not is_encrypted(text):
        raise ConfigError(
            f"{path}: not a vault-encrypted file (no {MAGIC} header); for !vault values "
            "inside a YAML file, use `ollama-fleet vault view`"
        )
    return text


def _refuse_inline_values(path: Path, data: bytes) -> None:
    """Values encrypted inside an encrypted file would need two passwords changed at rekey."""
    from ollama_fleet.vault import find_vault_values

    try:
        values = find_vault_values(data.decode("utf-8"), where=str(path))
    except (UnicodeDecodeError, ConfigError):
        return  # not YAML text: it cannot hold !vault values
    if values:
        raise ConfigError(
            f"{path}: line {values[0].line}: holds a !vault value; encrypt single values "
            "or the whole file, not both"
        )


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
