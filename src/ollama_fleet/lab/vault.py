"""The lab's vault: its password file and the gateway keys it encrypts, made once and kept.

`up` makes, in the state directory, `vault-password` (a random password, mode 0600) and
`host_vars/lab.yml` (mode 0600), which the lab's inventory.yml picks up beside it: the gateway
on (`gateway_enabled`, and `public_access: closed` for the checks), `api_key` (the checks' and
the monitor's key) and `gateway_api_keys` (an admin key and a user key), each key a `!vault`
value. Both are kept across runs (and `down --destroy`), so the keys stay the same.
`lab_key` reads a key back for `ollama-fleet lab key`; no key is ever printed anywhere else.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import yaml

from ollama_fleet.errors import ConfigError
from ollama_fleet.fsutil import atomic_write
from ollama_fleet.gateway.keys import new_key
from ollama_fleet.vault import VAULT_TAG, VaultPassword, decrypt_text, sealer

PASSWORD_FILE = "vault-password"
HOST_VARS_FILE = "host_vars/lab.yml"
ADMIN_KEY, USER_KEY = "lab-admin", "lab-user"
HEADER = (
    "# Written once by `ollama-fleet lab up` and kept: the lab's gateway keys, encrypted with\n"
    "# the password in ../vault-password. `ollama-fleet lab key [--admin]` prints one.\n"
)


def password_file(state_dir: Path) -> Path:
    return state_dir / PASSWORD_FILE


def host_vars_file(state_dir: Path) -> Path:
    return state_dir / HOST_VARS_FILE


def _block(vaulttext: str, indent: int) -> str:
    pad = " " * indent
    return f"{VAULT_TAG} |\n" + "".join(f"{pad}{line}\n" for line in vaulttext.splitlines())


def lab_vault_text(password: VaultPassword, *, admin_key: str, user_key: str) -> str:
    """host_vars/lab.yml: the gateway on, the user key as api_key, both as gateway_api_keys."""
    seal = sealer(password)  # one salt: one key derivation to write and to read them all

    def sealed(key: str, indent: int) -> str:
        return _block(seal(key.encode()), indent)

    return (
        HEADER
        + "gateway_enabled: true\n"
        + "public_access: closed  # the gateway serves nothing without a key\n"
        + f"api_key: {sealed(user_key, 2)}"
        + "gateway_api_keys:\n"
        + f"  - name: {ADMIN_KEY}\n    role: admin\n    key: {sealed(admin_key, 6)}"
        + f"  - name: {USER_KEY}\n    role: user\n    key: {sealed(user_key, 6)}"
    )


def ensure_lab_vault(state_dir: Path) -> None:
    """The lab's password file and its encrypted keys, made once (kept when both exist)."""
    secret, keys = password_file(state_dir), host_vars_file(state_dir)
    if secret.is_file() and keys.is_file():
        return
    if not secret.is_file():
        atomic_write(secret, secrets.token_urlsafe(24) + "\n", mode=0o600, what="lab password")
    password = read_lab_password(state_dir)
    keys.parent.mkdir(mode=0o700, exist_ok=True)
    text = lab_vault_text(password, admin_key=new_key(), user_key=new_key())
    atomic_write(keys, text, mode=0o600, what="lab gateway keys")


def read_lab_password(state_dir: Path) -> VaultPassword:
    path = password_file(state_dir)
    try:
        return VaultPassword(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the lab's vault password: {exc.strerror}; "
            "`ollama-fleet lab up` makes it"
        ) from None


class _Opener(yaml.SafeLoader):
    """yaml's SafeLoader with `!vault` values opened by the lab's password."""

    password: VaultPassword
    where: str


def _open(loader: _Opener, node: yaml.Node) -> str:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    return decrypt_text(str(text), loader.password, where=loader.where, what="vault value")


_Opener.add_constructor(VAULT_TAG, _open)


def lab_key(state_dir: Path, *, admin: bool = False) -> str:
    """The lab's user key (or its admin key), decrypted from host_vars/lab.yml."""
    path = host_vars_file(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the lab's keys: {exc.strerror}; `ollama-fleet lab up` makes them"
        ) from None
    opener = _Opener(text)
    opener.password, opener.where = read_lab_password(state_dir), str(path)
    try:
        document: Any = opener.get_single_data()
    finally:
        opener.dispose()
    wanted = ADMIN_KEY if admin else USER_KEY
    for entry in (document or {}).get("gateway_api_keys") or []:
        if isinstance(entry, dict) and entry.get("name") == wanted:
            return str(entry["key"])
    raise ConfigError(f"{path}: no gateway key named {wanted}")
