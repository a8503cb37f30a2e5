"""A vault password file: its text, or, when it is executable, what it prints when run (as Ansible).

Loose permissions are not an error, only worth saying: `warn` gets one line naming the file,
its mode and the chmod that fixes it. Nothing here prints, and no message holds the password
or anything the script printed.
"""

from __future__ import annotations

import errno
import os
import shlex
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from ollama_fleet.errors import ConfigError

# Long enough for a password manager that asks for a touch or a PIN, short enough that a
# hung script does not hang a CI job.
SCRIPT_TIMEOUT = 30.0


def read_password_file(
    path: Path, *, warn: Callable[[str], None], timeout: float = SCRIPT_TIMEOUT
) -> str:
    """The password in `path`, less one trailing newline; ConfigError naming `path` if none.

    An executable regular file is run with no arguments, its stdin and stderr left to the
    terminal (a script may ask for something), and its stdout is the password. It must exit 0
    within `timeout` seconds and print something.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such vault password file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the vault password file: {exc.strerror}") from None
    script = stat.S_ISREG(mode) and bool(mode & 0o111)
    if (warning := permission_warning(path, stat.S_IMODE(mode), script=script)) is not None:
        warn(warning)
    if script:
        raw = _run_script(path, timeout)
        what = "the vault password script printed"
    else:
        raw = _read(path)
        what = "the vault password file holds"
    try:
        secret = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {what} something that is not UTF-8 text") from None
    secret = secret.removesuffix("\n").removesuffix("\r")
    if not secret:
        kind = "script printed nothing" if script else "file is empty"
        raise ConfigError(f"{path}: the vault password {kind}")
    return secret


def permission_warning(path: Path, mode: int, *, script: bool) -> str | None:
    """The warning for a password file others may read, or a script others may change.

    None when the mode is fine. A script is code, so reading it reveals nothing; writing it
    lets someone else choose what runs with your rights.
    """
    group, others = (0o020, 0o002) if script else (0o040, 0o004)
    names = [name for bit, name in ((group, "group"), (others, "others")) if mode & bit]
    if not names:
        return None
    verb, fixed = ("writable", mode & 0o755) if script else ("readable", mode & 0o700)
    kind = "script" if script else "file"
    return (
        f"warning: vault password {kind} {path} is {verb} by {' and '.join(names)} "
        f"(mode {mode:04o}): chmod {fixed:o} {shlex.quote(str(path))}"
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the vault password file: {exc.strerror}") from None


def _run_script(path: Path, timeout: float) -> bytes:
    try:
        done = subprocess.run(
            [os.fspath(path.absolute())], stdout=subprocess.PIPE, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"{path}: the vault password script did not finish within {timeout:g} s"
        ) from None
    except OSError as exc:
        hint = (
            " (if the file holds the password itself, `chmod -x` it: an executable file "
            "is run as a script)"
            if exc.errno == errno.ENOEXEC
            else ""
        )
        raise ConfigError(
            f"{path}: cannot run the vault password script: {exc.strerror}{hint}"
        ) from None
    if done.returncode < 0:
        raise ConfigError(
            f"{path}: the vault password script was killed by signal {-done.returncode}"
        )
    if done.returncode != 0:
        raise ConfigError(f"{path}: the vault password script exited with status {done.returncode}")
    return done.stdout
