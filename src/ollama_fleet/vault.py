"""The vault: AES-256-GCM encryption of whole files and of single `!vault` values in YAML.

A vault text is a header line, then the base64 of salt | nonce | ciphertext and GCM tag,
wrapped at 76 columns:

    $OLLAMA_FLEET_VAULT;2;AES256-GCM;SCRYPT;N=131072,r=8,p=1
    c2FsdC4uLg...

The key is scrypt(password, salt) with the cost the header names (version 1 headers name none:
theirs is fixed, n=2**15, r=8, p=1); the header is the associated data, so neither it nor the
cost can be altered without the decryption failing. A whole file is one vault text; an inline
value is a YAML literal block tagged `!vault` (`api_key: !vault |` and the vault text indented
below it). No message or repr here ever holds a password or a plaintext.
"""

from __future__ import annotations

import base64
import binascii
import functools
import getpass
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ollama_fleet.errors import ConfigError
from ollama_fleet.password_file import SCRIPT_TIMEOUT, read_password_file

log = logging.getLogger(__name__)

MAGIC = "$OLLAMA_FLEET_VAULT"
V1_HEADER = f"{MAGIC};1;AES256-GCM;SCRYPT"
V2_PREFIX = f"{MAGIC};2;AES256-GCM;SCRYPT;"  # then the cost: N=131072,r=8,p=1
VAULT_TAG = "!vault"
PASSWORD_ENV = "OLLAMA_FLEET_VAULT_PASSWORD"
NEW_PASSWORD_ENV = "OLLAMA_FLEET_NEW_VAULT_PASSWORD"

# scrypt's cost for new vault texts, OWASP's minimum: n=2**17, r=8 takes about 0.3 s and 128 MiB.
# Read at every encryption (tests lower SCRYPT_N); decryption reads the cost from the header.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
# The most a header may ask for, so a crafted one cannot exhaust memory or time before its tag
# fails: 1 GiB (scrypt needs 128*n*r bytes, so n=2**20 at r=8), and n*r*p 16 times the default's.
MAX_SCRYPT_MEMORY = 2**30
MAX_SCRYPT_WORK = 2**24
KEY_BYTES = 32
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
LINE_WIDTH = 76

_COST = re.compile(r"N=([1-9][0-9]{0,9}),r=([1-9][0-9]{0,4}),p=([1-9][0-9]{0,4})\Z")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A line with its break, as YAML counts lines (str.splitlines also breaks at \f and \v).
LINE_BREAKS = "\r\n\x85\u2028\u2029"
_LINE = re.compile(rf"[^{LINE_BREAKS}]*(?:\r\n|[{LINE_BREAKS}])|[^{LINE_BREAKS}]+\Z")


class VaultError(ConfigError):
    """Vault data that cannot be read: wrong password, tampered or truncated, no password."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScryptParams:
    """scrypt's cost: `n` (a power of two), `r` and `p`; written `N=131072,r=8,p=1`."""

    n: int
    r: int
    p: int

    def __str__(self) -> str:
        return f"N={self.n},r={self.r},p={self.p}"

    @property
    def memory(self) -> int:
        """The bytes of memory scrypt needs."""
        return 128 * self.n * self.r

    def problem(self) -> str | None:
        """Why scrypt should not run with these parameters, or None if it may."""
        if self.n < 2 or self.n & (self.n - 1):
            return "N is not a power of two"
        if self.r < 1 or self.p < 1:
            return "r and p must be at least 1"
        if self.n.bit_length() > 16 * self.r:
            return "N must be below 2^(16*r)"
        if self.memory > MAX_SCRYPT_MEMORY:
            return f"it needs {self.memory >> 20} MiB, above {MAX_SCRYPT_MEMORY >> 20} MiB"
        if self.n * self.r * self.p > MAX_SCRYPT_WORK:
            return "N*r*p is above 2^24"
        return None


V1_PARAMS = ScryptParams(n=2**15, r=8, p=1)


@dataclass(frozen=True, slots=True)
class VaultPassword:
    """A vault password; its repr never shows it."""

    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.secret:
            raise VaultError("an empty vault password is not allowed")


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordSource:
    """Where a vault password comes from: a file, else an environment variable, else a prompt.

    `option` and `env_var` name the ways to give it in the error when there is none.
    `confirm` asks twice at a prompt (for a password that is about to encrypt something).
    `script_timeout` bounds an executable `file`'s run, in seconds.
    """

    file: Path | None = None
    option: str = "--vault-password-file"
    env_var: str = PASSWORD_ENV
    prompt: str = "Vault password"
    confirm: bool = False
    script_timeout: float = SCRIPT_TIMEOUT


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultValue:
    """One `!vault |` block in a YAML text: where it is, and its vault text."""

    line: int  # 1-based line of the `!vault` tag
    column: int  # 0-based column of the tag on that line
    first: int  # 0-based index of the first line of the block's content
    stop: int  # 0-based index of the line after the content
    indent: str  # the content's indentation
    vaulttext: str


