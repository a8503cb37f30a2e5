"""Files the lab shares between processes: exclusive locks, atomic writes, safe tree removal."""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ollama_fleet.errors import TestbedError


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed); a second holder waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mounts_under(root: Path) -> list[str]:
    """Mount points inside `root`, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [_unescape(line.split()[1]) for line in mounts if line.strip()]
    return sorted((point for point in points if point.startswith(prefix)), reverse=True)


def remove_tree(root: Path) -> None:
    """Delete a build tree, never through a mount that an interrupted debootstrap left in it.

    Inside a container debootstrap bind-mounts the host's /dev into the tree: deleting
    through that mount would delete the host's device nodes.
    """
    for point in mounts_under(root):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    left = mounts_under(root)
    if left:
        raise TestbedError(f"{root}: {left[0]} is still mounted; unmount it, then delete {root}")
    shutil.rmtree(root)


def _unescape(field: str) -> str:
    # /proc/self/mounts writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)
