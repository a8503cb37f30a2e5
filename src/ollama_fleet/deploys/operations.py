"""Operations pyinfra lacks: a validated config swap, and waits and removals of our units.

A config file is validated on the host before it replaces the live one (render, validate,
then swap), so a broken config never replaces a working one. The services this project
starts are waited for with their journal shown on failure, and removed the same way.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import File, FileContents, Sha256File
from pyinfra.operations import files, systemd

STAGED_SUFFIX = ".ollama-fleet-new"


@operation()
def checked_file(
    content: str,
    dest: str,
    validate: str | None = None,
    activate: str | None = None,
    user: str = "root",
    group: str = "root",
    mode: str = "644",
    secret: bool = False,
) -> Generator[Any, None, None]:
    """Put `content` at `dest` only if it differs; before the swap run `validate` on the staged
    copy ("{path}" is replaced by its path) and after it run `activate` (e.g. a reload).

    When validation fails the operation fails, the staged copy is removed and `dest` is untouched.
    With `secret`, --diff says that the file changes but never shows its lines (a key, a webhook
    URL or an environment value would otherwise show, old and new, on the terminal).
    """
    data = content.encode()
    current = host.get_fact(Sha256File, path=dest)
    info = host.get_fact(File, path=dest)
    same_meta = isinstance(info, dict) and (
        info.get("user") == user
        and info.get("group") == group
        and str(info.get("mode")) == mode.lstrip("0")
    )
    if current == hashlib.sha256(data).hexdigest():
        if not same_meta:
            yield StringCommand("chown", f"{user}:{group}", dest)
            yield StringCommand("chmod", mode, dest)
        else:
            host.noop(f"{dest} is up to date")
        return
    if state.config.DIFF and secret:
        logger.info(f"[{host.name}] {dest} changes (not shown: it may hold secrets)")
    elif state.config.DIFF:
        before = host.get_fact(FileContents, path=dest) or []
        lines = difflib.unified_diff(
            [line + "\n" for line in before],
            content.splitlines(keepends=True),
            fromfile=f"{dest} (on the host)",
            tofile=f"{dest} (new)",
        )
        logger.info(f"[{host.name}] diff of {dest}:\n" + "".join(lines))
    staged = dest + STAGED_SUFFIX
    yield FileUploadCommand(
        io.BytesIO(data), staged, remote_temp_filename=host.get_temp_filename(staged)
    )
    yield StringCommand("chown", f"{user}:{group}", staged)
    yield StringCommand("chmod", mode, staged)
    if validate:
        check = validate.format(path=staged)
        yield StringCommand(f"{{ {check} ; }} || {{ rm -f {staged}; exit 1; }}")
    yield StringCommand("mv", "-f", staged, dest)
    if activate:
        yield StringCommand(activate)


def wait_script(url: str, *, unit: str, what: str, timeout_s: int) -> str:
    """Shell that waits until `url` answers on the host; else fails showing `unit`'s journal.

    For the services this project starts (Ollama, the monitor, the gateway): the deploy
    reports a service that does not come up with the reason from its own log.
    """
    q = shlex.quote
    failed = f"{what} does not answer on {url} after {int(timeout_s)} s; its journal:"
    return (
        f"for i in $(seq {int(timeout_s)}); do curl -fs -o /dev/null --max-time 2 {q(url)} "
        f"&& exit 0; sleep 1; done; echo {q(failed)} >&2; "
        f"journalctl -u {q(unit)} -n 15 --no-pager -o cat >&2; exit 1"
    )


def remove_unit(*, unit: str, unit_file: str, what: str, because: str) -> None:
    """Stop, disable and remove a unit this project installed before, if it is there."""
    if not host.get_fact(File, path=unit_file):
        return
    systemd.service(
        name=f"services: {what} stopped and disabled ({because})",
        service=unit,
        running=False,
        enabled=False,
    )
    files.file(name=f"services: {unit} removed", path=unit_file, present=False)
    systemd.daemon_reload(name=f"services: reload systemd ({what} unit removed)")
