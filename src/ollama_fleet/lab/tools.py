"""The system tools the lab runs, the Debian packages that provide them, and timed steps."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ollama_fleet.errors import TestbedError, ToolMissingError

Progress = Callable[[str], None]

TOOL_PACKAGES = {
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
# debootstrap and mkfs live in sbin, which a normal user's PATH often lacks.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def no_progress(message: str) -> None:
    """A Progress that shows nothing."""


def require_tool(name: str) -> str:
    """The path of system tool `name`; ToolMissingError naming its package if absent."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    path = shutil.which(name, path=search)
    if path is None:
        package = TOOL_PACKAGES[name]
        raise ToolMissingError(
            f"{name} is not installed: `apt-get install {package}` (make system-deps does it)"
        )
    return path


def run_tool(
    args: Sequence[str],
    *,
    what: str,
    log: Path | None = None,
    timeout_s: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a tool; TestbedError with `what` and its last error line if it fails.

    With `log`, the tool's output goes there (appended) instead of being captured.
    """
    tool = require_tool(args[0])
    try:
        if log is None:
            result = subprocess.run(
                [tool, *args[1:]], capture_output=True, text=True, timeout=timeout_s
            )
        else:
            with log.open("a", encoding="utf-8") as out:
                result = subprocess.run(
                    [tool, *args[1:]],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout_s,
                )
    except subprocess.TimeoutExpired:
        raise TestbedError(f"{what}: {args[0]} did not finish within {timeout_s:.0f} s") from None
    if result.returncode != 0:
        if log is None:
            detail = last_line(result.stderr)
        else:
            detail = f"{last_line(log.read_text(errors='replace'))} (full log: {log})"
        raise TestbedError(f"{what} failed (exit {result.returncode}): {detail}")
    return result


def last_line(text: str) -> str:
    """The last non-blank line of `text`, for one-line error messages."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@contextmanager
def timed_step(progress: Progress, what: str) -> Iterator[None]:
    """Report `what...` when a slow step starts and `what: N s` when it ends."""
    start = time.monotonic()
    progress(f"{what}...")
    yield
    progress(f"{what}: {time.monotonic() - start:.1f} s")
