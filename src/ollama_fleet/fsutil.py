"""One way to write a file: beside it, fsync, rename. A reader sees the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from ollama_fleet.errors import ConfigError


def atomic_write(
    path: Path,
    data: str | bytes,
    *,
    mode: int | None = None,
    private: bool = False,
    what: str = "file",
) -> None:
    """Write `data` to `path` atomically and durably.

    The mode is `mode` when given, else the existing file's, else 0644 (0600 when
    `private`); `private` also takes every permission away from group and others, for
    plaintext secrets. Through a symlink the target is replaced, not the link. Parent
    directories are created. An OSError becomes a one-line ConfigError naming the path;
    the temporary file never stays behind.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode is None:
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                mode = 0o600 if private else 0o644
        if private:
            mode &= 0o600
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the {what}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ConfigError(f"{path}: cannot write the {what}: {exc.strerror}") from None
        raise


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; some filesystems refuse, which is harmless."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