def is_encrypted(text: str) -> bool:
    """Whether `text` is a whole vault text (a file encrypted as a whole)."""
    return text.lstrip().startswith(f"{MAGIC};")


def default_params() -> ScryptParams:
    """The cost new vault texts get: SCRYPT_N, SCRYPT_R and SCRYPT_P as they are now."""
    return ScryptParams(n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)


def vault_header(params: ScryptParams) -> str:
    """The header line of a vault text written now with `params`."""
    return f"{V2_PREFIX}{params}"


def encrypt_bytes(plaintext: bytes, password: VaultPassword) -> str:
    """The vault text of `plaintext`: the header line and base64 lines, each ending in \\n."""
    return sealer(password)(plaintext)


def sealer(password: VaultPassword) -> Callable[[bytes], str]:
    """A function that encrypts with `password` under one new salt, with a new nonce each call.

    One key for every value of a file (rekey) costs one derivation to write and to read; it
    weakens nothing, since the values share their password and GCM's random nonces stay apart.
    """
    params = default_params()
    if (problem := params.problem()) is not None:
        raise VaultError(f"cannot encrypt with scrypt {params}: {problem}")
    salt, header = os.urandom(SALT_BYTES), vault_header(params)
    aead = AESGCM(_derive_key(password, salt, params, where="", what="vault data"))

    def seal(plaintext: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = aead.encrypt(nonce, plaintext, header.encode())
        body = base64.b64encode(salt + nonce + sealed).decode("ascii")
        lines = [header, *(body[i : i + LINE_WIDTH] for i in range(0, len(body), LINE_WIDTH))]
        return "\n".join(lines) + "\n"

    return seal


def decrypt_bytes(
    vaulttext: str, password: VaultPassword, *, where: str, what: str = "vault data"
) -> bytes:
    """The plaintext of `vaulttext`; VaultError starting with `where` if it cannot be had."""
    header, _, body = vaulttext.strip().partition("\n")
    header = header.strip()
    if not header.startswith(f"{MAGIC};"):
        raise VaultError(f"{where}: {what} does not start with a vault header {MAGIC};...")
    params = _header_params(header, where=where, what=what)
    try:
        raw = base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error:
        raise VaultError(f"{where}: {what} is corrupt (truncated or not base64)") from None
    if len(raw) < SALT_BYTES + NONCE_BYTES + TAG_BYTES:
        raise VaultError(f"{where}: {what} is corrupt (truncated)")
    salt, nonce = raw[:SALT_BYTES], raw[SALT_BYTES : SALT_BYTES + NONCE_BYTES]
    sealed = raw[SALT_BYTES + NONCE_BYTES :]
    try:
        key = _derive_key(password, salt, params, where=f"{where}: ", what=what)
        return AESGCM(key).decrypt(nonce, sealed, header.encode())
    except InvalidTag:
        raise VaultError(
            f"{where}: cannot decrypt {what} (wrong password or tampered data)"
        ) from None


def encrypt_text(plaintext: str, password: VaultPassword) -> str:
    """The vault text of a UTF-8 text."""
    return encrypt_bytes(plaintext.encode("utf-8"), password)


def decrypt_text(
    vaulttext: str, password: VaultPassword, *, where: str, what: str = "vault data"
) -> str:
    """Like decrypt_bytes, for a plaintext that must be UTF-8 text."""
    try:
        return decrypt_bytes(vaulttext, password, where=where, what=what).decode("utf-8")
    except UnicodeDecodeError:
        raise VaultError(f"{where}: the decrypted {what} is not UTF-8 text") from None


def check_variable_name(name: str) -> str:
    """`name` if it can be a variable name in vars (letters, digits, _), else ConfigError."""
    if not _VARIABLE_NAME.match(name):
        raise ConfigError(f"{name!r} is not a variable name (letters, digits and _)")
    return name


def encrypt_value(name: str, plaintext: str, password: VaultPassword, *, indent: int = 2) -> str:
    """A YAML `NAME: !vault |` block holding `plaintext`, ready to paste into vars."""
    check_variable_name(name)
    pad = " " * indent
    lines = encrypt_text(plaintext, password).splitlines()
    return f"{name}: {VAULT_TAG} |\n" + "".join(f"{pad}{line}\n" for line in lines)


def find_vault_values(text: str, *, where: str) -> tuple[VaultValue, ...]:
    """Every `!vault |` block of the YAML `text`, in file order; ConfigError naming `where`."""
    if VAULT_TAG not in text:
        return ()
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{where}: {at}invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}") from None
    nodes = [n for doc in documents if doc is not None for n in _tagged(doc)]
    lines = split_lines(text)
    return tuple(_located(lines, node, where) for node in nodes)


def holds_vault_data(text: str, *, where: str) -> bool:
    """Whether `text` is encrypted as a whole or holds `!vault` values."""
    return is_encrypted(text) or bool(find_vault_values(text, where=where))


def vault_value_error(where: str, line: int) -> ConfigError:
    """The error for a `!vault` tag on something other than a literal block."""
    return ConfigError(
        f"{where}: line {line}: a {VAULT_TAG} value must be a literal block "
        f"(`name: {VAULT_TAG} |` with the vault text indented below)"
    )


def rekey_text(text: str, *, old: VaultPassword, new: VaultPassword, where: str) -> str:
    """`text` with its vault data encrypted with `new`, and every other byte as it was.

    Every value is decrypted with `old` before anything is returned: one wrong password or
    tampered value fails the whole rekey. The new texts get the current cost (version 2),
    and one salt: one derivation for the whole file.
    """
    if new == old:
        raise VaultError("the new vault password is the same as the old one")
    if is_encrypted(text):
        return encrypt_bytes(decrypt_bytes(text, old, where=where, what="vault file"), new)
    seal, lines = sealer(new), split_lines(text)
    values = find_vault_values(text, where=where)
    # decrypted first to last, so a wrong password names the first value's line
    plaintexts = [
        decrypt_bytes(v.vaulttext, old, where=f"{where}: line {v.line}", what="vault value")
        for v in values
    ]
    for value, plaintext in reversed(list(zip(values, plaintexts, strict=True))):
        block = [f"{value.indent}{line}" for line in seal(plaintext).splitlines()]
        # Each new line ends as the old ones did; the last keeps whatever the old last had
        # (nothing, at the end of a file without a final newline).
        ending, last = line_ending(lines[value.first]) or "\n", line_ending(lines[value.stop - 1])
        block = [f"{line}{ending}" for line in block[:-1]] + [block[-1] + last]
        lines[value.first : value.stop] = block
    return "".join(lines)


def reveal_text(text: str, password: VaultPassword, *, where: str) -> str:
    """`text` decrypted: a whole vault text's plaintext, or the YAML with its values shown.

    An inline value is shown as a double-quoted YAML string in place of its block.
    """
    if is_encrypted(text):
        return decrypt_text(text, password, where=where, what="vault file")
    lines = split_lines(text)
    values = find_vault_values(text, where=where)
    # decrypted first to last, so a wrong password names the first value's line
    plaintexts = [
        decrypt_text(v.vaulttext, password, where=f"{where}: line {v.line}", what="vault value")
        for v in values
    ]
    for value, plaintext in reversed(list(zip(values, plaintexts, strict=True))):
        tag_line, last = lines[value.line - 1], line_ending(lines[value.stop - 1])
        shown = json.dumps(plaintext, ensure_ascii=False)
        lines[value.line - 1 : value.stop] = [f"{tag_line[: value.column]}{shown}{last}"]
    return "".join(lines)


def read_password(
    source: PasswordSource,
    *,
    environ: Mapping[str, str] | None = None,
    ask: Callable[[str], str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> VaultPassword:
    """The password from `source.file`, else `source.env_var`, else asked for.

    `ask` defaults to a hidden prompt when stdin is a terminal; without one, the error says
    how to give the password. A file loses one trailing newline; an executable file is run
    and its output is the password (see ollama_fleet.password_file); an empty password is
    refused. `warn` gets the one-line warning about a file others may read (or a script
    others may change); by default it is logged at WARNING, which Python's logging prints
    on stderr when nothing configured it.
    """
    if source.file is not None:
        return _password_from_file(
            source.file, timeout=source.script_timeout, warn=warn or log.warning
        )
    environ = os.environ if environ is None else environ
    if source.env_var in environ:
        if not environ[source.env_var]:
            raise VaultError(f"environment variable {source.env_var} is set but empty")
        return VaultPassword(environ[source.env_var])
    if ask is None and sys.stdin is not None and sys.stdin.isatty():
        ask = getpass.getpass
    if ask is None:
        raise VaultError(
            f"no vault password: give {source.option} FILE or set {source.env_var} "
            "(stdin is not a terminal, so it cannot be asked for)"
        )
    secret = ask(f"{source.prompt}: ")
    if not secret:
        raise VaultError("an empty vault password is not allowed")
    if source.confirm and ask(f"{source.prompt} (again): ") != secret:
        raise VaultError("the two passwords do not match")
    return VaultPassword(secret)


def _password_from_file(
    path: Path, *, timeout: float, warn: Callable[[str], None]
) -> VaultPassword:
    try:
        return VaultPassword(read_password_file(path, warn=warn, timeout=timeout))
    except ConfigError as exc:
        raise VaultError(str(exc)) from None


def _header_params(header: str, *, where: str, what: str) -> ScryptParams:
    """The scrypt cost a vault header names; VaultError if this version cannot read it."""
    if header == V1_HEADER:
        return V1_PARAMS
    version = header.split(";")[1]
    if version not in ("1", "2"):
        raise VaultError(
            f"{where}: {what} has vault format version {version!r} (this reads 1 and 2)"
        )
    if not header.startswith(V2_PREFIX) or ";" in header.removeprefix(V2_PREFIX):
        raise VaultError(
            f"{where}: unsupported vault format {header!r} "
            f"(this reads '{V2_PREFIX}N=...,r=...,p=...' and {V1_HEADER!r})"
        )
    cost = header.removeprefix(V2_PREFIX)
    if not (match := _COST.match(cost)):
        raise VaultError(
            f"{where}: {what} has malformed scrypt parameters {cost!r} (expected N=...,r=...,p=...)"
        )
    params = ScryptParams(n=int(match[1]), r=int(match[2]), p=int(match[3]))
    if (problem := params.problem()) is not None:
        raise VaultError(f"{where}: {what} asks for scrypt {params}, refused: {problem}")
    return params


def _derive_key(
    password: VaultPassword, salt: bytes, params: ScryptParams, *, where: str, what: str
) -> bytes:
    try:
        return _scrypt(password.secret, salt, params)
    except MemoryError:
        raise VaultError(
            f"{where}not enough memory to derive the key of {what} "
            f"(scrypt {params} needs {params.memory >> 20} MiB)"
        ) from None


# Inside one process, a key is derived once per (password, salt, cost): an inventory read twice,
# or values rekeyed together (one salt), cost one derivation, not one per value and read.
@functools.lru_cache(maxsize=64)
def _scrypt(secret: str, salt: bytes, params: ScryptParams) -> bytes:
    kdf = Scrypt(salt=salt, length=KEY_BYTES, n=params.n, r=params.r, p=params.p)
    return kdf.derive(secret.encode("utf-8"))


def _tagged(node: yaml.Node) -> list[yaml.Node]:
    """The nodes tagged `!vault` below `node`, in document order."""
    if node.tag == VAULT_TAG:
        return [node]
    if isinstance(node, yaml.SequenceNode):
        return [found for child in node.value for found in _tagged(child)]
    if isinstance(node, yaml.MappingNode):
        pairs = node.value
        return [found for pair in pairs for child in pair for found in _tagged(child)]
    return []


def _located(lines: list[str], node: yaml.Node, where: str) -> VaultValue:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode) or node.style != "|":
        raise vault_value_error(where, line)
    count = len(node.value.rstrip("\n").split("\n"))
    first = node.start_mark.line + 1
    content = lines[first : first + count]
    # The block's lines, stripped, must be the scalar's lines: otherwise (an indentation
    # indicator, tabs) a rewrite could touch the wrong bytes, so refuse instead.
    if [c.strip() for c in content] != [v.strip() for v in node.value.rstrip("\n").split("\n")]:
        raise vault_value_error(where, line)
    indent = content[0][: len(content[0]) - len(content[0].lstrip())]
    return VaultValue(
        line=line,
        column=node.start_mark.column,
        first=first,
        stop=first + count,
        indent=indent,
        vaulttext=node.value,
    )


def split_lines(text: str) -> list[str]:
    """The lines of `text` as YAML counts them, each with its line break (the last may lack one)."""
    return _LINE.findall(text)


def line_ending(line: str) -> str:
    """The line break at the end of `line`: "\\n", "\\r\\n" or "" on a last line without one."""
    return line[len(line.rstrip(LINE_BREAKS)) :]
